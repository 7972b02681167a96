"""Is this folder like the photos the model learnt from? Per photo, and for the whole folder.

A model's "95 % sure" was measured on validation photos of its training source. Paintings,
cartoons or room scenes sorted by a model of product shots are right far less often at the same
confidence, so Sorter first asks whether the user's photos look like the training photos.

*Per photo*, typicality: the mean cosine of the photo's body features to its nearest
training photos of the class it is predicted as (the bundle's feature replay), read as a
percentile of the same measure on the model's own validation photos of that class (held out from
fitting, so they are what "a new photo from the training source" looks like). A typicality of
0.03 means: less like the training photos than 97 % of the validation photos were.

*Per folder*: in a folder from the training source about ``atypical`` (5 %) of the photos fall
below the ``atypical`` percentile, by construction. A folder where significantly more do (a
one-sided binomial test, and at least twice the expected share) is *shifted*: there, photos
below ``shift_typical`` are held back in ``_unsure`` with :data:`UNLIKE_REASON` unless the model
is ``atypical_floor`` sure (these numbers are in :class:`sorter.knobs.Knobs`), until the user's
reviews teach the model the new look: a photo as close to a reviewed photo as in-source photos
are to their nearest training photo counts as typical from then on. ``benchmarks/trust.py``
measured the choices made here, and the variants that lost, against a domain classifier's AUROC,
on shifted and in-source folders (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from sorter.knobs import knobs
from sorter.model.replay import Replay

UNLIKE_REASON = "looks unlike the photos this model learnt from"


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-6)
    return out


def usual_closeness(reviewed: np.ndarray, folder: np.ndarray) -> float | None:
    """The median, over the photos of ``folder`` not reviewed, of the cosine to the nearest of
    the user's ``reviewed`` photos (None: nothing to compare). In most folders it is low; in one
    whose photos all lie close together (sketches: 0.83, a near-duplicate's distance elsewhere)
    being that close to a reviewed photo says nothing about a photo's label or look."""
    if len(reviewed) == 0 or len(folder) == 0:
        return None
    unit_r, unit_f = _unit(reviewed), _unit(folder)
    closest = np.empty(len(unit_f), dtype=np.float32)
    for start in range(0, len(unit_f), 1024):  # a folder of thousands stays small
        closest[start : start + 1024] = (unit_f[start : start + 1024] @ unit_r.T).max(axis=1)
    others = closest[closest < knobs().same_photo_cosine]  # the reviewed photos themselves say nothing
    return float(np.median(others)) if len(others) else None


@dataclass(frozen=True)
class TypicalityIndex:
    """Per class, the training photos' features (unit rows) and the validation photos' scores
    against them, sorted: what a percentile is read against (all classes pooled for a class with
    too few validation photos). Per class, because classes differ in how alike their photos are
    (dogs vary more than giraffes): a folder of dogs from the training source must not look
    shifted for being all dogs, and a painting called a guitar is compared with guitars."""

    rows: dict[int, np.ndarray]
    reference: dict[int, np.ndarray]
    pooled_rows: np.ndarray
    pooled_reference: np.ndarray
    nearest_reference: dict[int, np.ndarray]
    """Per class, the validation photos' cosine to their nearest training photo, sorted."""
    taught: dict[int, np.ndarray] = field(default_factory=dict)
    """The user's reviewed photos per class (see :meth:`taught_by`)."""
    taught_floor: float = -1.0
    """Closeness to a reviewed photo counts only above this (see :meth:`taught_by`)."""

    @classmethod
    def from_replay(cls, replay: Replay) -> TypicalityIndex | None:
        """From a bundle's replay; None when it has too few validation rows to read percentiles."""
        train, train_labels = _unit(replay.features[~replay.valid]), replay.labels[~replay.valid]
        valid, valid_labels = _unit(replay.features[replay.valid]), replay.labels[replay.valid]
        tuned = knobs()
        if len(train) < tuned.neighbours or len(valid) < tuned.min_folder_photos:
            return None
        rows: dict[int, np.ndarray] = {}
        reference: dict[int, np.ndarray] = {}
        nearest: dict[int, np.ndarray] = {}
        for c in np.unique(valid_labels):
            mine, theirs = train[train_labels == c], valid[valid_labels == c]
            if len(mine) >= tuned.neighbours and len(theirs) >= tuned.min_class_photos:
                rows[int(c)] = mine
                reference[int(c)] = np.sort(_knn(theirs, mine))
                nearest[int(c)] = np.sort(_knn(theirs, mine, k=1))
        return cls(rows, reference, train, np.sort(_knn(valid, train)), nearest)

    def taught_by(self, features: np.ndarray, labels: np.ndarray, folder: np.ndarray | None = None) -> TypicalityIndex:
        """The same index with the user's reviewed photos (``features``, class indices ``labels``;
        -1 for a class the model lacks) taught: see :meth:`typicality`. In a ``folder`` whose
        photos all lie close to a reviewed one, only those clearly closer than that are taught
        (see :func:`usual_closeness`)."""
        unit = _unit(features)
        usual = usual_closeness(features, folder) if folder is not None else None
        floor = -1.0 if usual is None else usual + knobs().dense_margin
        taught = {c: unit[labels == c] for c in self.rows if (labels == c).any()}
        return replace(self, taught=taught, taught_floor=floor)

    def typicality(self, features: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """(N,) percentiles in [0, 1]: the share of validation photos less typical than each,
        among those of the class it is predicted as (``classes``), where that class has enough."""
        out = np.zeros(len(features), dtype=np.float32)
        if len(features) == 0:
            return out
        unit = _unit(features)
        predicted = np.full(len(features), -1) if classes is None else np.asarray(classes)
        for c in np.unique(predicted):
            mask = predicted == c
            rows = self.rows.get(int(c), self.pooled_rows)
            ref = self.reference.get(int(c), self.pooled_reference)
            out[mask] = np.searchsorted(ref, _knn(unit[mask], rows), side="right") / len(ref)
            if int(c) in self.taught:
                # as close to a photo the user labelled as a new photo of the source is to its
                # nearest training photo: typical of what the user has taught the model
                near = self.nearest_reference[int(c)]
                nearest = _knn(unit[mask], self.taught[int(c)], k=1)
                close = np.searchsorted(near, nearest, side="right") / len(near)
                out[mask] = np.maximum(out[mask], np.where(nearest > self.taught_floor, close, 0.0))
        return out


def _knn(unit_features: np.ndarray, rows: np.ndarray, chunk: int = 256, k: int | None = None) -> np.ndarray:
    """Mean cosine to the ``k`` nearest rows, in chunks (a folder of thousands stays small)."""
    out = np.empty(len(unit_features), dtype=np.float32)
    k = min(knobs().neighbours if k is None else k, len(rows))
    for start in range(0, len(unit_features), chunk):
        sims = unit_features[start : start + chunk] @ rows.T
        top = np.partition(sims, len(rows) - k, axis=1)[:, -k:]
        out[start : start + chunk] = top.mean(axis=1)
    return out


@dataclass(frozen=True)
class FolderShift:
    """How a folder compares with the training photos."""

    photos: int
    atypical: int
    """Photos below the :attr:`~sorter.knobs.Knobs.atypical` percentile."""

    @property
    def share(self) -> float:
        return self.atypical / self.photos if self.photos else 0.0

    @property
    def shifted(self) -> bool:
        """Significantly more atypical photos than a folder from the training source has."""
        tuned = knobs()
        if self.photos < tuned.min_folder_photos:
            return False
        p = tuned.atypical
        bound = p + tuned.shift_z * math.sqrt(p * (1 - p) / self.photos)
        return self.share > max(bound, 2 * p)

    def sentence(self, held_back: int) -> str:
        """What the user reads in the summary, the JSON and the GUI."""
        return (
            f"{self.share:.0%} of these photos look unlike the ones this model learnt from "
            f"(about {knobs().atypical:.0%} of its own photos do), so its confidence cannot be trusted here: "
            f"{held_back} of them were held back in _unsure; review {knobs().min_reviews} of them and re-sort the rest"
        )

    def to_json(self, held_back: int) -> dict[str, object]:
        return {
            "photos": self.photos,
            "atypical": self.atypical,
            "atypical_share": round(self.share, 4),
            "expected_share": knobs().atypical,
            "shifted": self.shifted,
            "held_back": held_back,
        }


def folder_shift(typicality: np.ndarray) -> FolderShift:
    return FolderShift(len(typicality), int((np.asarray(typicality) < knobs().atypical).sum()))


T = TypeVar("T")


class ShiftWatch:
    """Follows a folder's typicality while it is being sorted.

    The sorting job decides each photo as soon as it is classified, but whether the folder is
    shifted is a property of many photos: the first :attr:`~sorter.knobs.Knobs.probe` predictions are held until
    they can say, and the verdict is taken again over all photos so far each time their number
    doubles (a test at every photo would, by sheer number of looks, find a streak in any folder).
    Photos decided under an earlier verdict are re-decided by the re-sort after the review.
    ``watching`` is False where the bundle keeps no training photos to compare with: then nothing
    is held and there is no verdict.
    """

    def __init__(self, watching: bool, probe: int | None = None) -> None:
        self.watching = watching
        self.probe = knobs().probe if probe is None else probe
        self.typicality: list[float] = []
        self._shifted = False
        self._next_look = self.probe

    @property
    def shift(self) -> FolderShift | None:
        if not self.watching:
            return None
        return folder_shift(np.asarray(self.typicality, dtype=np.float32))

    @property
    def shifted(self) -> bool:
        return self._shifted

    def stream(self, items: Iterable[tuple[T, float | None]]) -> Iterator[T]:
        """Each item, in order, once the verdict it is to be decided under is taken. ``items``
        come with their typicality against the training photos alone (the evidence's
        ``untaught``, see :mod:`sorter.learn.evidence`; None for a photo that was not read)."""
        held: list[T] = []
        for item, typical in items:
            if typical is not None and self.watching:
                self._count(typical)
            if not self.watching or (not held and len(self.typicality) > self.probe):
                yield item
                continue
            held.append(item)
            if len(self.typicality) >= self.probe:
                yield from held
                held = []
        if held:
            self.finish()  # fewer photos than the probe: decide them on all of them
        yield from held

    def _count(self, typical: float) -> None:
        self.typicality.append(typical)
        if len(self.typicality) >= self._next_look:
            self._next_look *= 2
            shift = self.shift
            self._shifted = shift is not None and shift.shifted

    def finish(self) -> None:
        """The last verdict, over every photo (a folder smaller than the probe gets its only one)."""
        shift = self.shift
        self._shifted = shift is not None and shift.shifted
