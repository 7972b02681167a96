"""Measure a bundle on labelled photos through the very code path that sorts (no fastai)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sorter.learn.datasets import Sample
from sorter.learn.evidence import gather
from sorter.model.bundle import Bundle
from sorter.model.classifier import Classifier
from sorter.model.scoring import score


@dataclass
class Evaluation:
    n: int
    classes: tuple[str, ...]
    multi_label: bool
    accuracy: float
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]] = field(default_factory=list)
    fbeta: float | None = None
    threshold: float | None = None
    failed: list[str] = field(default_factory=list)
    probs: np.ndarray | None = field(default=None, repr=False)
    targets: list[tuple[str, ...]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "per_class": self.per_class,
            "classes": list(self.classes),
        }
        if self.multi_label:
            out["fbeta"] = None if self.fbeta is None else round(self.fbeta, 4)
            out["threshold"] = self.threshold
        else:
            out["confusion"] = self.confusion
        if self.failed:
            out["failed"] = self.failed
        return out


def predict(classifier: Classifier, samples: Sequence[Sample]) -> tuple[np.ndarray, list[int], list[str]]:
    """Probabilities for every readable sample, their indices, and the unreadable paths."""
    rows, kept, failed = [], [], []
    for i, pred in enumerate(classifier.classify(list(samples), lambda s: s.path)):
        if pred.probs is None:
            failed.append(str(pred.item.path))
        else:
            # a face weighs here as it does when sorting (no typicality: accuracy reads the probabilities)
            face = None if pred.face is None else np.array([pred.face], dtype=np.float32)
            evidence = gather(classifier.config, pred.probs[None, :], np.array([pred.fit]), None, face, None)
            rows.append(evidence.probs[0])
            kept.append(i)
    width = len(classifier.classes)
    return (np.stack(rows) if rows else np.zeros((0, width))), kept, failed


def evaluate(
    classifier: Classifier, samples: Sequence[Sample], *, threshold: float | None = None, beta: float = 2.0
) -> Evaluation:
    """Accuracy and per-class precision/recall (single-label), or F-beta and accuracy at the
    threshold (multi-label). Labels the model does not know count as errors."""
    probs, kept, failed = predict(classifier, samples)
    targets = [samples[i].labels for i in kept]
    t = classifier.config.threshold if threshold is None else threshold
    return from_probabilities(
        probs,
        targets,
        classifier.classes,
        multi_label=classifier.config.multi_label,
        threshold=t,
        beta=beta,
        failed=failed,
    )


@dataclass
class Measured:
    """A bundle's probabilities for labelled photos, computed once and read at any threshold."""

    probs: np.ndarray
    targets: list[tuple[str, ...]]
    classes: tuple[str, ...]
    multi_label: bool
    default_threshold: float
    failed: list[str] = field(default_factory=list)

    def at(self, threshold: float | None = None) -> Evaluation:
        t = self.default_threshold if threshold is None else threshold
        return from_probabilities(
            self.probs, self.targets, self.classes, multi_label=self.multi_label, threshold=t, failed=self.failed
        )

    @property
    def accuracy(self) -> float:
        return self.at().accuracy if self.targets else 0.0


def measure(
    bundle: Bundle,
    samples: Sequence[Sample],
    features: np.ndarray | None = None,
    *,
    memory: bool = True,
    device: str = "cpu",
) -> Measured:
    """How ``bundle`` does on labelled photos, scored exactly as sorting scores them: from their
    cached body features (``features``, one row per sample, made by this bundle's body) when
    given, else through the network on ``device``. ``memory=False`` scores cached features
    without the bundle's memory (photos stored in it would only find themselves); through the
    network the memory always votes, as it does when sorting. Training and retraining both
    measure with this."""
    if features is not None:
        probs = score(bundle, features, bundle.memory if memory else None).probs
        targets = [s.labels for s in samples]
        failed: list[str] = []
    else:
        probs, kept, failed = predict(Classifier(bundle, torch.device(device)), samples)
        targets = [samples[i].labels for i in kept]
    config = bundle.config
    return Measured(probs, targets, config.classes, config.multi_label, config.threshold, failed)


