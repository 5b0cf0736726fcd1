"""Signal-dependent noise: estimate it from the image, and stabilise its variance.

Microscopy noise is mostly shot noise plus read noise, so its variance grows with the
signal: ``variance = a * signal + b`` (the Poisson-Gaussian model). N2D's losses weigh every
pixel alike; the generalised Anscombe transform (GAT) makes the noise variance about 1
everywhere, so N2D can be fitted there and its result mapped back with the exact unbiased
inverse (Makitalo & Foi, IEEE TIP 2013, closed-form approximation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Shot noise: the fitted noise variance at the image's brightest is at least this many times
#: the variance at its darkest.
SIGNAL_DEPENDENT_RATIO = 1.5
#: Pixels looked at, at most: a sample of planes beyond this keeps the estimate cheap.
MAX_PIXELS = 1 << 24
_BINS = 40
#: Bins with more than this fraction of their pixels clipped are left out: clipping (a
#: saturated camera, noise clamped at 0) lowers the variance there.
_CLIPPED = 0.05
#: A fit needs this many bins left (a fifth of the pixels).
_MIN_BINS = 8
#: Noise variance, in units of the image's range squared, too small to matter.
_NEGLIGIBLE = 1e-8
#: A slope counts when it is this many standard errors above zero.
_SLOPE_ERRORS = 5.0


def _clipped_at(x: np.ndarray, value: float) -> bool:
    """Whether the pixels equal to ``value`` (the data's minimum or maximum) are a pile-up of
    clipped values rather than a natural level, such as the zero count of shot noise: clipping
    piles up far more pixels on that value than on the nearest value present."""
    at = np.count_nonzero(x == value)
    rest = x[x != value]
    if at <= 1 or rest.size == 0:
        return False
    nearest = rest.min() if value < rest.min() else rest.max()
    return at > 20 * np.count_nonzero(x == nearest)


@dataclass(frozen=True)
class NoiseModel:
    """Noise variance ``a * signal + b``, in the image's intensity units.

    ``signal_dependent``: whether the variance changes enough over the image's range to be
    worth stabilising (shot noise); ``stabilised``: whether N2D was fitted on the
    variance-stabilised image.
    """

    a: float
    b: float
    signal_dependent: bool = False
    stabilised: bool = False
    #: A typical signal of the image (the median brightness), in its units.
    level: float = 0.0

    def variance(self, signal: np.ndarray | float) -> np.ndarray | float:
        return self.a * np.asarray(signal) + self.b

    @property
    def typical_sd(self) -> float:
        """The noise's standard deviation at the typical signal (:attr:`level`)."""
        return float(np.sqrt(max(self.variance(self.level), 0.0)))

    def describe(self) -> str:
        """One line for people, e.g. ``"noise variance 0.033 x signal + 0.0002 (shot noise: ...)"``."""
        if self.signal_dependent:
            sign = "+" if self.b >= 0 else "-"
            text = (f"noise variance {self.a:.3g} x signal {sign} {abs(self.b):.3g} "
                    "(shot noise: grows with the signal)")
        else:
            text = f"noise standard deviation about {self.typical_sd:.3g}, even across the image"
        return text + (", fitted on the variance-stabilised image" if self.stabilised else "")


def _neighbour_mean(block: np.ndarray) -> np.ndarray:
    """Mean of the 8 neighbours of every interior pixel, (N, H-2, W-2)."""
    h, w = block.shape[-2:]
    total = sum(block[:, i : h - 2 + i, j : w - 2 + j] for i in range(3) for j in range(3))
    return (total - block[:, 1:-1, 1:-1]) / 8


def _fit_line(x: np.ndarray, v: np.ndarray, n: np.ndarray) -> tuple[float, float, float]:
    """Weighted least squares v = a x + b, weights n / v^2 (a variance estimated from n
    samples has a spread of v sqrt(2 / n)), refitted without outliers; returns (a, b, the
    standard error of a).

    x is centred first, so that an offset far from zero (a camera's) does not make the fit
    ill-conditioned; a falling line is no noise model and becomes a flat one.
    """
    centre = float(np.average(x, weights=n))
    u = x - centre
    keep = np.ones(len(x), bool)
    a = c = 0.0
    for _ in range(3):
        guess = np.maximum(a * u + c, 1e-12) if a or c else np.maximum(v, 1e-12)
        weight = np.where(keep, n / guess**2, 0.0)
        design = np.stack([u, np.ones_like(u)], axis=1) * np.sqrt(weight)[:, None]
        (a, c), *_ = np.linalg.lstsq(design, v * np.sqrt(weight), rcond=None)
        predicted = np.maximum(a * u + c, 1e-12)
        spread = predicted * np.sqrt(2 / np.maximum(n, 1))
        keep = np.abs(v - predicted) < 4 * spread + 0.1 * predicted
        if not keep.any():
            keep[:] = True
    weight = np.where(keep, n / (2 * np.maximum(a * u + c, 1e-12) ** 2), 0.0)
    spread_u = np.sum(weight * (u - np.average(u, weights=weight)) ** 2) if weight.any() else 0.0
    error = float(1 / np.sqrt(spread_u)) if spread_u > 0 else float("inf")
    if a < 0:
        a, c = 0.0, float(np.average(v, weights=np.where(keep, n, 0.0)))
    return float(a), float(c - a * centre), error


def _bins(order: np.ndarray, clipped: np.ndarray) -> list[np.ndarray]:
    """Equal-count bins of blocks by brightness, without the bins that are mostly clipped."""
    return [chunk for chunk in np.array_split(order, _BINS) if clipped[chunk].mean() <= _CLIPPED]


def estimate_noise(planes: np.ndarray) -> NoiseModel | None:
    """Fit ``variance = a * signal + b`` to the noise of ``planes`` ``(..., H, W)``.

    On every 2x2 block, ``(tl + br - tr - bl) / 2`` (the difference of N2D's two
    pair-downsampled views) cancels the signal, and edges along either axis, and keeps noise
    of the block's mean variance. Blocks are binned by the mean of their 8 neighbouring blocks,
    whose noise is independent of the block's own, so the mean of the block and of its
    squared difference within a bin fall on the variance line without bias. The noise is
    called signal-dependent when the slope is well determined and the fitted variance at the
    brightest bin is at least :data:`SIGNAL_DEPENDENT_RATIO` times that at the darkest. Returns
    None when there is too little to fit (a tiny, flat or mostly clipped image).
    """
    x = np.asarray(planes, dtype=np.float64)
    h, w = x.shape[-2:]
    x = x.reshape(-1, h, w)[:, : h - h % 2, : w - w % 2]
    if x.shape[0] * x.shape[1] * x.shape[2] > MAX_PIXELS:
        keep = max(1, MAX_PIXELS // (x.shape[1] * x.shape[2]))
        x = x[np.linspace(0, x.shape[0] - 1, keep).round().astype(int)]
        if x.shape[1] * x.shape[2] > MAX_PIXELS:
            x = x[:1, : 1 << 12, : 1 << 12]
    if x.shape[1] < 6 or x.shape[2] < 6:
        return None
    low, high = x.min(), x.max()
    if not high > low:
        return None
    ends = [v for v in (low, high) if _clipped_at(x, v)]
    clipped_pixels = np.isin(x, ends)
    # Work in units of the data's range: the same numbers for 8-bit, 16-bit or float data.
    offset, scale = float(low), float(high - low)
    x = (x - offset) / scale
    tl, tr, bl, br = x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]
    clipped = sum(clipped_pixels[:, i::2, j::2] for i in range(2) for j in range(2))[:, 1:-1, 1:-1] / 4
    detail2 = ((tl + br - tr - bl)[:, 1:-1, 1:-1] / 2) ** 2
    block = (tl + tr + bl + br) / 4
    selector = _neighbour_mean(block).ravel()
    block, detail2, clipped = block[:, 1:-1, 1:-1].ravel(), detail2.ravel(), clipped.ravel()
    if block.size < 20 * _BINS:
        return None

    order = np.argsort(selector, kind="stable")
    bins = _bins(order, clipped)
    if len(bins) < _MIN_BINS:
        return None
    a, b, _ = _fit_line(*_summarise(bins, block, detail2))
    # Texture that the difference does not cancel only adds variance: trim what lies far above
    # the first fit in each bin, and fit again.
    trimmed = [chunk[detail2[chunk] < 12 * max(a * block[chunk].mean() + b, 1e-12)] for chunk in bins]
    trimmed = [chunk for chunk in trimmed if chunk.size]
    xs, vs, ns = _summarise(trimmed, block, detail2)
    a, b, error = _fit_line(xs, vs, ns)
    # Shot noise: a slope well above its uncertainty, and enough of a change over the image's
    # range of brightness; a noise-free image (noise below 1e-4 of the range) has none.
    dark, bright = a * xs[0] + b, a * xs[-1] + b
    dependent = bool(
        a > _SLOPE_ERRORS * error and bright > _NEGLIGIBLE
        and (dark <= 0 or bright >= SIGNAL_DEPENDENT_RATIO * dark)
    )
    # back to the data's units: variance(z) = a (z - offset) / scale * scale^2 + b scale^2
    level = offset + scale * float(np.median(block))
    return NoiseModel(a * scale, (b - a * offset / scale) * scale**2, dependent, level=level)


def _summarise(bins: list[np.ndarray], block: np.ndarray, detail2: np.ndarray):
    """(mean brightness, mean squared difference, count) of every bin."""
    xs = np.array([block[chunk].mean() for chunk in bins])
    vs = np.array([detail2[chunk].mean() for chunk in bins])
    ns = np.array([chunk.size for chunk in bins], dtype=np.float64)
    return xs, vs, ns


def forward(z: np.ndarray, model: NoiseModel) -> np.ndarray:
    """Generalised Anscombe transform: noise of variance ``a * signal + b`` becomes about 1."""
    a, b = model.a, model.b
    return (2 / a) * np.sqrt(np.maximum(a * np.asarray(z, dtype=np.float64) + 0.375 * a * a + b, 0))


def floor(model: NoiseModel) -> float:
    """The darkest value :func:`forward` tells apart: below it the noise model's variance would
    be negative (a camera offset the model was fitted for), and every value maps to 0."""
    return -(model.b + 0.375 * model.a * model.a) / model.a


def inverse(d: np.ndarray, model: NoiseModel) -> np.ndarray:
    """Exact unbiased inverse of :func:`forward` (closed-form approximation): maps the mean
    of the transformed noisy data, which a denoiser estimates, back to the signal."""
    a, b = model.a, model.b
    # forward() equals 2 sqrt(z / a + 3/8 + s2) with s2 = b / a^2: the GAT of z / a, whose
    # inverse is the published one for unit gain.
    t = np.asarray(d, dtype=np.float64)
    s2 = b / (a * a)
    r = np.sqrt(1.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = t * t / 4 + r / 4 / t - 11 / 8 / t**2 + 5 / 8 * r / t**3 - 1 / 8
    # Below the transform of a zero count the closed form turns back up: use the algebraic
    # inverse there (the two meet at that point).
    algebraic = t * t / 4 - 0.375
    unit = np.where(t >= 2 * np.sqrt(0.375), closed, algebraic) - s2
    return a * unit
