""" "None of these": how well a photo fits any category, from statistics kept at training time.

A softmax says which category is least unlikely, never whether the photo belongs to any. Sorter
compares the photo's body features with each class's mean feature direction (and with the
exemplar memory's photos): the best cosine is the photo's *fit*. On furniture photos this
separated other furniture classes (AUROC 0.97) and insects (1.00) better than the softmax
maximum (0.84 / 0.90), the logits' energy (0.86 / 0.92) or a Mahalanobis distance (0.94 / 1.00),
and unlike the latter it needs only one vector per class in the bundle. The threshold is the fit
that all but a small share of the validation photos reach, less a small margin (both in
:class:`sorter.knobs.Knobs`).
"""

from __future__ import annotations

import numpy as np

from sorter.knobs import knobs


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, D) unit vectors: the mean direction of each class's (normalised) features."""
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-6)
    means = np.zeros((num_classes, features.shape[1]), dtype=np.float32)
    for c in range(num_classes):
        members = unit[labels == c]
        if len(members):
            mean = members.mean(axis=0)
            means[c] = mean / max(float(np.linalg.norm(mean)), 1e-6)
    return means


def fit_scores(features: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """(N,) best cosine between each photo and any anchor (class means, memory photos)."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-6)
    anchors = anchors / np.linalg.norm(anchors, axis=1, keepdims=True).clip(min=1e-6)
    out: np.ndarray = (unit @ anchors.T).max(axis=1)
    return out


def fit_threshold(valid_scores: np.ndarray) -> float:
    """The fit below which a photo counts as none of the categories."""
    if len(valid_scores) == 0:
        return 0.0
    tuned = knobs()
    return float(np.quantile(valid_scores, tuned.fit_valid_misses)) - tuned.fit_margin
