
import pytest
import torch
import torch.nn.functional as F

from napari_noise2detail.engine.downsample import pair_downsample
from napari_noise2detail.engine.model import drive
from napari_noise2detail.engine.network import make_network
from napari_noise2detail.engine.presets import Settings
from napari_noise2detail.engine.stages import held_out_error, n2d_plane, refine


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
            outputs, networks = done.value
            break
    assert [e[:3] for e in events] == [
        (1, 2, 6), (1, 4, 6), (1, 6, 6), (2, 1, 1), (3, 2, 6), (3, 4, 6), (3, 6, 6)
    ]
    assert all(e[3] is None if e[0] == 2 else e[3] > 0 for e in events)
    for out in outputs:
        assert out.shape == y.shape
        assert 0 <= out.min() and out.max() <= 1
        assert not out.requires_grad
    assert len(networks) == 2 and not any(p.requires_grad for n in networks for p in n.parameters())


def test_fitting_lowers_the_loss():
    torch.manual_seed(0)
    y = (0.5 + 0.1 * torch.randn(1, 1, 32, 32)).clamp(0, 1)
    run = n2d_plane(y, Settings(steps=60, width=16, report_every=10), seed=0)
    stage1 = [event[3] for event in run if event[0] == 1]  # the return value is not needed
    assert stage1[-1] < stage1[0]


def test_crop_training_runs_and_changes_the_result():
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for crop in (None, 16):
        run = n2d_plane(y, Settings(steps=5, width=8, crop=crop, batch=2), seed=0)
        while True:
            try:
                next(run)
            except StopIteration as done:
                results.append(done.value[0][0])  # s1: the residual net is never all clamped
                break
    assert results[0].shape == results[1].shape == y.shape
    assert not torch.equal(results[0], results[1])


def test_zero_noise_init_starts_stage_one_from_the_image():
    from napari_noise2detail.engine.stages import _new_network

    y = torch.rand(1, 1, 16, 16)
    f = _new_network(1, 0, Settings(), y, zero_output=True)
    with torch.no_grad():
        assert torch.equal(f(y), torch.zeros_like(y))


def test_warm_start_continues_from_copies_of_the_given_networks():
    y = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    settings = Settings(steps=5, width=8, plane_steps=0)
    (first, nets) = drive(n2d_plane(y, settings), None)
    before = [p.clone() for n in nets for p in n.parameters()]
    (again, nets2) = drive(n2d_plane(y, settings, start=nets), None)
    # zero warm steps: the same networks on the same plane give the same results ...
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    # ... and the networks handed in were copied, not changed
    assert all(torch.equal(a, p) for a, p in zip(before, [p for n in nets for p in n.parameters()]))
    assert nets2[0] is not nets[0]
    settings = Settings(steps=5, width=8, plane_steps=3)
    events = []
    run = n2d_plane(y, settings, start=nets)
    while True:
        try:
            events.append(next(run))
        except StopIteration:
            break
    assert [e[:3] for e in events if e[0] != 2] == [(1, 3, 3), (3, 3, 3)]


def test_fits_per_stage_and_warm():
    s = Settings(steps=10, detail_steps=4, lr=3e-3, schedule="cosine", detail_lr=1e-3,
                 detail_schedule="step", plane_steps=2, crop=16, batch=3, detail_crop=24)
    (f1, f3) = s.fits()
    assert (f1.steps, f1.lr, f1.schedule) == (10, 3e-3, "cosine")
    assert (f3.steps, f3.lr, f3.schedule) == (4, 1e-3, "step")
    assert (f1.crop, f1.batch, f3.crop, f3.batch) == (16, 3, 24, 3)
    (w1, w3) = s.fits(warm=True)
    assert (w1.steps, w3.steps, w1.schedule) == (2, 2, "cosine")
    assert w1.lr == 1e-3 and abs(w3.lr - 1e-3 / 3) < 1e-12
    assert Settings(steps=7).fits(warm=True)[0].steps == 7  # no plane_steps: from scratch
    assert Settings(steps=1, plane_steps=5).fits(warm=True)[0].steps == 1  # never more than steps


