"""Where a fitted network's Noise2Noise pairs come from: a sampler of (input, target) per step
and the loss that goes with it.

- ``"diagonal"``: the paper's. Every step's crops of the input and the target; the loss splits
  each into the two diagonals of every 2x2 block (:func:`.losses.pair_loss`).
- ``"nonlocal"``: every pixel read at a member of its bank of similar pixels (:mod:`.bank`),
  input and target at different members; the loss is plain MSE at full resolution.
- ``"both"``: each step both kinds on crops of the same size, the two losses summed.
"""

from __future__ import annotations

from typing import Callable

import torch

from .bank import BankPairs, fit_tiles, similar_pixels
from .fitting import CropTable
from .losses import bank_loss, pair_loss
from .presets import Fit, Settings

#: The kinds of pairs a stage can be fitted on.
PAIRS = ("diagonal", "nonlocal", "both")

Sampler = Callable[[], tuple[torch.Tensor, torch.Tensor]]
Loss = Callable[[Callable, torch.Tensor, torch.Tensor], torch.Tensor]


class BothPairs:
    """Diagonal and nonlocal pairs in one step, side by side along the channels (so that a
    step split between workers by crops keeps both kinds in every share)."""

    def __init__(self, diagonal: CropTable, nonlocal_: BankPairs) -> None:
        self.diagonal, self.nonlocal_ = diagonal, nonlocal_
        self.batch = diagonal.batch

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        (x1, t1), (x2, t2) = self.diagonal(), self.nonlocal_()
        return torch.cat([x1, x2], dim=1), torch.cat([t1, t2], dim=1)


def both_loss(channels: int) -> Loss:
    """The loss of :class:`BothPairs`: N2D's pair loss on the first ``channels`` channels,
    plus MSE on the nonlocal pairs in the others."""

    def loss(predict: Callable, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pair_loss(predict, x[:, :channels], target[:, :channels])
                + bank_loss(predict, x[:, channels:], target[:, channels:]))

    return loss


def training_pairs(
    kind: str, x: torch.Tensor, target: torch.Tensor, guide: torch.Tensor, how: Fit,
    generator: torch.Generator, settings: Settings, from_self: bool = False,
) -> tuple[Sampler, Loss]:
    """The sampler and loss of a fit on ``kind`` pairs of ``x`` (input) and ``target``, all
    ``(K, C, H, W)``; nonlocal banks are matched on ``guide``. ``from_self``: nonlocal inputs
    are ``x`` as it is and only the targets are read at other members (see
    :class:`.bank.BankPairs`)."""
    if kind not in PAIRS:
        raise ValueError(f"pairs must be one of {', '.join(PAIRS)}, got {kind!r}")
    if kind == "diagonal":
        return CropTable(x, target, how.crop, how.batch, how.steps, generator), pair_loss
    diagonal = CropTable(x, target, how.crop, how.batch, how.steps, generator) if kind == "both" else None
    x_t, target_t, guide_t = fit_tiles([x, target, guide], generator)
    bank = similar_pixels(guide_t, settings.bank_members, settings.bank_window, settings.bank_patch)
    nonlocal_ = BankPairs(x_t, target_t, bank, how.crop, how.batch, how.steps, generator, from_self)
    if diagonal is None:
        return nonlocal_, bank_loss
    if x_t.shape[-2:] != x.shape[-2:] and not (how.crop is not None and how.crop <= min(x_t.shape[-2:])):
        raise ValueError(f"'both' pairs on a large image need crops of at most {min(x_t.shape[-2:])} pixels")
    return BothPairs(diagonal, nonlocal_), both_loss(x.shape[1])
