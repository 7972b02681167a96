"""Fitting a bundle's calibration (:class:`~sorter.model.calibration.Calibration`) to validation
photos at training time, and updating it from the user's reviewed photos afterwards."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sorter.model.calibration import GRID, MIN_SUPPORT, PRIOR_PHOTOS, Calibration

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


def updated(table: Calibration, probs: np.ndarray, labels: np.ndarray, prior: float = PRIOR_PHOTOS) -> Calibration:
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
        return table
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

    per_class = tuple(row(table.precision[c], table.overall, pred == c) for c in range(len(table.precision)))
    overall = row(table.overall, table.overall, np.ones(len(pred), dtype=bool))
    return Calibration(table.temperature, per_class, overall)
