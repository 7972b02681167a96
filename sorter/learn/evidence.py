"""The evidence a folder decision is made from, built by one function for sorting and re-scoring.

A photo's folder is decided (:meth:`sorter.jobs.policy.Policy.decide`) from four things: the
model's probabilities, its fit to any category (:mod:`sorter.learn.ood`), how typical it is of
the training photos (:mod:`sorter.learn.shift`), and a prominent face (:mod:`sorter.model.people`).
Sorting sees a photo as it is decoded; re-scoring sees the same photo later, from the features and
the face kept then. If each built its evidence its own way, a re-sort straight after a sort could
move photos that nobody reviewed. So both call :func:`gather`, and a face acts here only: it
raises the people folder's probability, and vouches for the photo's fit and typicality.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from sorter.learn.shift import TypicalityIndex
from sorter.model.classifier import Prediction
from sorter.model.config import BundleConfig
from sorter.model.people import vouched, with_people


@dataclass(frozen=True)
class Evidence:
    """What the decision sees of N photos, row for row."""

    probs: np.ndarray
    """(N, folders): the model's probabilities, a prominent face's evidence included."""
    fit: np.ndarray
    """(N,): how well each fits any category; 1 where a face vouches for it."""
    typical: np.ndarray
    """(N,): typicality against the training photos and the user's reviewed ones (1 where a face
    vouches for it, or where the bundle keeps no training photos to compare with)."""
    untaught: np.ndarray | None
    """(N,): typicality against the training photos alone, before any face or review: what the
    folder's verdict counts (:func:`~sorter.learn.shift.folder_shift`); None without an index,
    and when ``reviewed`` photos were taught (the verdict is the folder's before any review, so a
    caller that teaches has taken it already, from a first gathering without them)."""

    def __len__(self) -> int:
        return len(self.probs)

    def row(self, i: int) -> tuple[np.ndarray, float, float]:
        """One photo's probabilities, fit and typicality, as :meth:`Policy.decide` takes them."""
        return self.probs[i], float(self.fit[i]), float(self.typical[i])


def gather(
    config: BundleConfig,
    probs: np.ndarray,
    fit: np.ndarray,
    features: np.ndarray | None,
    faces: np.ndarray | None,
    index: TypicalityIndex | None,
    reviewed: Sequence[tuple[np.ndarray, str]] = (),
) -> Evidence:
    """The evidence for photos the model scored.

    Args:
        probs, fit: as the network or :func:`~sorter.model.scoring.score` gave them, no face
            applied.
        features: their body features; needed only with an ``index``.
        faces: the largest face's prominence per photo; None when the bundle does not look for
            people.
        index: the training photos to compare with; None when the bundle keeps none.
        reviewed: the user's reviewed photos (features, label), taught to the index so that a
            photo like them is no longer new (see :meth:`TypicalityIndex.taught_by`).
    """
    probs = np.asarray(probs, dtype=np.float32)
    fit = np.asarray(fit, dtype=np.float32)
    hit = vouched(faces, config.people)
    if hit is not None:
        probs = with_people(probs, faces, config.people, config.classes)
        fit = np.where(hit, np.float32(1.0), fit)
    untaught: np.ndarray | None = None
    typical = np.ones(len(probs), dtype=np.float32)
    if index is not None and features is not None:
        predicted = probs.argmax(axis=1)
        if reviewed:
            classes = {c: i for i, c in enumerate(config.classes)}
            labels = np.array([classes.get(label, -1) for _, label in reviewed])
            taught = index.taught_by(np.stack([f for f, _ in reviewed]), labels, folder=features)
            typical = taught.typicality(features, predicted)
        else:
            untaught = typical = index.typicality(features, predicted)
    if hit is not None:
        typical = np.where(hit, np.float32(1.0), typical)
    return Evidence(probs, fit, typical, untaught)


T = TypeVar("T")


def weighed_one_by_one(
    config: BundleConfig, index: TypicalityIndex | None, predictions: Iterable[Prediction[T]]
) -> Iterator[tuple[tuple[Prediction[T], Evidence | None], float | None]]:
    """For sorting, which decides each photo as it is decoded: each prediction with its evidence
    (None: the photo was not read), gathered as re-scoring gathers a folder's, and the typicality
    the folder's verdict counts (see :class:`~sorter.learn.shift.ShiftWatch`)."""
    for pred in predictions:
        if pred.probs is None:
            yield (pred, None), None
            continue
        face = None if pred.face is None else np.array([pred.face], dtype=np.float32)
        features = None if pred.features is None else pred.features[None, :]
        evidence = gather(config, pred.probs[None, :], np.array([pred.fit]), features, face, index)
        yield (pred, evidence), None if evidence.untaught is None else float(evidence.untaught[0])
