import torch
import torch.nn.functional as F

from napari_noise2detail.engine.presets import Settings
from napari_noise2detail.engine.stages import n2d_plane, refine


class Blur(torch.nn.Module):
    """A stand-in for a fitted f whose output depends on the neighbours."""

    def forward(self, x):
        return 0.5 * F.avg_pool2d(x, 3, stride=1, padding=1)


def test_refine_follows_the_method_written_out():
    f = Blur()
    y = torch.rand(1, 1, 16, 24, generator=torch.Generator().manual_seed(0))
    s1 = (y - f(y)).clamp(0, 1)
    expected = s1.clone()
    for k in (2, 4):
        q = torch.empty_like(y)
        for i in range(k):
            for j in range(k):
                u = y[..., i::k, j::k]
                q[..., i::k, j::k] = (u - f(u)).clamp(0, 1)
        expected += (q - f(q)).clamp(0, 1)
    expected /= 3
    assert torch.allclose(refine(f, y, s1, tile=None), expected, atol=1e-6)


def test_plane_pipeline_outputs_and_events():
    y = torch.rand(1, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    settings = Settings(steps=6, width=8, report_every=2)
    run = n2d_plane(y, settings, seed=0)
    events = []
    while True:
        try:
            events.append(next(run))
        except StopIteration as done:
            outputs = done.value
            break
    assert [e[:3] for e in events] == [
        (1, 2, 6), (1, 4, 6), (1, 6, 6), (2, 1, 1), (3, 2, 6), (3, 4, 6), (3, 6, 6)
    ]
    assert all(e[3] is None if e[0] == 2 else e[3] > 0 for e in events)
    for out in outputs:
        assert out.shape == y.shape
        assert 0 <= out.min() and out.max() <= 1
        assert not out.requires_grad


def test_fitting_lowers_the_loss():
    torch.manual_seed(0)
    y = (0.5 + 0.1 * torch.randn(1, 1, 32, 32)).clamp(0, 1)
    run = n2d_plane(y, Settings(steps=60, width=16, report_every=10), seed=0)
    stage1 = [loss for stage, _, _, loss in run if stage == 1]
    assert stage1[-1] < stage1[0]


def test_crop_sampler_takes_matching_crops_at_even_offsets():
    from napari_noise2detail.engine.stages import crop_sampler

    grid = torch.arange(32 * 40, dtype=torch.float32).reshape(1, 1, 32, 40)
    target = -grid
    sample = crop_sampler(grid, target, 8, 5, torch.Generator().manual_seed(0))
    x, t = sample()
    assert x.shape == t.shape == (5, 1, 8, 8)
    assert torch.equal(t, -x)
    for crop in x:
        top, left = divmod(int(crop[0, 0, 0]), 40)
        assert top % 2 == 0 and left % 2 == 0
        assert torch.equal(crop, grid[0, :, top : top + 8, left : left + 8])
    same = crop_sampler(grid, grid, 8, 2, torch.Generator().manual_seed(0))()
    assert same[0] is same[1]
    whole = crop_sampler(grid, target, None, 4, torch.Generator())()
    assert whole[0] is grid and whole[1] is target
    assert crop_sampler(grid, target, 64, 4, torch.Generator())()[0] is grid


def test_paper_schedule_halves_the_learning_rate_once_half_way():
    from napari_noise2detail.engine.stages import _schedule

    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-3)
    schedule = _schedule(opt, 2000, "step")
    rates = []
    for _ in range(2000):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert rates[0] == rates[999] == 1e-3 and rates[1000] == rates[1999] == 5e-4


def test_crop_training_runs_and_changes_the_result():
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for crop in (None, 16):
        run = n2d_plane(y, Settings(steps=5, width=8, crop=crop, batch=2), seed=0)
        while True:
            try:
                next(run)
            except StopIteration as done:
                results.append(done.value[0])  # s1: the residual net is never all clamped
                break
    assert results[0].shape == results[1].shape == y.shape
    assert not torch.equal(results[0], results[1])
