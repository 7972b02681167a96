"""Exemplar memory: the user's labelled photos, kept as feature vectors inside the bundle.

A linear head trained on thousands of photos hardly moves for twenty corrections. The memory
adds, for each class, a vote from the stored photo of that class that looks most like the one
being sorted (``alpha * exp(-beta * (1 - max cos))``; by default 1024 and 32: a vote of 42 at
cosine 0.9, 6 at 0.84, 0.3 at 0.75, 0.01 at 0.65), so one correction moves its near duplicates
at once (cosine 0.84-0.98 for crops and mirror images of a photo) while photos unlike any stored
one (cosine below about 0.65, even within one class) keep the head's answer. The nearest
exemplar, not a sum over all, votes: thirty stored chairs must not add up to a bias towards
chairs. The same function scores photos in the sorting network (and its ONNX export) and from
cached features in review (:mod:`sorter.model.scoring`); fitting its strength is
:mod:`sorter.learn.memory`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

DEFAULT_ALPHA = 1024.0
DEFAULT_BETA = 32.0
MAX_EXEMPLARS = 4096
"""More than any user labels by hand; keeps the bundle and the per-photo cost small."""


@dataclass(frozen=True)
class ExemplarMemory:
    """Feature vectors of labelled photos and the class index of each.

    Args:
        keys: (M, D) float32 feature vectors (unnormalised; normalised when scoring).
        labels: (M,) class indices into the bundle's classes.
        alpha: weight of the memory's vote, in log-probability units.
        beta: sharpness: how fast a vote fades as photos look less alike.
    """

    keys: np.ndarray
    labels: np.ndarray
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if self.keys.ndim != 2 or self.labels.ndim != 1 or len(self.keys) != len(self.labels):
            raise ValueError("memory keys and labels do not match")

    def __len__(self) -> int:
        return len(self.labels)


def normalise_rows(x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = x / x.norm(dim=1, keepdim=True).clamp(min=1e-6)
    return out


def nearest_per_class(affinity: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """(N, M) cosine affinities, (M, C) class membership → (N, C) affinity of the nearest stored
    photo of each class (-2 for a class with none)."""
    masked = affinity.unsqueeze(2) * onehot.unsqueeze(0) + (onehot.unsqueeze(0) - 1.0) * 2.0
    out: torch.Tensor = masked.amax(dim=1)
    return out


def class_onehot(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """(M, C) 0/1 membership of each stored photo in its class."""
    onehot = torch.zeros(len(labels), num_classes)
    onehot[torch.arange(len(labels)), torch.from_numpy(np.asarray(labels, dtype=np.int64))] = 1.0
    return onehot


def class_votes(affinity: torch.Tensor, onehot: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """(N, C) votes from (N, M) cosine affinities: the nearest stored photo of each class votes
    ``alpha * exp(-beta * (1 - cos))``. The one vote formula: sorting, review, tuning and
    leave-one-out calibration all call it."""
    out: torch.Tensor = alpha * torch.exp(-beta * (1.0 - nearest_per_class(affinity, onehot)))
    return out


def memory_votes(
    features: torch.Tensor, keys: torch.Tensor, onehot: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """(N, C) votes of stored photos ``keys`` for photos ``features``."""
    return class_votes(normalise_rows(features) @ normalise_rows(keys).T, onehot, alpha, beta)


def log_probabilities(logits: torch.Tensor, group: torch.Tensor | None, multi_label: bool) -> torch.Tensor:
    """Per-folder log-probabilities (softmax, or sigmoid for multi-label), with grouped outputs
    summed into their folders first."""
    logits = logits.float()
    if multi_label:
        return torch.nn.functional.logsigmoid(logits)
    if group is None:
        return torch.log_softmax(logits, dim=1)
    return torch.log((torch.softmax(logits, dim=1) @ group).clamp(min=1e-12))


class Scorer(nn.Module):
    """Head logits (+ exemplar votes) → folder probabilities, and the photo's fit to any
    category; an ``nn.Module`` so it exports with the network.

    Args:
        num_classes: folders.
        group: (outputs, folders) 0/1 matrix for grouped bundles, or None.
        multi_label: sigmoid per folder instead of a softmax.
        memory: the bundle's exemplar memory, or None.
        temperature: calibration temperature (1 = none).
        anchors: (K, D) directions for the fit (class means), or None.
    """

    group: torch.Tensor | None
    keys: torch.Tensor | None
    onehot: torch.Tensor | None
    anchors: torch.Tensor | None

    def __init__(
        self,
        num_classes: int,
        group: torch.Tensor | None,
        multi_label: bool,
        memory: ExemplarMemory | None,
        temperature: float = 1.0,
        anchors: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.multi_label = multi_label
        self.temperature = float(temperature)
        self.register_buffer("group", group)
        if memory is not None and len(memory) and not multi_label:
            self.register_buffer("keys", torch.from_numpy(np.asarray(memory.keys, dtype=np.float32)))
            self.register_buffer("onehot", class_onehot(memory.labels, num_classes))
            self.alpha, self.beta = float(memory.alpha), float(memory.beta)
        else:
            self.keys = None
            self.onehot = None
            self.alpha = self.beta = 0.0
        parts = [a for a in (anchors, self.keys) if a is not None]
        self.register_buffer("anchors", normalise_rows(torch.cat([p.float() for p in parts])) if parts else None)

    def fit(self, features: torch.Tensor) -> torch.Tensor:
        """(N,) best cosine to a class mean or a stored photo; 1 when the bundle has neither."""
        if self.anchors is None:
            return torch.ones(features.shape[0], device=features.device)
        out: torch.Tensor = (normalise_rows(features.float()) @ self.anchors.T).amax(dim=1)
        return out

    def forward(self, logits: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Folder probabilities; the memory votes only when ``features`` are given."""
        if self.multi_label:
            return torch.sigmoid(logits.float())
        scores = log_probabilities(logits.float() / self.temperature, self.group, False)
        if features is not None and self.keys is not None and self.onehot is not None:
            scores = scores + memory_votes(features.float(), self.keys, self.onehot, self.alpha, self.beta)
        return torch.softmax(scores, dim=1)
