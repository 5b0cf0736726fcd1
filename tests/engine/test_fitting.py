import copy
from contextlib import nullcontext

import pytest
import torch

from napari_noise2detail.engine import fitting
from napari_noise2detail.engine.fitting import CropTable, fit, learning_rate
from napari_noise2detail.engine.network import make_network
from napari_noise2detail.engine.presets import Fit


def test_crop_table_takes_matching_crops_at_even_offsets():
    grid = torch.arange(32 * 40, dtype=torch.float32).reshape(1, 1, 32, 40)
    target = -grid
    sample = CropTable(grid, target, 8, 5, 3, torch.Generator().manual_seed(0))
    seen = []
    for _ in range(3):
        x, t = sample()
        assert x.shape == t.shape == (5, 1, 8, 8)
        assert torch.equal(t, -x)
        for crop in x:
            top, left = divmod(int(crop[0, 0, 0]), 40)
            assert top % 2 == 0 and left % 2 == 0
            assert torch.equal(crop, grid[0, :, top : top + 8, left : left + 8])
            seen.append((top, left))
    assert len(set(seen)) > 5  # every step takes new crops
    same = CropTable(grid, grid, 8, 2, 1, torch.Generator().manual_seed(0))()
    assert same[0] is same[1]
    whole = CropTable(grid, target, None, 4, 1, torch.Generator())()
    assert whole[0] is grid and whole[1] is target
    assert CropTable(grid, target, 64, 4, 1, torch.Generator())()[0] is grid


def test_crop_table_draws_from_every_plane_and_matches_seeds():
    planes = torch.arange(3 * 16 * 16, dtype=torch.float32).reshape(3, 1, 16, 16)
    table = CropTable(planes, planes, 4, 8, 20, torch.Generator().manual_seed(1))
    again = CropTable(planes, planes, 4, 8, 20, torch.Generator().manual_seed(1))
    found = set()
    for _ in range(20):
        x, _t = table()
        assert torch.equal(x, again()[0])  # same seed, same crops
        for crop in x:
            plane, rest = divmod(int(crop[0, 0, 0]), 256)
            top, left = divmod(rest, 16)
            assert torch.equal(crop, planes[plane, :, top : top + 4, left : left + 4])
            found.add(plane)
    assert found == {0, 1, 2}


def test_learning_rate_schedules():
    from napari_noise2detail.engine.presets import Fit

    paper = Fit(steps=2000, lr=1e-3, schedule="step")
    rates = [learning_rate(paper, step) for step in range(1, 2001)]
    # halved once, half-way: after 1000 of 2000 steps
    assert rates[0] == rates[999] == 1e-3 and rates[1000] == rates[1999] == 5e-4
    cosine = Fit(steps=100, lr=3e-3, schedule="cosine")
    assert learning_rate(cosine, 1) == 3e-3
    assert learning_rate(cosine, 51) == pytest.approx(1.5e-3)
    assert 0 < learning_rate(cosine, 100) < 1e-5
    # the same numbers as torch's own schedulers, step for step
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=3e-3)
    torch_cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=100)
    for step in range(1, 101):
        assert learning_rate(cosine, step) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        torch_cosine.step()


def test_guard_stops_when_the_held_out_error_rises_and_restores_the_best_state():
    torch.manual_seed(0)
    net = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 16, 16)
    errors = iter([5.0, 3.0, 2.0, 2.5, 2.6, 9.9])  # best at check 3 (step 75), then +25%, +30%
    states = []

    def held_out():
        states.append(copy.deepcopy(net.state_dict()))
        return next(errors)

    how = Fit(steps=1000, lr=1e-2, schedule="step")
    events = list(fit(net, net, lambda: (y, y), how, report_every=25, held_out=held_out))
    assert len(states) == 5  # checked at steps 25 ... 125, stopped at the second rise
    assert events[-1][0] == 1000  # the stage reports itself complete
    for name, value in net.state_dict().items():
        assert torch.equal(value, states[2][name])  # back to the state of the best check


def test_guard_read_late_gives_the_same_network():
    """On a GPU the guard's verdict is read only when progress is reported: the checks in
    between must not change which state is kept."""
    def run(report_every):
        torch.manual_seed(0)
        net = make_network(1, 8, seed=0)
        y = torch.rand(1, 1, 16, 16)
        errors = iter([5.0, 3.0, 2.0, 2.5, 2.6, 1.0, 0.5, 0.1] + [0.01] * 100)
        steps = [step for step, _ in fit(net, net, lambda: (y, y), Fit(steps=400, lr=1e-2, schedule="step"),
                                          report_every=report_every, held_out=lambda: next(errors))]
        return steps, net.state_dict()

    (soon, kept_soon), (late, kept_late) = run(25), run(200)
    assert soon[-1] == late[-1] == 400 and len(soon) == 5 and late == [400]
    for name, value in kept_soon.items():
        assert torch.equal(value, kept_late[name])


