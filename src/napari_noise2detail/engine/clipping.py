"""Undoing the bias that clipping leaves in a denoised image (`declip`, on in `quality`).

An image whose noisy values were clipped at the limits of its range (an 8-bit export, a
saturated or offset-subtracted camera) holds ``min(high, max(low, x + n))``, not ``x + n``.
A denoiser fitted with squared error estimates the *mean* of that, which near a limit lies
inside the range by up to ``0.4 sigma``: dark background comes out grey, saturated parts dim.
With the noise's sigma known, the mean is a monotone function of ``x`` (Foi, "Clipped noisy
images: heteroskedastic modeling and practical denoising", Signal Processing 2009), so the
estimate can be mapped back through its inverse. Sigma is found from the image itself: the
one under which the clipped model's second moments, at the declipped estimate, match the
noisy image's (a bisection): N2D's own noise estimate often fails on a clipped image (it
needs unclipped pixels). It runs where the noise is Gaussian or could not be estimated, never
on shot noise, whose zeros are no clipping; the noise is taken as Gaussian of one sigma per
channel. Everything here is in the data's own units, per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

#: A limit counts as clipping when at least this fraction of a channel's pixels sit on it
#: (an unclipped noisy image has one or a few pixels at its minimum and maximum).
CLIPPED = 0.01
#: Pixels (at most, evenly spaced) that the sigma is measured on.
SAMPLE = 1 << 18


@dataclass(frozen=True)
class Clipping:
    """Per channel, the noise's sigma and the limits the noisy values were clipped at (None:
    not clipped on that side), in the data's units."""

    sigma: tuple[float, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]


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
    below, above = torch.special.ndtr(lo), 1 - torch.special.ndtr(hi)
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


def _inverse(values: torch.Tensor, sigma: float, low: float | None, high: float | None) -> torch.Tensor:
    """The ``x`` whose clipped mean is ``values`` (a monotone map, inverted on a fine table),
    kept within the limits."""
    start = (low if low is not None else float(values.min())) - 4 * sigma
    stop = (high if high is not None else float(values.max())) + 4 * sigma
    xs = torch.linspace(start, stop, 4097, dtype=torch.float64)
    means = _moments(xs, sigma, low, high)[0]
    means, order = torch.cummax(means, 0)  # exactly monotone for the search
    where = torch.searchsorted(means, values.contiguous()).clamp(1, len(xs) - 1)
    m0, m1 = means[where - 1], means[where]
    t = ((values - m0) / (m1 - m0).clamp_min(1e-300)).clamp(0, 1)
    x = xs[where - 1] + t * (xs[where] - xs[where - 1])
    return x.clamp(low if low is not None else -math.inf, high if high is not None else math.inf)


def estimate(raw: np.ndarray, estimate_: np.ndarray, limits: tuple[list, list]) -> Clipping:
    """The sigma of each channel under which the clipped model, at the declipped ``estimate_``
    (a denoised image of ``raw``, same shape ``(..., C)``), has the noisy image's mean second
    moment (bisection on [1e-6, 1] x the channel's range, on at most :data:`SAMPLE` pixels)."""
    low, high = limits
    sigmas = []
    for c in range(raw.shape[-1]):
        noisy = torch.from_numpy(np.ascontiguousarray(raw[..., c], dtype=np.float64)).reshape(-1)
        guide = torch.from_numpy(np.ascontiguousarray(estimate_[..., c], dtype=np.float64)).reshape(-1)
        step = max(1, len(noisy) // SAMPLE)  # a moment needs no more pixels than that
        noisy, guide = noisy[::step], guide[::step]
        target = float((noisy * noisy).mean())
        span = float(noisy.max() - noisy.min()) or 1.0
        a, b = 1e-6 * span, span
        for _ in range(50):
            s = math.sqrt(a * b)  # bisection on the logarithm: sigma spans decades
            x = _inverse(guide, s, low[c], high[c])
            if float(_moments(x, s, low[c], high[c])[1].mean()) < target:
                a = s
            else:
                b = s
        sigmas.append(math.sqrt(a * b))
    return Clipping(tuple(sigmas), tuple(low), tuple(high))


def declip(values: np.ndarray, clipping: Clipping) -> np.ndarray:
    """``values`` ``(..., C)`` (estimates of the clipped image's mean, in the data's units)
    mapped back through the clipped mean's inverse, channel by channel."""
    out = np.empty(values.shape, dtype=np.float64)
    for c, (sigma, low, high) in enumerate(zip(clipping.sigma, clipping.low, clipping.high)):
        column = torch.from_numpy(np.ascontiguousarray(values[..., c], dtype=np.float64))
        out[..., c] = _inverse(column.reshape(-1), sigma, low, high).reshape(column.shape).numpy()
    return out
