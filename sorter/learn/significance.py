"""Is one set of answers better than another on the same photos beyond chance?

Several choices here are made on a few hundred validation photos, which cannot tell a point or two
from chance: a training step kept on chance cost held-out accuracy (``benchmarks/recipes.py``),
and an adapted head refused for costing three validation photos of 237 left a folder of sketches
with nothing sorted after 60 reviews, where 30 had sorted 28 % (``benchmarks/trust.py``). Both ask
the same exact one-sided sign test over the photos where the two disagree (McNemar's).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

SIGNIFICANCE = 0.05
"""A difference counts when chance alone gives it less often than this."""


def wins(before: npt.ArrayLike, after: npt.ArrayLike, level: float = SIGNIFICANCE) -> tuple[bool, float]:
    """Whether ``after`` is right on significantly more of the same photos than ``before``
    (booleans, photo for photo: numpy arrays or CPU tensors). Returns the verdict and the p-value."""
    was, now = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    gained = int((now & ~was).sum())
    lost = int((was & ~now).sum())
    n = gained + lost
    if n == 0:
        return False, 1.0
    p = sum(math.comb(n, k) for k in range(gained, n + 1)) / 2**n
    return p < level, p