def test_guard_ignores_small_rises_and_fits_every_step():
    net = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 16, 16)
    errors = iter([2.0, 2.3, 2.1, 2.39, 2.2, 2.0, 2.1, 2.2])  # never 20% above the best twice
    how = Fit(steps=200, lr=1e-2, schedule="step")
    events = list(fit(net, net, lambda: (y, y), how, report_every=50, held_out=lambda: next(errors)))
    assert [step for step, _ in events] == [50, 100, 150, 200]


def test_keep_best_ends_a_fit_the_guard_did_not_stop_in_its_best_state():
    net = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 16, 16)
    errors = iter([2.0, 2.3, 2.1, 2.39, 2.2, 1.9, 2.1, 2.2])  # never stops; best at step 150
    states = []

    def held_out():
        states.append(copy.deepcopy(net.state_dict()))
        return next(errors)

    how = Fit(steps=200, lr=1e-2, schedule="step")
    events = list(fit(net, net, lambda: (y, y), how, report_every=50, held_out=held_out, keep_best=True))
    assert [step for step, _ in events] == [50, 100, 150, 200] and len(states) == 8
    for name, value in net.state_dict().items():
        assert torch.equal(value, states[5][name])


def _fit(steps=12, graph=False, precision="float32"):
    net = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    table = CropTable(y, y, 16, 2, steps, torch.Generator().manual_seed(0))
    how = Fit(steps=steps, lr=1e-2, schedule="cosine")
    events = list(fit(net, lambda u: u - net(u), table, how, report_every=5, graph=graph, precision=precision))
    return net, table, events


def test_graph_and_precision_options_are_bypassed_cleanly_on_the_cpu():
    plain, _, plain_events = _fit()
    graphed, _, graph_events = _fit(graph=True)  # CUDA only: ignored here
    assert graph_events == plain_events
    for a, b in zip(plain.parameters(), graphed.parameters()):
        assert torch.equal(a, b)
    bf16, _, bf16_events = _fit(precision="bfloat16")  # autocast on the CPU: runs, and differs
    assert [step for step, _ in bf16_events] == [5, 10, 12]
    assert all(loss == loss for _, loss in bf16_events)  # no NaN
    assert not all(torch.equal(a, b) for a, b in zip(plain.parameters(), bf16.parameters()))


@pytest.mark.parametrize("capture_fails", [False, True])
def test_the_cuda_graph_path_runs_the_same_steps(monkeypatch, capture_fails):
    """The CUDA-only path, on the CPU: warm-up steps, one capture, replays (here a stand-in
    that reruns the captured step the way a CUDA graph replays it), or step by step after a
    failed capture. It must fit exactly the steps the plain path fits."""
    captured = []

    def fake_capture(step):
        if capture_fails:
            raise RuntimeError("operation not permitted when stream is capturing")
        captured.append(step)
        out = torch.zeros(())

        def replay():
            for param in net.parameters():
                param.grad = None  # a replay writes the gradients afresh
            out.copy_(step())

        return replay, out

    plain, plain_table, plain_events = _fit(steps=20)
    monkeypatch.setattr(fitting, "graphs_work", lambda device: True)
    monkeypatch.setattr(fitting, "side_stream", nullcontext)
    monkeypatch.setattr(fitting, "capture_graph", fake_capture)
    net = make_network(1, 8, seed=0)
    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    table = CropTable(y, y, 16, 2, 20, torch.Generator().manual_seed(0))
    how = Fit(steps=20, lr=1e-2, schedule="cosine")
    if capture_fails:
        with pytest.warns(RuntimeWarning, match="step by step"):
            events = list(fit(net, lambda u: u - net(u), table, how, report_every=5, graph=True))
    else:
        events = list(fit(net, lambda u: u - net(u), table, how, report_every=5, graph=True))
        assert len(captured) == 1
    assert int(table.counter) == int(plain_table.counter) == 20  # every step took its crops once
    assert [s for s, _ in events] == [s for s, _ in plain_events] == [5, 10, 15, 20]
    for (_, loss), (_, plain_loss) in zip(events, plain_events):
        assert loss == pytest.approx(plain_loss, rel=1e-4)
    # the learning rate read from a tensor rounds differently in the last bits, nothing more
    for a, b in zip(plain.parameters(), net.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_step_split_between_workers_follows_the_whole_batch():
    from concurrent.futures import ThreadPoolExecutor

    from napari_noise2detail.engine.fitting import _Step

    y = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    results = []
    for workers in (1, 2, 3):  # 3 workers: shares of 2, 1 and 1 crops, weighted
        net = make_network(1, 8, seed=0)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        table = CropTable(y, y, 16, 4, 6, torch.Generator().manual_seed(0))
        step = _Step(lambda u: u - net(u), table, opt, torch.device("cpu"), "float32", graph=False)
        with ThreadPoolExecutor(3) as pool:
            losses = [float(step(workers, pool)) for _ in range(6)]
        results.append((losses, [p.detach().clone() for p in net.parameters()]))
    (whole_losses, whole), *splits = results
    for losses, params in splits:
        assert losses == pytest.approx(whole_losses, rel=1e-5)
        for a, b in zip(whole, params):
            assert torch.allclose(a, b, atol=1e-5)
