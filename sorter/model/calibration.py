"""Confidence that means what it says: a temperature, and per-class thresholds for a precision.

This module holds the table a bundle carries and how a threshold is read from it; fitting it to
validation photos, and updating it from the user's reviews, is :mod:`sorter.learn.calibration`.

A softmax share is not a probability of being right. At training time the validation photos fit
one temperature (the one that best predicts right and wrong, by log-likelihood) and, for every
class, the precision of the photos sorted into it at each confidence threshold. The user then asks
for a precision ("sort only when at least 95 % sure"), and each class gets the lowest threshold
that reached it on the validation photos; a class with too few photos falls back to the table of
all classes together. Everything lives in the bundle's config, nothing in code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

GRID = tuple(round(0.2 + 0.01 * i, 2) for i in range(80))
"""Confidence thresholds at which validation precision is tabulated (0.20 … 0.99)."""
MIN_SUPPORT = 5
"""A threshold counts for a class only if at least this many validation photos pass it."""
DEFAULT_PRECISION = 0.95
PRIOR_PHOTOS = 20.0
"""How many of the user's reviewed photos the validation table weighs, per class and threshold:
after twenty reviewed photos of a class its own photos count as much as the validation photos,
after a hundred they decide."""


@dataclass(frozen=True)
class Calibration:
    """Temperature plus a precision table per class, as stored in the bundle config."""

    temperature: float
    precision: tuple[tuple[float, ...], ...]
    """precision[c][g]: share right among validation photos predicted ``c`` with confidence
    ≥ GRID[g] (NaN when fewer than MIN_SUPPORT)."""
    overall: tuple[float, ...]
    """The same over all classes together."""

    def threshold(self, class_index: int, target: float) -> float:
        """The lowest confidence at which this class reached ``target`` precision, and stayed
        there at every higher threshold with enough photos; the table of all classes only for a
        class with too few photos of its own (one that has them but never reaches the target
        must not borrow the others' better record)."""
        own = self.precision[class_index]
        table = own if any(np.isfinite(v) for v in own) else self.overall
        t = _lowest_reaching(table, target)
        return GRID[-1] if t is None else t

    def thresholds(self, target: float) -> np.ndarray:
        return np.array([self.threshold(c, target) for c in range(len(self.precision))], dtype=np.float32)

    def to_json(self) -> dict[str, Any]:
        def clean(values: Sequence[float]) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 4) for v in values]

        return {
            "temperature": round(self.temperature, 4),
            "grid": list(GRID),
            "precision": [clean(row) for row in self.precision],
            "overall": clean(self.overall),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], num_classes: int) -> Calibration:
        """Raises ValueError with the reason when the stored table is malformed."""
        temperature = data.get("temperature")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0.05 <= temperature <= 50:
            raise ValueError("the calibration temperature must be a number between 0.05 and 50")
        if list(data.get("grid", [])) != list(GRID):
            raise ValueError("the calibration grid is not the one this version uses")

        def row(values: Any) -> tuple[float, ...]:
            if not isinstance(values, list) or len(values) != len(GRID):
                raise ValueError("a calibration row has the wrong length")
            out = []
            for v in values:
                if v is None:
                    out.append(float("nan"))
                elif isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v <= 1.0:
                    out.append(float(v))
                else:
                    raise ValueError("a calibration precision is not between 0 and 1")
            return tuple(out)

        table = data.get("precision")
        if not isinstance(table, list) or len(table) != num_classes:
            raise ValueError("the calibration table does not have one row per class")
        return cls(float(temperature), tuple(row(r) for r in table), row(data.get("overall")))


def _lowest_reaching(table: Sequence[float], target: float) -> float | None:
    found = None
    for g in range(len(GRID) - 1, -1, -1):
        value = table[g]
        if not np.isfinite(value):
            continue
        if value + 1e-9 < target:
            break
        found = GRID[g]
    return found
