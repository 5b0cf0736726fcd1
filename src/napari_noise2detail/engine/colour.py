"""RGB to an opponent colour space (brightness and two colour differences) and back.

Neighbouring colour channels of a stained tissue image are strongly correlated; in the
opponent space most of the structure sits in the brightness channel and the colour channels
are smooth, which suits a denoiser. The transform is orthonormal, so independent noise of
equal variance in R, G and B stays so.
"""

from __future__ import annotations

import numpy as np

#: Rows: the opponent channels as weights of R, G and B.
OPPONENT = np.array(
    [[1, 1, 1], [1, 0, -1], [1, -2, 1]], dtype=np.float64
) / np.sqrt([[3.0], [2.0], [6.0]])


def to_opponent(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB -> ``(..., 3)`` opponent channels, float64."""
    return np.asarray(rgb, dtype=np.float64) @ OPPONENT.T


def from_opponent(opponent: np.ndarray) -> np.ndarray:
    """Exact inverse of :func:`to_opponent` (the matrix is orthonormal)."""
    return np.asarray(opponent, dtype=np.float64) @ OPPONENT
