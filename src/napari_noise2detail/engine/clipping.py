"""Undoing the bias that clipping leaves in a denoised image (`declip`, on in `quality`).

An image whose noisy values were clipped at the limits of its range (an 8-bit export, a
saturated or offset-subtracted camera) holds ``min(high, max(low, x + n))``, not ``x + n``.
A denoiser fitted with squared error estimates the *mean* of that, which near a limit lies
inside the range by up to ``0.4 sigma``: dark background comes out grey, saturated parts dim.
With the noise's sigma known, the mean is a monotone function of ``x`` (Foi, "Clipped noisy
images: heteroskedastic modeling and practical denoising", Signal Processing 2009), so the
estimate can be mapped back through its inverse. Sigma is N2D's own noise estimate where it
found Gaussian noise; where it found none (it needs unclipped pixels, and often fails on a
clipped image), the sigma under which the clipped model's variance, at the declipped
estimate, matches the residual ``(noisy - estimate)^2`` (a bisection; no result near the
ends of its range). It never runs on shot noise, whose zeros are no clipping, nor on integer
data whose sigma is under :data:`LEAST_STEPS` steps (photon counts, more likely, and
quantisation dominates there). Everything here is in the data's own units, per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .stabilise import NoiseModel

#: A limit counts as clipping when at least this fraction of a channel's pixels sit on it
#: (an unclipped noisy image has one or a few pixels at its minimum and maximum).
CLIPPED = 0.01
#: Pixels (at most, evenly spaced) that the sigma is measured on.
SAMPLE = 1 << 18
#: Integer data are declipped only where sigma is at least this many of their steps.
LEAST_STEPS = 3.0
#: The clipped mean differs from ``x`` only within this many sigmas of a limit.
REACH = 8.0


@dataclass(frozen=True)
class Clipping:
    """Per channel, the noise's sigma and the limits the noisy values were clipped at (None:
    not clipped on that side), in the data's units."""

    sigma: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]


def find(raw: np.ndarray, noise: NoiseModel | None, result: Callable[[], np.ndarray]) -> Clipping | None:
    """The clipping to undo in the results of ``raw`` ``(K, H, W, C)``, whose noise N2D
    estimated as ``noise``: None for shot noise or an unclipped image; else its limits and
    :func:`estimate`'s sigma (``noise``'s own where it is Gaussian). ``result`` gives a
    denoised image of ``raw`` (same shape), asked for only where the image is clipped."""
    if noise is not None and noise.signal_dependent:  # shot noise's zeros are no clipping
        return None
    limits = clipped_limits(raw)
    if limits is None:
        return None
    known = noise.typical_sd if noise is not None else None
    return estimate(raw, result(), limits, known, np.issubdtype(raw.dtype, np.integer))


def clipped_limits(raw: np.ndarray) -> tuple[list[float | None], list[float | None]] | None:
    """The limits each channel of ``raw`` ``(K, H, W, C)`` is clipped at (see :data:`CLIPPED`),
    or None where no channel is clipped."""
    flat = raw.reshape(-1, raw.shape[-1])
    low, high = [], []
    for values in flat.T:
        least, most = values.min(), values.max()
        low.append(float(least) if np.mean(values == least) >= CLIPPED else None)
        high.append(float(most) if np.mean(values == most) >= CLIPPED else None)
    return (low, high) if any(v is not None for v in low + high) else None


