"""The estimated noise in plain words, in the image's own intensity units (grey levels).

The engine's model is ``variance = a * signal + b``. For photon shot noise on a camera, ``a``
is the gain (grey levels per detected photon) and ``b`` is the read-noise variance less
``a`` times the camera's offset: a negative ``b`` says there is an offset, not a negative
noise. What can be told apart is said; what cannot is said too.
"""

from __future__ import annotations

import math

from ..engine.clipping import Clipping
from ..engine.stabilise import NoiseModel


def _n(value: float) -> str:
    return f"{value:.3g}"


def noise_words(
    noise: NoiseModel | None, clipping: Clipping | None = None, asked_to_stabilise: bool = False,
) -> tuple[str, str]:
    """A short line for the dock and a fuller explanation (its tooltip); ``clipping``: a
    result's :class:`~napari_noise2detail.engine.clipping.Clipping`, if its bias was undone;
    ``asked_to_stabilise``: the user asked for shot noise to be stabilised (said, where it was
    not: the noise is not shot noise)."""
    short, full = _words(noise)
    if asked_to_stabilise and noise is not None and not noise.signal_dependent:
        short += "; not stabilised: it does not grow with the signal"
        full += (" Stabilising was asked for, but only shot noise (noise that grows with the "
                 "signal) is stabilised: this image was fitted as it is.")
    if clipping is None:
        return short, full
    limits = sorted({_n(v) for v in (*clipping.low, *clipping.high) if v is not None})
    sigma = ", ".join(_n(s) for s in clipping.sigma)
    return (f"{short}; clipped at {' and '.join(limits)}: bias undone",
            f"{full} The noisy values were clipped at {' and '.join(limits)} (many pixels sit "
            "there): a denoised pixel near that limit is the mean of clipped noise, which lies "
            f"inside the range. That bias was undone with noise of ±{sigma} grey levels (the "
            "quality preset's declip).")


def _words(noise: NoiseModel | None) -> tuple[str, str]:
    if noise is None:
        return ("could not be estimated (the image is too small, flat or clipped)",
                "The noise is estimated from how neighbouring pixels differ at each brightness; "
                "this image did not allow it (under about 60x60 pixels, nearly constant, or "
                "clipped almost everywhere). Denoising does not need it.")
    typical = noise.typical_sd
    stabilised = ("; fitted on the variance-stabilised image" if noise.stabilised else "")
    at_typical = (f"At the typical (median) brightness, {_n(noise.level)}, the noise is "
                  f"±{_n(typical)} grey levels (one standard deviation).")
    if not noise.signal_dependent:
        short = f"even noise: ±{_n(typical)} grey levels at every brightness{stabilised}"
        return short, ("The noise does not change with the brightness (read noise, or noise "
                       f"added after detection). {at_typical}")
    a, b = noise.a, noise.b
    formula = f"{_n(a)} x signal + {_n(b)}" if b >= 0 else f"{_n(a)} x (signal - {_n(-b / a)})"
    if b >= 0:
        short = (f"shot noise: variance grows with the signal (gain {_n(a)}); read noise "
                 f"±{_n(math.sqrt(b))}{stabilised}")
        constant = (f"The part that does not grow with the signal, ±{_n(math.sqrt(b))} grey levels, "
                    "is read noise.")
    else:
        offset = -b / a
        short = (f"shot noise: variance grows with the signal (gain {_n(a)}, offset about "
                 f"{_n(offset)}){stabilised}")
        constant = (f"The variance would reach zero at a signal of {_n(offset)}: the camera's "
                    "offset (dark level), less its read noise, which cannot be told apart "
                    "from it here.")
    return short, (f"The noise grows with the signal, as photon counts do (shot noise): variance "
                   f"= {formula}, in the image's grey levels. {_n(a)} is the gain: grey levels per detected photon. {constant} "
                   f"{at_typical}" + (" N2D was fitted on the variance-stabilised image."
                                      if noise.stabilised else ""))