def test_held_out_error_pairs_one_view_with_the_other():
    y = torch.rand(1, 1, 12, 12)
    f = make_network(1, 4, seed=0)
    for param in f.parameters():
        torch.nn.init.zeros_(param)  # f(u) = 0: its estimate is the view itself
    error = held_out_error(torch.nn.Identity(), f, y, tile=None)
    y1, y2 = pair_downsample(y)
    expected = 0.5 * (torch.mean((y1 - y2) ** 2) + torch.mean((y2 - y1) ** 2))
    assert float(error()) == pytest.approx(float(expected))


def test_the_held_out_check_costs_the_same_however_many_planes_are_fitted():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x):
            seen.append(x.shape)
            return x

    f = make_network(1, 4, seed=0)
    for planes in (1, 4):
        held_out_error(Recorder(), f, torch.rand(planes, 1, 128, 128), tile=None, size=32)()
    pixels = [shape[0] * shape[-2] * shape[-1] for shape in seen]
    assert pixels == [2 * 32 * 32, 2 * 32 * 32]  # both views: one 32x32 centre, or four of 16x16


def _events(run):
    events = []
    while True:
        try:
            events.append(next(run))
        except StopIteration:
            return events


def test_the_guard_reports_its_held_out_error_with_stage_three():
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    events = _events(n2d_plane(y, Settings(steps=60, width=8, report_every=5, detail_guard=True)))
    assert all(e[4] is None for e in events if e[0] != 3)
    stage3 = [e for e in events if e[0] == 3]
    assert [e[4] for e in stage3 if e[1] < 25] == [None] * 4  # nothing checked yet
    checked = [e[4] for e in stage3 if e[1] >= 25]
    assert [h.step for h in checked] == [25] * 5 + [50] * 3  # the latest check, at each report
    assert all(h.error > 0 and not h.stopped for h in checked)
    unguarded = _events(n2d_plane(y, Settings(steps=30, width=8, report_every=5)))
    assert all(e[4] is None for e in unguarded)


def test_a_stop_by_the_guard_is_reported_with_the_step_of_its_check(monkeypatch):
    from napari_noise2detail.engine import stages

    def rising(g, f, y, tile):  # the held-out error only rises: the guard stops at its third check
        values = iter(range(1, 100))
        return lambda: torch.tensor(float(next(values)))

    monkeypatch.setattr(stages, "held_out_error", rising)
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    events = _events(n2d_plane(y, Settings(steps=200, width=8, report_every=5, detail_guard=True)))
    last = events[-1]
    assert last[:3] == (3, 200, 200)  # a stopped fit reports its last step early
    assert last[4].stopped and last[4].step == 75 and last[4].error == 3.0
    assert not any(e[4].stopped for e in events[:-1] if e[4] is not None)


@pytest.mark.parametrize("pairs, detail_pairs", [("nonlocal", "nonlocal"), ("both", "both")])
def test_nonlocal_pairs_run_every_stage_and_change_the_result(pairs, detail_pairs):
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    base = Settings(steps=4, width=8, crop=16, batch=2, bank_window=7, bank_patch=3)
    outputs = {}
    for name, settings in (("diagonal", base), ("nonlocal", Settings(**{**base.__dict__, "pairs": pairs,
                                                                         "detail_pairs": detail_pairs}))):
        run = n2d_plane(y, settings, seed=0)
        try:
            while True:
                next(run)
        except StopIteration as done:
            outputs[name] = done.value[0]
    for a, b in zip(outputs["diagonal"], outputs["nonlocal"]):
        assert a.shape == b.shape == y.shape and torch.isfinite(b).all()
    assert not torch.equal(outputs["diagonal"][0], outputs["nonlocal"][0])  # stage 1 fitted on other pairs
