"""The Noise2Noise pair loss that stage 1 and stage 3 share."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .downsample import pair_downsample


def pair_loss(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """``L_res + L_cons`` of N2D.

    Stage 1: ``predict(u) = u - f(u)``, ``x = target = y``.
    Stage 3: ``predict = g``, ``x = s2`` (the smooth image), ``target = y`` (the noisy one).

    The two half-resolution views go through the network in one batch: same numbers as two
    calls, one kernel launch fewer.
    """
    x1, x2 = pair_downsample(x)
    t1, t2 = pair_downsample(target)
    p1, p2 = predict(torch.cat([x1, x2])).chunk(2)
    residual = 0.5 * (F.mse_loss(p2, t1) + F.mse_loss(p1, t2))
    d1, d2 = pair_downsample(predict(x))
    consistency = 0.5 * (F.mse_loss(p1, d1) + F.mse_loss(p2, d2))
    return residual + consistency


def bank_loss(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Noise2Noise on full-resolution pairs (two members of the pixels' banks, see
    :mod:`.bank`): ``MSE(predict(x), target)``. No downsampling: the network learns at the
    noise level it is applied at."""
    return F.mse_loss(predict(x), target)
