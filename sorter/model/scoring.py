"""Scoring from body features: the one function that turns cached features into folder
probabilities and a fit, exactly as the sorting network does.

Sorting decodes every photo once and keeps its pooled body features; everything after that
(the review's re-score, re-sorting, training's and retraining's evaluation, the memory's tuning)
scores those features here, through the same :class:`~sorter.model.memory.Scorer` that runs
inside the network and its ONNX export, so the answers cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sorter.model.bundle import Bundle, Head
from sorter.model.memory import ExemplarMemory, Scorer
from sorter.model.pipeline import group_matrix


@dataclass(frozen=True)
class Scored:
    """``probs``: (N, folders) probabilities; ``fit``: (N,) each photo's fit to any category."""

    probs: np.ndarray
    fit: np.ndarray


def score_features(
    features: np.ndarray,
    head: Head,
    *,
    group: np.ndarray | None = None,
    multi_label: bool = False,
    memory: ExemplarMemory | None = None,
    temperature: float = 1.0,
    anchors: np.ndarray | None = None,
) -> Scored:
    """Score features with a head that need not be a bundle's yet (training fits one, then
    measures it here before it saves the bundle)."""
    num_classes = group.shape[1] if group is not None else head.weight.shape[0]
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
        probs = scorer(head.logits(x), x)
        return Scored(probs.numpy(), scorer.fit(x).numpy())


def score(
    bundle: Bundle,
    features: np.ndarray,
    memory: ExemplarMemory | None,
    head: Head | None = None,
) -> Scored:
    """Score features as ``bundle`` would: its head (or ``head``, one adapted to the user's
    photos), its grouping, temperature and fit anchors, with ``memory`` voting (the bundle's
    own, the bundle's plus the user's reviewed photos, or None for the head alone). As the network
    does, it leaves faces out: they are evidence the decision weighs
    (:func:`sorter.learn.evidence.gather`)."""
    group = group_matrix(bundle.config)
    anchors = bundle.ood_anchors
    return score_features(
        features,
        head if head is not None else bundle.head,
        group=None if group is None else group.numpy(),
        multi_label=bundle.config.multi_label,
        memory=memory,
        temperature=bundle.config.temperature,
        anchors=None if anchors is None else anchors.numpy(),
    )
