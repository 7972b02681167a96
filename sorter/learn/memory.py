"""Exemplar memory: the user's labelled photos, kept as feature vectors inside the bundle.

A linear head trained on thousands of photos hardly moves for twenty corrections. The memory
adds, for each class, a vote from the stored photo of that class that looks most like the one
being sorted (``alpha * exp(-beta * (1 - max cos))``; by default 1024 and 32: a vote of 42 at
cosine 0.9, 6 at 0.84, 0.3 at 0.75, 0.01 at 0.65), so one correction moves its near duplicates
at once (cosine 0.84-0.98 for crops and mirror images of a photo) while photos unlike any stored
one (cosine below about 0.65, even within one class) keep the head's answer. The nearest
exemplar, not a sum over all, votes: thirty stored chairs must not add up to a bias towards
chairs. The same function scores photos in the sorting network (and its ONNX export) and from
cached features in review.
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


def memory_votes(
    features: torch.Tensor, keys: torch.Tensor, onehot: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """(N, C) votes: the nearest stored photo of each class votes by how alike it looks."""
    affinity = normalise_rows(features) @ normalise_rows(keys).T
    out: torch.Tensor = alpha * torch.exp(-beta * (1.0 - nearest_per_class(affinity, onehot)))
    return out


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
            onehot = torch.zeros(len(memory), num_classes)
            onehot[torch.arange(len(memory)), torch.from_numpy(memory.labels.astype(np.int64))] = 1.0
            self.register_buffer("onehot", onehot)
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


def score_and_fit(
    features: np.ndarray,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    *,
    group: np.ndarray | None = None,
    multi_label: bool = False,
    memory: ExemplarMemory | None = None,
    temperature: float = 1.0,
    anchors: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, folders) and fit (N,) for cached features, exactly as the sorting network
    computes them (see :class:`Scorer`): the review's re-scoring and training's evaluation use it."""
    num_classes = group.shape[1] if group is not None else head_weight.shape[0]
    scorer = Scorer(
        num_classes,
        None if group is None else torch.from_numpy(group).float(),
        multi_label,
        memory,
        temperature,
        None if anchors is None else torch.from_numpy(np.asarray(anchors, dtype=np.float32)),
    )
    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        logits = x @ torch.from_numpy(head_weight).float().T + torch.from_numpy(head_bias).float()
        return scorer(logits, x).numpy(), scorer.fit(x).numpy()


ALPHAS = (64.0, 256.0, 1024.0, 4096.0)
BETAS = (16.0, 24.0, 32.0, 40.0)
NEAR_DUPLICATE_COSINE = 0.84
NEAR_DUPLICATE_VOTE = 5.0
"""A stored photo's vote for a near duplicate of it (cosine 0.84, a 10 % crop) is at least this
(log units), so its crops and mirror images follow the user's label against a confident head."""
MAX_VALID_DROP = 0.005
"""A memory may cost at most this much accuracy on the original validation photos."""


def tune_memory(
    keys: np.ndarray,
    labels: np.ndarray,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    valid_features: np.ndarray,
    valid_labels: np.ndarray,
    group: np.ndarray | None = None,
) -> ExemplarMemory:
    """Choose the memory's strength on the data at hand.

    Each setting is scored by leave-one-out accuracy on the user's own labelled photos (each
    photo scored by the head and the *other* stored photos): the only measure we have of the
    user's kind of photo. Settings that cost more than :data:`MAX_VALID_DROP` on the original
    validation photos are refused, so the memory never trades what the model knew for it; ties
    go to the setting whose votes reach least far (at cosine 0.75).
    """
    n = len(labels)
    num_classes = group.shape[1] if group is not None else head_weight.shape[0]
    base_valid = score_and_fit(valid_features, head_weight, head_bias, group=group)[0]
    base_acc = float((base_valid.argmax(1) == valid_labels).mean()) if len(valid_labels) else 1.0
    with torch.inference_mode():
        x = torch.from_numpy(keys.astype(np.float32))
        logits = x @ torch.from_numpy(head_weight).float().T + torch.from_numpy(head_bias).float()
        base_scores = log_probabilities(logits, None if group is None else torch.from_numpy(group).float(), False)
        affinity = normalise_rows(x) @ normalise_rows(x).T
        affinity.fill_diagonal_(-2.0)  # leave one out: a photo never finds itself
        onehot = torch.zeros(n, num_classes)
        onehot[torch.arange(n), torch.from_numpy(labels.astype(np.int64))] = 1.0
    best: tuple[float, float, float, float] | None = None  # (loo, -reach, alpha, beta)
    settings = [
        (a, b) for a in ALPHAS for b in BETAS if a * np.exp(-b * (1.0 - NEAR_DUPLICATE_COSINE)) >= NEAR_DUPLICATE_VOTE
    ]
    for alpha, beta in settings:
        candidate = ExemplarMemory(keys, labels, alpha, beta)
        valid = score_and_fit(valid_features, head_weight, head_bias, group=group, memory=candidate)[0]
        valid_acc = float((valid.argmax(1) == valid_labels).mean()) if len(valid_labels) else 1.0
        if valid_acc < base_acc - MAX_VALID_DROP:
            continue
        votes = alpha * torch.exp(-beta * (1.0 - nearest_per_class(affinity, onehot)))
        loo = float(((base_scores + votes).argmax(1).numpy() == labels).mean()) if n else 0.0
        key = (loo, -alpha * float(np.exp(-beta * 0.25)), alpha, beta)
        if best is None or key > best:
            best = key
    if best is None:  # every setting cost validation accuracy: the one that reaches least far
        alpha, beta = min(settings, key=lambda ab: ab[0] * np.exp(-ab[1] * 0.25))
        return ExemplarMemory(keys, labels, alpha, beta)
    return ExemplarMemory(keys, labels, best[2], best[3])


def leave_one_out(
    features: np.ndarray,
    head_weight: np.ndarray,
    head_bias: np.ndarray,
    memory: ExemplarMemory | None,
    rows: np.ndarray,
    *,
    group: np.ndarray | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Probabilities for photos that are themselves stored in ``memory`` (photo ``i`` is row
    ``rows[i]``; -1 for one that is not), each scored as if its own row were not there.

    A reviewed photo scored with its own memory row only finds itself and is always right; this
    is the score it would get as a new photo, which calibration needs.
    """
    num_classes = group.shape[1] if group is not None else head_weight.shape[0]
    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        logits = x @ torch.from_numpy(head_weight).float().T + torch.from_numpy(head_bias).float()
        grouping = None if group is None else torch.from_numpy(group).float()
        scores = log_probabilities(logits / temperature, grouping, False)
        if memory is not None and len(memory):
            keys = torch.from_numpy(np.asarray(memory.keys, dtype=np.float32))
            affinity = normalise_rows(x) @ normalise_rows(keys).T
            own = torch.from_numpy(np.asarray(rows, dtype=np.int64))
            stored = own >= 0
            affinity[torch.arange(len(own))[stored], own[stored]] = -2.0
            onehot = torch.zeros(len(memory), num_classes)
            onehot[torch.arange(len(memory)), torch.from_numpy(memory.labels.astype(np.int64))] = 1.0
            votes = memory.alpha * torch.exp(-memory.beta * (1.0 - nearest_per_class(affinity, onehot)))
            scores = scores + votes
        return torch.softmax(scores, dim=1).numpy()
