"""What a run reports while it works (:class:`Progress`) and gives back (:class:`DenoiseResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generator, TypeVar

from .clipping import Clipping
from .presets import Settings
from .stabilise import NoiseModel

#: Stage 0 is applying fitted networks, without fitting; stage 4 the filtering after stage 3
#: (``Settings.wiener``, the `quality` preset), which is no stage of the method.
STAGE_NAMES = {0: "applying the model", 1: "partial denoising", 2: "smoothing", 3: "detail recovery",
               4: "filtering in groups of similar patches"}
#: The outputs, by DenoiseResult attribute, in the order of the stages.
KINDS = ("partial", "smooth", "detail")


Event = TypeVar("Event")


def relabelled(run: Generator[Any, None, Any], label: Callable[[Any], Event]) -> Generator[Event, None, Any]:
    """The events of ``run``, each passed through ``label`` (its place in a larger run, say);
    returns what ``run`` returns. ``run`` is closed when this ends, cancelled or not, so that a
    cancel frees the engine's memory at once."""
    try:
        while True:
            try:
                event = next(run)
            except StopIteration as done:
                return done.value
            yield label(event)
    finally:
        run.close()


class Cancelled(Exception):
    """The caller stopped a run; no result was produced."""


@dataclass(frozen=True)
class HeldOut:
    """Stage 3's guard (``detail_guard``) at its latest check: the error of the stage-3
    network on held-out pairs (in the units of the loss), the step of that check, and whether
    the guard has stopped the fit (it then keeps the network of the lowest error)."""

    step: int
    error: float
    stopped: bool = False


@dataclass(frozen=True)
class Progress:
    """Where a run is. ``plane`` is 0-based; ``fraction`` covers the whole run (0..1)."""

    plane: int
    planes: int
    stage: int
    step: int
    total: int
    loss: float | None
    fraction: float
    #: Stage 3 with the detail guard, once it has checked: what it saw (None otherwise).
    held_out: HeldOut | None = None
    #: While fitting: how many planes the networks are fitted to together (a model fitted
    #: once on a few planes of a stack); ``plane`` is then the first of them.
    fitted_on: int = 1
    #: For a stack denoised a channel at a time: the channel, whose own planes ``plane`` and
    #: ``planes`` count.
    channel: int | None = None

    @property
    def stage_name(self) -> str:
        return STAGE_NAMES[self.stage]

    @property
    def stage_label(self) -> str:
        """``"stage 1/3 (partial denoising)"``; the name alone for stages 0 and 4."""
        return f"stage {self.stage}/3 ({self.stage_name})" if 1 <= self.stage <= 3 else self.stage_name

    def describe(self) -> str:
        """One line for people, e.g. ``"plane 2/5, stage 1/3 (partial denoising), step 40/1200"``."""
        plane = f"plane {self.plane + 1}/{self.planes}, " if self.planes > 1 else ""
        if self.fitted_on > 1:
            plane = f"{self.fitted_on} planes fitted together, "
        if self.channel is not None:
            plane = f"channel {self.channel}, {plane}"
        if not 1 <= self.stage <= 3:
            return f"{plane}{self.stage_label}"
        return f"{plane}{self.stage_label}, step {self.step}/{self.total}"


@dataclass(frozen=True)
class DenoiseResult:
    """The three N2D outputs, float32, same shape and intensity units as the input.

    They are numpy arrays, or the arrays given to ``Denoiser.apply(out=...)`` (for example
    zarr arrays on disk) that the results were written into.
    """

    partial: Any  # stage 1
    smooth: Any  # stage 2
    detail: Any  # stage 3: the denoised image
    device: str
    settings: Settings
    seconds: float
    #: The noise found in the image (variance = a * signal + b, in its intensity units),
    #: whether it is shot noise and whether N2D was fitted on the variance-stabilised image;
    #: None if it could not be estimated (a flat or tiny image, one clipped almost everywhere).
    noise: NoiseModel | None = None
    #: Where the noisy image was clipped at its limits and the clipping's bias was undone
    #: (``declip``): the noise's sigma and the limits, per channel (the first clipped plane's,
    #: in a stack fitted plane by plane); None otherwise.
    clipping: Clipping | None = None
    #: A model applied with ``refit``: the planes it did not cover, fitted on their own (see
    #: ``Denoiser.apply``).
    refitted: tuple[int, ...] = ()
