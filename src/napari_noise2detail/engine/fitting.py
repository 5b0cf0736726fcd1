"""Fitting one network with Adam on the pair loss: the loop that stage 1 and stage 3 share.

One code path for every device. What differs is only how the same step is *run*:
- every step's crop positions are drawn before the fit (on the CPU generator, so a seed gives
  the same crops everywhere) and picked on the device by a counter the step advances itself;
  the learning rate is written into the optimiser before each step; the stage-3 guard keeps
  its best state on the device. Nothing is read back to the host except when progress is
  reported, so a GPU is never left waiting for Python;
- on CUDA the step (crops, forward, backward, Adam) is captured once as a CUDA graph and
  replayed: a few microseconds of launching per step instead of a hundred kernel launches
  from Python. If capture fails, the fit goes on step by step (with a warning);
- on the CPU the steps run with the thread count that is fastest now (:mod:`.threads`).
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import torch
from torch import nn

from .losses import pair_loss
from .presets import Fit
from .threads import AdaptiveThreads, torch_threads

#: Stage 3's guard: every this many steps, the held-out error of g is checked ...
GUARD_EVERY = 25
#: ... and when it stays this much above its best for two checks in a row, g has started to
#: learn the noise: the fit stops and g goes back to its best state.
GUARD_RISE = 0.2
#: Steps run one by one before a CUDA graph is captured (the allocator and cuDNN settle).
GRAPH_WARMUP = 3


class CropTable:
    """The (input, target) pair of every step: the whole images, or a batch of random square
    crops taken at the same place in both, at even coordinates so that the pair downsampler
    sees the same 2x2 blocks as on the whole image.

    ``x`` and ``target`` are ``(K, C, H, W)``: K planes (a plane of a stack, or several to fit
    one model to all of them), each crop from a plane drawn at random. Without crops, every
    step sees all K planes. Calling the table gives the next step's pair.
    """

    def __init__(
        self, x: torch.Tensor, target: torch.Tensor, crop: int | None, batch: int, steps: int,
        generator: torch.Generator,
    ) -> None:
        planes, channels, height, width = x.shape
        self.channels = channels
        self.same = target is x
        self.whole = whole_image(crop, height, width)
        #: Images per step: the crops, or the planes when they are taken whole.
        self.batch = planes if self.whole else batch
        if self.whole:
            self.pair = (x, target)
            return
        self.table, (ch, cw) = crop_table(x.shape, crop, batch, steps, generator)
        self.table = self.table.to(x.device)
        self.counter = torch.zeros(1, dtype=torch.long, device=x.device)
        self.both = x if self.same else torch.cat([x, target], dim=1)
        self.rows = torch.arange(ch, device=x.device)
        self.cols = torch.arange(cw, device=x.device)

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.whole:
            return self.pair
        where = self.table.index_select(0, self.counter)[0]  # (batch, 3), read on the device
        self.counter += 1
        plane = where[:, 0, None, None]
        rows = (where[:, 1, None] + self.rows)[:, :, None]
        cols = (where[:, 2, None] + self.cols)[:, None, :]
        # (batch, ch, cw, C) -> (batch, C, ch, cw): channels-last strides, as the networks use
        pieces = self.both[plane, :, rows, cols].permute(0, 3, 1, 2)
        if self.same:
            return pieces, pieces
        return pieces[:, : self.channels], pieces[:, self.channels :]


def whole_image(crop: int | None, height: int, width: int) -> bool:
    """Whether crops of side ``crop`` (None: no crops) are the whole ``height`` x ``width``."""
    return crop is None or (crop >= height and crop >= width)


def crop_table(
    shape: tuple[int, ...], crop: int, batch: int, steps: int, generator: torch.Generator,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Where each step's ``batch`` crops of images ``shape`` ``(K, C, H, W)`` lie, drawn
    before the fit on the CPU ``generator`` (a seed gives the same crops on any device):
    ``(steps, batch, 3)`` rows of (plane, top, left), top and left even so that a crop keeps
    the 2x2 blocks the pairs are drawn from; and the crops' (height, width)."""
    planes, _channels, height, width = shape
    ch, cw = min(crop, height), min(crop, width)
    size = (max(steps, 1), batch)
    which = torch.randint(0, planes, size, generator=generator)
    tops = torch.randint(0, (height - ch) // 2 + 1, size, generator=generator) * 2
    lefts = torch.randint(0, (width - cw) // 2 + 1, size, generator=generator) * 2
    return torch.stack([which, tops, lefts], dim=-1), (ch, cw)


def learning_rate(how: Fit, step: int) -> float:
    """The learning rate of ``step`` (1-based): ``"step"`` halves it once, half-way (the
    paper's: after 1000 of 2000 steps); ``"cosine"`` anneals it to 0 over the fit."""
    done = step - 1
    if how.schedule == "cosine":
        return how.lr * (1 + math.cos(math.pi * done / how.steps)) / 2
    return how.lr * (0.5 if done >= max(how.steps // 2, 1) else 1.0)


class Guard:
    """Stage 3's stop: the held-out error, its best value, the state of the network at that
    best, and whether it has risen :data:`GUARD_RISE` above it at two checks in a row; all on
    the device. Once stopped, nothing changes any more, so reading :attr:`stopped` late (when
    progress is next reported) gives the same result as reading it at once."""

    def __init__(self, net: nn.Module, error: Callable[[], torch.Tensor | float]) -> None:
        self.error = error
        self.params = [p for p in net.parameters()]
        device = self.params[0].device
        self.saved = [p.detach().clone() for p in self.params]
        self.best = torch.tensor(float("inf"), device=device)
        self.rising = torch.zeros((), dtype=torch.long, device=device)
        self.stopped = torch.zeros((), dtype=torch.bool, device=device)

    @torch.no_grad()
    def check(self) -> None:
        error = torch.as_tensor(self.error(), dtype=self.best.dtype, device=self.best.device)
        better = (error < self.best) & ~self.stopped
        self.best = torch.where(better, error, self.best)
        for saved, param in zip(self.saved, self.params):
            saved.copy_(torch.where(better, param, saved))
        rose = error > self.best * (1 + GUARD_RISE)
        rising = torch.where(better | ~rose, 0, self.rising + 1)
        self.rising = torch.where(self.stopped, self.rising, rising)
        self.stopped = self.stopped | (self.rising >= 2)

    @torch.no_grad()
    def restore(self) -> None:
        for saved, param in zip(self.saved, self.params):
            param.copy_(saved)


def graphs_work(device: torch.device) -> bool:
    """Whether fitting steps can be captured as CUDA graphs on ``device``."""
    return device.type == "cuda"


def capture_graph(step: Callable[[], torch.Tensor]) -> tuple[Callable[[], None], torch.Tensor]:
    """Capture ``step`` as a CUDA graph (recorded, not run); returns (replay, its output)."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = step()
    return graph.replay, out


@contextmanager
def side_stream() -> Iterator[None]:
    """Run the block on a fresh CUDA stream, as the steps before a capture must be."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream().wait_stream(stream)


class _Step:
    """One optimisation step: run from Python, or (``graph``) run :data:`GRAPH_WARMUP`
    times, then captured once and replayed. A replay writes the gradients afresh (they were
    unset when it was captured), which is what setting them to None before every step does.

    On the CPU a step can be split between workers (see :class:`.threads.Mode`): each
    computes the gradient of its share of the crops; their mean, weighted by the shares, is
    the gradient of the whole batch."""

    def __init__(
        self, predict: Callable, sample: Callable, opt: torch.optim.Optimizer, device: torch.device,
        precision: str, graph: bool, loss: Callable = pair_loss,
    ) -> None:
        self.predict, self.sample, self.opt, self.loss_of = predict, sample, opt, loss
        self.params = [p for group in opt.param_groups for p in group["params"]]
        self.device, self.precision = device, precision
        self.graph = graph  # still to be captured
        self.replay: Callable[[], None] | None = None
        self.loss = torch.zeros(())
        self.calls = 0

    def _autocast(self) -> Any:
        """A fresh autocast context (its state is the thread's: workers need their own)."""
        if self.precision != "bfloat16":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=not self.graph)

    def _once(self, workers: int = 1, pool: ThreadPoolExecutor | None = None) -> torch.Tensor:
        x, target = self.sample()
        if workers > 1 and pool is not None and x.shape[0] >= workers:
            return self._split(x, target, workers, pool)
        with self._autocast():
            loss = self.loss_of(self.predict, x, target)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _split(self, x: torch.Tensor, target: torch.Tensor, workers: int, pool: ThreadPoolExecutor) -> torch.Tensor:
        parts = list(zip(x.tensor_split(workers), target.tensor_split(workers)))

        def gradient(part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
            with self._autocast():
                loss = self.loss_of(self.predict, *part)
            return loss.detach(), torch.autograd.grad(loss, self.params)

        results = list(pool.map(gradient, parts))
        shares = [len(part[0]) / len(x) for part in parts]
        for i, param in enumerate(self.params):
            param.grad = sum(share * grads[i] for share, (_, grads) in zip(shares, results))
        self.opt.step()
        return sum(share * loss for share, (loss, _) in zip(shares, results))

    def __call__(self, workers: int = 1, pool: ThreadPoolExecutor | None = None) -> torch.Tensor:
        if self.replay is not None:
            self.replay()
            return self.loss
        self.calls += 1
        if self.graph and self.calls > GRAPH_WARMUP:
            self.graph = False
            self.opt.zero_grad(set_to_none=True)  # the captured backward allocates them
            try:
                self.replay, self.loss = capture_graph(self._once)
            except Exception as error:  # noqa: BLE001 - the steps work without a graph
                warnings.warn(f"fitting step by step: capturing a CUDA graph failed ({error})",
                              RuntimeWarning, stacklevel=2)
                self.replay = None
            else:
                self.replay()
                return self.loss
        self.opt.zero_grad(set_to_none=True)
        with side_stream() if self.graph else nullcontext():
            return self._once(workers, pool)


def fit(
    net: nn.Module,
    predict: Callable[[torch.Tensor], torch.Tensor],
    sample: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    how: Fit,
    report_every: int,
    held_out: Callable[[], torch.Tensor | float] | None = None,
    threads: AdaptiveThreads | None = None,
    precision: str = "float32",
    graph: bool = False,
    loss: Callable = pair_loss,
    keep_best: bool = False,
) -> Iterator[tuple[int, float]]:
    """Adam on the pair loss; yields (step, loss) every ``report_every`` steps and at the end.

    ``sample`` gives each step's (input, target), e.g. a :class:`CropTable`. ``held_out``: an
    error of ``net`` on data it is not fitted to, for the :class:`Guard`; a fit it stops
    reports its last step as the final one. ``threads``: CPU only, chooses the thread count
    step by step. ``precision="bfloat16"``: the forward and backward passes in bfloat16
    (weights, optimiser and loss stay float32). ``graph``: capture the step as a CUDA graph.
    The loss is read back (a device sync) only when it is reported. ``loss(predict, input,
    target)``: N2D's pair loss, or another (``losses.bank_loss`` for nonlocal pairs).
    ``keep_best``: with ``held_out``, a fit that runs to the end also goes back to the state
    of its lowest held-out error (the guard alone does so only when it stops the fit).
    """
    steps = how.steps
    if steps == 0:  # a warm start used as it is
        net.requires_grad_(False).eval()
        return
    device = next(net.parameters()).device
    graph = graph and graphs_work(device)
    net.requires_grad_(True)
    net.train()
    # A captured graph reads the learning rate from the device, where it is written each step.
    lr: float | torch.Tensor = torch.tensor(how.lr, device=device) if graph else how.lr
    opt = torch.optim.Adam(net.parameters(), lr=lr, capturable=graph and device.type == "cuda")
    step_once = _Step(predict, sample, opt, device, precision, graph, loss)
    guard = Guard(net, held_out) if held_out is not None else None
    timed, keep, pool = nullcontext, nullcontext(), None
    if threads is not None and device.type == "cpu" and threads.adaptive:
        threads.restart(split=getattr(sample, "batch", 1) >= 2)
        # the fit changes the threads step by step; what follows gets the count it had before
        timed, keep = threads.step, torch_threads(torch.get_num_threads())
        if any(mode.workers > 1 for mode in threads.candidates):
            pool = ThreadPoolExecutor(max(mode.workers for mode in threads.candidates))
    with torch.enable_grad(), keep, pool or nullcontext():
        for step in range(1, steps + 1):
            rate = learning_rate(how, step)
            for group in opt.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(rate)
                else:
                    group["lr"] = rate
            with timed() as mode:
                loss = step_once(mode.workers if mode else 1, pool)
            if guard is not None and step % GUARD_EVERY == 0:
                guard.check()
            if step % report_every == 0 or step == steps:
                if guard is not None and bool(guard.stopped):
                    guard.restore()
                    yield steps, float(loss)
                    break
                yield step, float(loss)
        else:
            if guard is not None and keep_best:
                if steps % GUARD_EVERY:
                    guard.check()  # the last step counts too
                guard.restore()
    opt.zero_grad(set_to_none=True)
    net.requires_grad_(False)
    net.eval()
