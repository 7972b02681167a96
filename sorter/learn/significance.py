"""Is one set of answers better than another on the same photos beyond chance?

Several choices here are made on a few hundred validation photos, which cannot tell a point or two
from chance: a training step kept on chance cost held-out accuracy (``benchmarks/recipes.py``),
and an adapted head refused for costing three validation photos of 237 left a folder of sketches
with nothing sorted after 60 reviews, where 30 had sorted 28 % (``benchmarks/trust.py``). Both ask
the same exact one-sided sign test over the photos where the two disagree (McNemar's).
"""

from __future__ import annotations

import math
from typing import Protocol, Self

SIGNIFICANCE = 0.05
"""A difference counts when chance alone gives it less often than this."""


class _Rights(Protocol):
    """Which photos were right, as a boolean torch tensor or numpy array."""

    def __and__(self, other: Self, /) -> Self: ...
    def __invert__(self) -> Self: ...
    def sum(self) -> object: ...


def wins(before: _Rights, after: _Rights, level: float = SIGNIFICANCE) -> tuple[bool, float]:
    """Whether ``after`` is right on significantly more of the same photos than ``before``
    (booleans, photo for photo). Returns the verdict and the p-value."""
    gained = int((after & ~before).sum())  # type: ignore[call-overload]
    lost = int((before & ~after).sum())  # type: ignore[call-overload]
    n = gained + lost
    if n == 0:
        return False, 1.0
    p = sum(math.comb(n, k) for k in range(gained, n + 1)) / 2**n
    return p < level, p
