"""Fitting settings, and the named presets users choose from."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Settings:
    """How hard to fit. The method itself does not change between presets."""

    #: Optimisation steps for each fitted network (stage 1 and stage 3 alike).
    steps: int = 1000
    #: Steps for stage 3 only, when it should differ from ``steps``.
    detail_steps: int | None = None
    #: Fit on a batch of random square crops of this side (even, pixels) instead of the
    #: whole image: the cost of a step no longer grows with the image. None: whole image.
    crop: int | None = None
    #: Crops per step (with ``crop``).
    batch: int = 1
    #: Learning-rate schedule: "step" (halved once, half-way: the paper's) or "cosine".
    schedule: str = "step"
    #: Channels of the hidden layers.
    width: int = 48
    #: Adam learning rate; halved once, half-way through the steps.
    lr: float = 1e-3
    #: Report progress (and allow cancellation) every this many steps.
    report_every: int = 10
    #: Inference tile size in pixels (None: whole image at once). Tiling is exact.
    tile: int | None = 1024
    #: Channels-last tensors: identical numbers, faster convolutions on CPU and CUDA.
    channels_last: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.detail_steps is not None and self.detail_steps < 1:
            raise ValueError(f"detail_steps must be at least 1, got {self.detail_steps}")
        if self.crop is not None and (self.crop < 8 or self.crop % 2):
            raise ValueError(f"crop must be an even number of pixels, at least 8, got {self.crop}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.width < 1:
            raise ValueError(f"width must be at least 1, got {self.width}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.report_every < 1:
            raise ValueError(f"report_every must be at least 1, got {self.report_every}")
        if self.tile is not None and self.tile < 16:
            raise ValueError(f"tile must be at least 16 pixels, got {self.tile}")

    @property
    def stage_steps(self) -> tuple[int, int]:
        """Steps of stage 1 and of stage 3."""
        return self.steps, self.detail_steps or self.steps


PRESETS: dict[str, Settings] = {
    # The paper's settings, unchanged: 2000 full-image steps per stage, width 48.
    "paper": Settings(steps=2000),
    # Half the steps: about 2.3x faster for about 0.15 dB.
    "fast": Settings(steps=1000),
}


def resolve_settings(preset: str | Settings, **overrides: object) -> Settings:
    """A preset by name (or a Settings), with any field overridden by keyword."""
    if isinstance(preset, Settings):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(base, **given) if given else base
