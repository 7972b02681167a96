"""Fitting the exemplar memory (:mod:`sorter.model.memory`) to the photos at hand.

Its strength is chosen by leave-one-out on the user's own photos, and the same leave-one-out
scores reviewed photos honestly for calibration: a photo stored in the memory must not vote for
itself.
"""

from __future__ import annotations

import numpy as np
import torch

from sorter.knobs import knobs
from sorter.learn.shift import usual_closeness
from sorter.model.bundle import Head
from sorter.model.memory import ExemplarMemory, class_onehot, class_votes, log_probabilities, normalise_rows
from sorter.model.scoring import score_features

ALPHAS = (64.0, 256.0, 1024.0, 4096.0)
BETAS = (16.0, 24.0, 32.0, 40.0)
"""The memory strengths :func:`tune_memory` chooses among (its other constants are in
:class:`sorter.knobs.Knobs`)."""


def sharpened_for(memory: ExemplarMemory, reviewed: np.ndarray, folder: np.ndarray) -> ExemplarMemory:
    """``memory`` with its reach narrowed, when needed, so that the user's ``reviewed`` photos
    vote only for photos of ``folder`` closer to them than the folder's photos usually are
    (:func:`~sorter.learn.shift.usual_closeness`); a folder of ordinary spread keeps it as it is."""
    usual = usual_closeness(reviewed, folder)
    if usual is None:
        return memory
    tuned = knobs()
    beta = float(np.log(memory.alpha / tuned.faint_vote) / max(1e-3, 1.0 - usual - tuned.dense_margin))
    if beta <= memory.beta:
        return memory
    return ExemplarMemory(memory.keys, memory.labels, memory.alpha, beta)


def tune_memory(
    keys: np.ndarray,
    labels: np.ndarray,
    head: Head,
    valid_features: np.ndarray,
    valid_labels: np.ndarray,
    group: np.ndarray | None = None,
) -> ExemplarMemory:
    """Choose the memory's strength on the data at hand.

    Each setting is scored by leave-one-out accuracy on the user's own labelled photos (each
    photo scored by the head and the *other* stored photos): the only measure we have of the
    user's kind of photo. Settings that cost more than ``memory_max_valid_drop`` on the original
    validation photos are refused, so the memory never trades what the model knew for it; ties
    go to the setting whose votes reach least far (at cosine 0.75).
    """
    n = len(labels)
    num_classes = group.shape[1] if group is not None else head.weight.shape[0]
    base_valid = score_features(valid_features, head, group=group).probs
    base_acc = float((base_valid.argmax(1) == valid_labels).mean()) if len(valid_labels) else 1.0
    with torch.inference_mode():
        x = torch.from_numpy(keys.astype(np.float32))
        grouping = None if group is None else torch.from_numpy(group).float()
        base_scores = log_probabilities(head.logits(x), grouping, False)
        affinity = normalise_rows(x) @ normalise_rows(x).T
        affinity.fill_diagonal_(-2.0)  # leave one out: a photo never finds itself
        onehot = class_onehot(labels, num_classes)
    best: tuple[float, float, float, float] | None = None  # (loo, -reach, alpha, beta)
    tuned = knobs()
    near = 1.0 - tuned.near_duplicate_cosine
    settings = [(a, b) for a in ALPHAS for b in BETAS if a * np.exp(-b * near) >= tuned.near_duplicate_vote]
    for alpha, beta in settings:
        candidate = ExemplarMemory(keys, labels, alpha, beta)
        valid = score_features(valid_features, head, group=group, memory=candidate).probs
        valid_acc = float((valid.argmax(1) == valid_labels).mean()) if len(valid_labels) else 1.0
        if valid_acc < base_acc - tuned.memory_max_valid_drop:
            continue
        votes = class_votes(affinity, onehot, alpha, beta)
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
    head: Head,
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
    num_classes = group.shape[1] if group is not None else head.weight.shape[0]
    with torch.inference_mode():
        x = torch.from_numpy(np.asarray(features, dtype=np.float32))
        logits = head.logits(x)
        grouping = None if group is None else torch.from_numpy(group).float()
        scores = log_probabilities(logits / temperature, grouping, False)
        if memory is not None and len(memory):
            keys = torch.from_numpy(np.asarray(memory.keys, dtype=np.float32))
            affinity = normalise_rows(x) @ normalise_rows(keys).T
            own = torch.from_numpy(np.asarray(rows, dtype=np.int64))
            stored = own >= 0
            affinity[torch.arange(len(own))[stored], own[stored]] = -2.0
            scores = scores + class_votes(affinity, class_onehot(memory.labels, num_classes), memory.alpha, memory.beta)
        return torch.softmax(scores, dim=1).numpy()
