"""Confidence that means what it says: a temperature, and per-class thresholds for a precision.

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
import torch

GRID = tuple(round(0.2 + 0.01 * i, 2) for i in range(80))
"""Confidence thresholds at which validation precision is tabulated (0.20 … 0.99)."""
MIN_SUPPORT = 5
"""A threshold counts for a class only if at least this many validation photos pass it."""
DEFAULT_PRECISION = 0.95
PRIOR_PHOTOS = 20.0
"""How many of the user's reviewed photos the validation table weighs, per class and threshold:
after twenty reviewed photos of a class its own photos count as much as the validation photos,
after a hundred they decide."""
TEMPERATURES = tuple(float(t) for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)))


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of the true labels.

    Args:
        scores: (N, C) log-probabilities or logits of the validation photos.
        labels: (N,) true class indices (-1 for photos of no known class, ignored).
    """
    keep = labels >= 0
    if keep.sum() < 2:
        return 1.0
    x = torch.from_numpy(np.asarray(scores[keep], dtype=np.float64))
    y = torch.from_numpy(labels[keep].astype(np.int64))
    best = (float("inf"), 1.0)
    for t in TEMPERATURES:
        nll = float(torch.nn.functional.cross_entropy(x / t, y))
        best = min(best, (nll, t))
    return best[1]


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

    def updated(self, probs: np.ndarray, labels: np.ndarray, prior: float = PRIOR_PHOTOS) -> Calibration:
        """The precision tables moved towards what the user's reviewed photos show.

        Validation photos come from the training set's source; the user's photos may not, and
        there the same confidence can be right far less often. Each table entry is a beta-binomial
        update: the validation precision counts as ``prior`` photos, each reviewed photo that the
        model would have put in that class at that threshold as one. ``probs`` must be honest
        scores (a reviewed photo scored without its own memory vote, by a model not trained on
        it), with the temperature already applied; ``labels`` are the user's labels (-1: a class
        the model does not know, which counts against whatever class it was predicted as).
        """
        if len(labels) == 0:
            return self
        pred = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        right = pred == labels

        def row(old: Sequence[float], fallback: Sequence[float], mask: np.ndarray) -> tuple[float, ...]:
            out = []
            for g, t in enumerate(GRID):
                kept = mask & (conf >= t)
                n = int(kept.sum())
                before = old[g] if np.isfinite(old[g]) else fallback[g]
                if n == 0:
                    out.append(old[g])
                elif np.isfinite(before):
                    out.append(float((prior * before + right[kept].sum()) / (prior + n)))
                else:
                    out.append(float(right[kept].mean()) if n >= MIN_SUPPORT else float("nan"))
            return tuple(out)

        per_class = tuple(row(self.precision[c], self.overall, pred == c) for c in range(len(self.precision)))
        overall = row(self.overall, self.overall, np.ones(len(pred), dtype=bool))
        return Calibration(self.temperature, per_class, overall)

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


def precision_table(probs: np.ndarray, labels: np.ndarray) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """Per-class and overall precision at each GRID threshold (see :class:`Calibration`)."""
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    right = pred == labels

    def row(mask: np.ndarray) -> tuple[float, ...]:
        out = []
        for t in GRID:
            kept = mask & (conf >= t)
            n = int(kept.sum())
            out.append(float(right[kept].mean()) if n >= MIN_SUPPORT else float("nan"))
        return tuple(out)

    per_class = tuple(row(pred == c) for c in range(probs.shape[1]))
    return per_class, row(np.ones(len(pred), dtype=bool))


def calibrate(log_probs: np.ndarray, labels: np.ndarray) -> Calibration:
    """Fit the temperature on validation log-probabilities, then tabulate precision with it."""
    temperature = fit_temperature(log_probs, labels)
    probs = torch.softmax(torch.from_numpy(log_probs.astype(np.float64)) / temperature, dim=1).numpy()
    keep = labels >= 0
    per_class, overall = precision_table(probs[keep], labels[keep])
    return Calibration(temperature, per_class, overall)