def _moments(x: torch.Tensor, sigma: float, low: float | None, high: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and second moment of ``min(high, max(low, x + n))``, ``n ~ N(0, sigma^2)``."""
    lo = torch.full_like(x, -math.inf) if low is None else (low - x) / sigma
    hi = torch.full_like(x, math.inf) if high is None else (high - x) / sigma
    below, above = torch.special.ndtr(lo), torch.special.ndtr(-hi)
    pdf = lambda t: torch.where(torch.isinf(t), torch.zeros_like(t), torch.exp(-0.5 * t * t) / math.sqrt(2 * math.pi))
    dlo, dhi = pdf(lo), pdf(hi)
    inside = 1 - below - above
    lo_term = torch.where(torch.isinf(lo), torch.zeros_like(lo), lo * dlo)
    hi_term = torch.where(torch.isinf(hi), torch.zeros_like(hi), hi * dhi)
    low_v, high_v = (0.0 if low is None else low), (0.0 if high is None else high)
    mean = low_v * below + x * inside + sigma * (dlo - dhi) + high_v * above
    second = (low_v**2 * below + (x * x + sigma * sigma) * inside + 2 * x * sigma * (dlo - dhi)
              + sigma * sigma * (lo_term - hi_term) + high_v**2 * above)
    return mean, second


def _inverse(values: torch.Tensor, sigma: float, low: float | None, high: float | None,
             clamp: bool = True) -> torch.Tensor:
    """The ``x`` whose clipped mean is ``values`` (float64): the mean is ``x`` itself farther
    than :data:`REACH` sigmas from a limit, and a monotone map, inverted on a fine table,
    within it; kept within the limits unless ``clamp`` is False."""
    x = values.clone()
    for limit, side in ((low, 1.0), (high, -1.0)):
        if limit is None:
            continue
        # the table runs from beyond the limit to REACH sigmas inside it (both limits where
        # they are that close), fine enough for any range: 4097 points over 14 sigmas
        start, stop = sorted((limit - side * 6 * sigma, limit + side * REACH * sigma))
        xs = torch.linspace(start, stop, 4097, dtype=torch.float64)
        means = torch.cummax(_moments(xs, sigma, low, high)[0], 0).values  # exactly monotone
        near = (values - limit).abs() < REACH * sigma
        v = values[near].contiguous()
        where = torch.searchsorted(means, v).clamp(1, len(xs) - 1)
        m0, m1 = means[where - 1], means[where]
        t = ((v - m0) / (m1 - m0).clamp_min(1e-300)).clamp(0, 1)
        x[near] = xs[where - 1] + t * (xs[where] - xs[where - 1])
    if clamp:
        x = x.clamp(low if low is not None else -math.inf, high if high is not None else math.inf)
    return x


def estimate(raw: np.ndarray, estimate_: np.ndarray, limits: tuple[list, list], known: float | None = None,
             integer: bool = False) -> Clipping | None:
    """The clipping of ``raw`` ``(..., C)`` at ``limits`` with the sigma of each channel:
    ``known`` (N2D's estimate of Gaussian noise), or else the one under which the clipped
    model's variance at the declipped ``estimate_`` (a denoised image of ``raw``) is the mean
    of ``(raw - estimate_)^2`` (bisection over [1e-4, 1] x the channel's range, on at most
    :data:`SAMPLE` pixels). None where no sigma is found within that range or, for
    ``integer`` data, a sigma below :data:`LEAST_STEPS`: nothing to undo."""
    low, high = limits
    sigmas = []
    for c in range(raw.shape[-1]):
        sigma = known if known is not None else _matched_sigma(raw[..., c], estimate_[..., c], low[c], high[c])
        if sigma is None or (integer and sigma < LEAST_STEPS):
            return None
        sigmas.append(sigma)
    return Clipping(tuple(sigmas), tuple(low), tuple(high))


def _matched_sigma(raw: np.ndarray, estimate_: np.ndarray, low: float | None, high: float | None) -> float | None:
    """:func:`estimate`'s bisection for one channel; None where it runs into an end."""
    step = max(1, raw.size // SAMPLE)  # a moment needs no more pixels than that
    noisy = torch.from_numpy(np.ascontiguousarray(raw.reshape(-1)[::step], dtype=np.float64))
    guide = torch.from_numpy(np.ascontiguousarray(estimate_.reshape(-1)[::step], dtype=np.float64))
    span = float(noisy.max() - noisy.min()) or 1.0
    target = float(((noisy - guide) ** 2).mean())
    a, b = 1e-4 * span, span
    for _ in range(50):
        s = math.sqrt(a * b)  # bisection on the logarithm: sigma spans decades
        x = _inverse(guide, s, low, high, clamp=False)
        mean, second = _moments(x, s, low, high)
        if float((second - mean * mean).mean()) < target:
            a = s
        else:
            b = s
    sigma = math.sqrt(a * b)
    return sigma if 2e-4 * span < sigma < 0.5 * span else None  # at an end: no clipped Gaussian fits


def declip(values: np.ndarray, clipping: Clipping) -> np.ndarray:
    """``values`` ``(..., C)`` (estimates of the clipped image's mean, in the data's units)
    mapped back through the clipped mean's inverse, channel by channel."""
    out = np.empty(values.shape, dtype=np.float64)
    for c, (sigma, low, high) in enumerate(zip(clipping.sigma, clipping.low, clipping.high)):
        column = torch.from_numpy(np.ascontiguousarray(values[..., c], dtype=np.float64))
        out[..., c] = _inverse(column.reshape(-1), sigma, low, high).reshape(column.shape).numpy()
    return out
