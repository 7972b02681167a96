"""Feature replay: a bundle keeps the body features of the photos it was trained on.

A retrain needs the original training data beside the user's corrections, or thirty corrections
would be the whole training set. The photos themselves are seldom at hand where the model is
used: the shipped model was trained on photos no user has, and a model trained on one machine is
retrained on another. The head is fitted on body features anyway (the body stays frozen), so the
bundle keeps one feature row per training photo (the augmented view the head saw first) and per
validation photo (the clean view it was measured on), with label, side of the split and content
hash. A retrain then runs the network only over the user's photos, and compares old and new model
on the very validation photos the old one was measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Replay:
    """Args:
    features: (N, D) float16 body features.
    labels: (N,) class indices into the bundle's classes.
    valid: (N,) True for validation photos (clean view), False for training photos.
    sha256: (N, 32) uint8: each photo's content hash, the feature cache's key.
    """

    features: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    sha256: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if (
            self.features.ndim != 2
            or len(self.features) != n
            or self.valid.shape != (n,)
            or self.sha256.shape != (n, 32)
        ):
            raise ValueError("replay rows do not match")

    def __len__(self) -> int:
        return len(self.labels)

    def hex(self, row: int) -> str:
        return bytes(self.sha256[row]).hex()