def from_probabilities(
    probs: np.ndarray,
    targets: list[tuple[str, ...]],
    classes: tuple[str, ...],
    *,
    multi_label: bool = False,
    threshold: float = 0.5,
    beta: float = 2.0,
    failed: list[str] | None = None,
) -> Evaluation:
    """The same measures from probabilities already computed (from cached features, say)."""
    failed = failed or []
    index = {c: i for i, c in enumerate(classes)}
    if multi_label:
        return _multi(probs, targets, classes, index, threshold, beta, failed)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    truth = np.array([index.get(t[0], -1) for t in targets], dtype=int)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    for t, p in zip(truth, pred, strict=True):
        if t >= 0:
            confusion[t, p] += 1
    per_class = {}
    for i, c in enumerate(classes):
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        actual = int((truth == i).sum())
        per_class[c] = {
            "n": actual,
            "precision": round(tp / predicted, 4) if predicted else 0.0,
            "recall": round(tp / actual, 4) if actual else 0.0,
        }
    accuracy = float((pred == truth).mean()) if len(truth) else 0.0
    return Evaluation(
        n=len(truth),
        classes=classes,
        multi_label=False,
        accuracy=accuracy,
        per_class=per_class,
        confusion=confusion.tolist(),
        failed=failed,
        probs=probs,
        targets=targets,
    )


def _multi(
    probs: np.ndarray,
    targets: list[tuple[str, ...]],
    classes: tuple[str, ...],
    index: dict[str, int],
    threshold: float,
    beta: float,
    failed: list[str],
) -> Evaluation:
    truth = np.zeros_like(probs, dtype=bool)
    for row, labels in enumerate(targets):
        for label in labels:
            if label in index:
                truth[row, index[label]] = True
    pred = probs >= threshold
    tp = (pred & truth).sum(axis=1)
    precision = np.divide(tp, pred.sum(axis=1), out=np.zeros(len(tp)), where=pred.sum(axis=1) > 0)
    recall = np.divide(tp, truth.sum(axis=1), out=np.zeros(len(tp)), where=truth.sum(axis=1) > 0)
    b2 = beta * beta
    denom = b2 * precision + recall
    f = np.divide((1 + b2) * precision * recall, denom, out=np.zeros(len(tp)), where=denom > 0)
    per_class = {}
    for i, c in enumerate(classes):
        ctp = int((pred[:, i] & truth[:, i]).sum())
        per_class[c] = {
            "n": int(truth[:, i].sum()),
            "precision": round(ctp / int(pred[:, i].sum()), 4) if pred[:, i].any() else 0.0,
            "recall": round(ctp / int(truth[:, i].sum()), 4) if truth[:, i].any() else 0.0,
        }
    return Evaluation(
        n=len(targets),
        classes=classes,
        multi_label=True,
        accuracy=float((pred == truth).mean()) if len(targets) else 0.0,
        per_class=per_class,
        fbeta=float(f.mean()) if len(f) else 0.0,
        threshold=threshold,
        failed=failed,
        probs=probs,
        targets=targets,
    )


def choose_threshold(evaluation: Evaluation, target_precision: float = 0.97, min_sorted: float = 0.5) -> float:
    """The unsure threshold: the lowest confidence at which sorted photos are right often enough.

    Single-label: the lowest threshold whose sorted photos reach ``target_precision`` while at
    least ``min_sorted`` of them are still sorted; failing that, the best precision at that coverage.

    Multi-label: the threshold with the best F-beta on the validation photos.
    """
    probs = evaluation.probs
    if probs is None or len(probs) == 0:
        return 0.5
    index = {c: i for i, c in enumerate(evaluation.classes)}
    if evaluation.multi_label:
        best_f, best_t = -1.0, 0.2
        for t in [round(x, 2) for x in np.arange(0.1, 0.91, 0.05)]:
            scored = _multi(probs, evaluation.targets, evaluation.classes, index, t, 2.0, [])
            if scored.fbeta is not None and scored.fbeta > best_f + 1e-9:
                best_f, best_t = scored.fbeta, t
        return float(best_t)
    grid = [round(x, 2) for x in np.arange(0.3, 0.96, 0.05)]
    truth = np.array([index.get(t[0], -1) for t in evaluation.targets])
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == truth
    best: tuple[float, float] | None = None
    for t in grid:
        mask = conf >= t
        if mask.mean() < min_sorted:
            break  # never send most photos to _unsure
        precision = float(right[mask].mean())
        if precision >= target_precision:
            return float(t)
        if best is None or precision > best[0] + 1e-9:
            best = (precision, float(t))
    return best[1] if best is not None else grid[0]
