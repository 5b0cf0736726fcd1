"""Fitting settings, and the named presets users choose from."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from numbers import Integral


#: Number formats the fit can run in.
PRECISIONS = ("float32", "bfloat16", "auto")


@dataclass(frozen=True)
class Settings:
    """How hard to fit. The method itself does not change between presets."""

    #: Optimisation steps for each fitted network (stage 1 and stage 3 alike).
    steps: int = 1000
    #: Steps for stage 3 only, when it should differ from ``steps``. Overriding only ``steps``
    #: of a preset scales this in proportion.
    detail_steps: int | None = None
    #: Fit on a batch of random square crops of this side (even, pixels) instead of the
    #: whole image: the cost of a step no longer grows with the image. None: whole image.
    crop: int | None = None
    #: Crops per step (with ``crop``).
    batch: int = 1
    #: Learning-rate schedule: "step" (halved once, half-way: the paper's) or "cosine".
    schedule: str = "step"
    #: Stage 3's crops, learning rate and schedule, when they should differ from stage 1's.
    detail_crop: int | None = None
    detail_batch: int | None = None
    detail_lr: float | None = None
    detail_schedule: str | None = None
    #: Start stage 1 from "no noise" (the last layer of f zeroed, so y - f(y) = y): the first
    #: steps then refine the image instead of undoing a random guess. The paper starts from
    #: PyTorch's default initialisation.
    zero_noise_init: bool = False
    #: Stacks: planes after the first start from the networks fitted on the plane before and
    #: get this many steps per stage (at most ``steps``; a third of the learning rate, cosine).
    #: None: every plane is fitted from scratch, as the paper treats every image.
    plane_steps: int | None = None
    #: Fit N2D on the variance-stabilised image (generalised Anscombe transform) when the noise,
    #: estimated from the image, grows clearly with the signal (shot noise). The paper does not.
    stabilise: bool = False
    #: Stop stage 3 once it starts to learn the noise (its error on held-out pairs of
    #: half-resolution views rises 20% above its best) and keep its best state. The paper
    #: fits all the steps.
    detail_guard: bool = False
    #: With ``detail_guard``: a stage 3 that the guard does not stop still ends in its state of
    #: lowest held-out error, not its last one.
    detail_keep_best: bool = False
    #: Average the fitted networks' outputs over this many flips and rotations of the image
    #: (1, 2, 4 or 8). The paper applies them once.
    ensemble: int = 1
    #: RGB: fit in an opponent colour space (brightness and two colour differences, orthonormal)
    #: instead of R, G, B. The paper fits R, G, B.
    decorrelate: bool = False
    #: Where stage 1's Noise2Noise pairs come from: "diagonal" (the paper's: the two diagonals
    #: of every 2x2 block), "nonlocal" (two different members of every pixel's bank of similar
    #: pixels, matched on the noisy image; see .bank) or "both" (both kinds each step).
    pairs: str = "diagonal"
    #: The same for stage 3, whose input stays the smooth image: "nonlocal" reads its target
    #: at another member of the pixel's bank, matched on the smooth image.
    detail_pairs: str = "diagonal"
    #: After stage 3, filter the noisy image in groups of similar patches matched on stage 3's
    #: result (BM3D's second step, see .wiener); the detail output is then the filtered image.
    #: The paper stops at stage 3.
    wiener: bool = False
    #: Where the image is clipped at its limits and its noise is Gaussian (or could not be
    #: estimated), undo the bias the clipping leaves in every result (see .clipping).
    declip: bool = False
    #: Banks of similar pixels: members per pixel, side of the search window and of the
    #: patches compared (odd, pixels).
    bank_members: int = 8
    bank_window: int = 21
    bank_patch: int = 7
    #: Channels of the hidden layers.
    width: int = 48
    #: Adam learning rate, at the start (how it falls: ``schedule``).
    lr: float = 1e-3
    #: Report progress (and allow cancellation) every this many steps.
    report_every: int = 10
    #: Largest inference tile in pixels (None: whole image at once). Tiling is exact; a CPU
    #: uses smaller, cache-sized tiles and CUDA larger ones (see ``device.inference_tile``).
    tile: int | None = 1024
    #: Channels-last tensors: identical numbers, faster convolutions on CPU and CUDA.
    channels_last: bool = True
    #: Number format of the fitting steps' forward and backward passes: "float32"; "bfloat16"
    #: (autocast: weights, optimiser and loss stay float32; see apply_precision); or "auto":
    #: bfloat16 where the device computes it natively (see ``device.native_bfloat16``).
    precision: str = "float32"
    #: Number format in which the fitted networks are applied (stages 1-3 on whole images):
    #: "float32", "bfloat16" or "auto" (bfloat16 where the device computes it natively). The
    #: results are float32 either way. Decided on the device the model is applied on.
    apply_precision: str = "float32"
    #: On CUDA, capture each fitting step once as a CUDA graph and replay it (same numbers,
    #: far less launching from Python). Ignored on other devices.
    cuda_graph: bool = True

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", "int | None") and value is not None:
                if not _whole(value):
                    raise TypeError(f"{field.name} must be a whole number, got {value!r}")
                object.__setattr__(self, field.name, int(value))  # numpy's integers: plain, for JSON
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.detail_steps is not None and self.detail_steps < 1:
            raise ValueError(f"detail_steps must be at least 1, got {self.detail_steps}")
        for name in ("crop", "detail_crop"):
            value = getattr(self, name)
            if value is not None and (value < 8 or value % 2):
                raise ValueError(f"{name} must be an even number of pixels, at least 8, got {value}")
        for name in ("batch", "detail_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("schedule", "detail_schedule"):
            value = getattr(self, name)
            if value not in ("step", "cosine") and not (name == "detail_schedule" and value is None):
                raise ValueError(f"{name} must be 'step' or 'cosine', got {value!r}")
        if self.detail_lr is not None and not self.detail_lr > 0:
            raise ValueError(f"detail_lr must be positive, got {self.detail_lr}")
        if self.plane_steps is not None and self.plane_steps < 0:
            raise ValueError(f"plane_steps must be 0 or more, got {self.plane_steps}")
        for name in ("pairs", "detail_pairs"):
            if getattr(self, name) not in ("diagonal", "nonlocal", "both"):
                raise ValueError(f"{name} must be 'diagonal', 'nonlocal' or 'both', got {getattr(self, name)!r}")
        if self.bank_members < 2:
            raise ValueError(f"bank_members must be at least 2, got {self.bank_members}")
        for name in ("bank_window", "bank_patch"):
            if getattr(self, name) < 1 or getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} must be an odd number of pixels, got {getattr(self, name)}")
        if self.bank_members > self.bank_window ** 2:
            raise ValueError(f"{self.bank_members} bank members do not fit in a {self.bank_window}-pixel window")
        if self.bank_members > 256:  # the pairs draw members as bytes (bank.BankPairs)
            raise ValueError(f"bank_members must be at most 256, got {self.bank_members}")
        if self.ensemble not in (1, 2, 4, 8):
            raise ValueError(f"ensemble must be 1, 2, 4 or 8, got {self.ensemble}")
        if self.width < 1:
            raise ValueError(f"width must be at least 1, got {self.width}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.report_every < 1:
            raise ValueError(f"report_every must be at least 1, got {self.report_every}")
        for name in ("precision", "apply_precision"):
            if getattr(self, name) not in PRECISIONS:
                raise ValueError(f"{name} must be one of {', '.join(PRECISIONS)}, got {getattr(self, name)!r}")
        if self.tile is not None and self.tile < 16:
            raise ValueError(f"tile must be at least 16 pixels, got {self.tile}")

    @property
    def stage_steps(self) -> tuple[int, int]:
        """Steps of stage 1 and of stage 3."""
        return self.steps, self.detail_steps or self.steps

    def fits(self, warm: bool = False) -> tuple["Fit", "Fit"]:
        """How stage 1 and stage 3 are fitted; ``warm``: continuing from a neighbouring plane."""
        steps1, steps3 = self.stage_steps
        lr3 = self.detail_lr or self.lr
        crop3 = self.detail_crop or self.crop
        batch3 = self.detail_batch or self.batch
        if warm and self.plane_steps is not None:  # never longer than a fit from scratch
            return (Fit(min(self.plane_steps, steps1), self.lr / 3, "cosine", self.crop, self.batch),
                    Fit(min(self.plane_steps, steps3), lr3 / 3, "cosine", crop3, batch3))
        return (Fit(steps1, self.lr, self.schedule, self.crop, self.batch),
                Fit(steps3, lr3, self.detail_schedule or self.schedule, crop3, batch3))


def _whole(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_seed(seed: object) -> int:
    """``seed`` if it is a whole number; a clear error otherwise (torch's would name its own code)."""
    if not _whole(seed):
        raise TypeError(f"seed must be a whole number, got {seed!r}")
    return int(seed)  # type: ignore[call-overload]


@dataclass(frozen=True)
class Fit:
    """One network's optimisation: Adam steps, learning rate, schedule, crops per step."""

    steps: int
    lr: float
    schedule: str
    crop: int | None = None
    batch: int = 1


PRESETS: dict[str, Settings] = {
    # The paper's settings, unchanged: 2000 full-image steps per stage, width 48.
    "paper": Settings(steps=2000),
    # Fitting on a few random crops per step instead of the whole image, so the cost of a step
    # no longer grows with the image: stage 1, 1200 steps on 4 crops of 32x32 at lr 3e-3 on a
    # cosine schedule from a zero-noise start; stage 3, 800 steps on 2 crops of 64x64 at the
    # paper's lr and schedule. Stacks: later planes continue from the plane before with 100
    # steps per stage. Chosen in a sweep on 4 images x 2 noises; measured in docs/benchmarks.md.
    # The fitting steps run in bfloat16 where the hardware has it: 1.5x faster on a Zen 4 CPU,
    # detail PSNR +0.02 dB on average over 32 runs (docs/presets-and-speed.md).
    "fast": Settings(
        steps=1200, detail_steps=800, crop=32, batch=4, lr=3e-3, schedule="cosine",
        detail_crop=64, detail_batch=2, detail_lr=1e-3, detail_schedule="step",
        zero_noise_init=True, plane_steps=100, detail_guard=True, precision="auto", apply_precision="auto",
    ),
}
# `fast`, then the noisy image filtered in groups of similar patches matched on fast's result
# (BM3D's second step with N2D as its first estimate, see .wiener). Measured in
# docs/quality.md.
PRESETS["quality"] = replace(PRESETS["fast"], wiener=True, declip=True)

#: One line per preset for people (see :func:`presets_explained`).
PRESET_NOTES = {
    "fast": "about 25x faster than paper at nearly its quality (the default)",
    "quality": "fast, then filtered in groups of similar patches matched on its result (BM3D's "
               "second step): about 1.3 dB better on average; slower on big images",
    "paper": "the method exactly as published (2000 whole-image steps a stage: minutes an image)",
}


def presets_explained(separator: str) -> str:
    """Every preset with its note, ``"fast: ..."``, joined by ``separator``: the command
    line's ``--preset`` help and the docks' tooltips."""
    return separator.join(f"{name}: {note}" for name, note in PRESET_NOTES.items())


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
    # None is "not given" (the preset's value) for a setting that cannot be None (steps, as
    # the command line passes it); a setting that can is set to it (tile=None: whole images)
    nullable = {f.name for f in fields(Settings) if "None" in str(f.type)}
    given = {k: v for k, v in overrides.items() if v is not None or k in nullable}
    if "steps" in given and "detail_steps" not in given and base.detail_steps is not None and _whole(given["steps"]):
        # "fewer steps" means fewer in both stages: stage 3 keeps the preset's proportion
        given["detail_steps"] = max(1, round(base.detail_steps * given["steps"] / base.steps))
    return replace(base, **given) if given else base
