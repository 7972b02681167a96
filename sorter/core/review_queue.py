"""The order in which the review shows a sorted folder: what teaches most per photo reviewed.

Two kinds of review teach Sorter. Doubtful photos (least confident, and unlike one another) are
where corrections change the most answers. Confident photos are where the promised precision is
won or lost: reviewed least-sure first only, the user's verdicts all fall below the thresholds
already in use, and the calibration they update (:mod:`sorter.core.recalibration`) never learns
how often a confident answer is wrong (measured in docs/PERFORMANCE.md). So one photo in
:data:`SPOT_EVERY` at the head of the queue is a *spot check*: a photo sorted into a category,
drawn at random, for the user to confirm or correct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from sorter.core.sorting import NONE_OF_THESE
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER

if TYPE_CHECKING:
    from sorter.core.rescore import Rescored

DIVERSE_FIRST = 60
"""How many photos at the head of the review queue are chosen for diversity as well as doubt."""
SPOT_EVERY = 4
"""One photo in this many at the head of the queue is a spot check (0: none)."""
NOT_SORTED = (UNSURE_FOLDER, OTHER_FOLDER)


def review_order(
    scored: list[Rescored], features: np.ndarray, first: int = DIVERSE_FIRST, spot_every: int = SPOT_EVERY
) -> list[Rescored]:
    """Least confident first, but the first ``first`` photos are picked one by one for doubt
    *and* unlikeness to those already picked (greedy k-centre on cosine distance, weighted by
    1 - confidence), so thirty near-identical doubtful photos do not fill the first page; and one
    in ``spot_every`` of the head is a spot check (marked ``spot_check``, placed right after the
    head; :func:`interleave_spot_checks` spreads them). ``features`` are the rows of ``scored``.
    """
    spots = _spot_checks(scored, min(first, len(scored)) // spot_every if spot_every > 0 else 0)
    taken = set(spots)
    by_doubt = sorted(range(len(scored)), key=lambda i: (scored[i].confidence, scored[i].path.name))
    order = [i for i in by_doubt if i not in taken]
    marked = [replace(scored[i], spot_check=True) for i in spots]
    if len(order) <= 2:
        return [*(scored[i] for i in order), *marked]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(min=1e-6)
    doubt = np.array([1.0 - r.confidence for r in scored]) + 1e-3
    picked = [order[0]]
    nearest = 1.0 - unit @ unit[order[0]]  # cosine distance to the closest picked photo
    remaining = set(order[1:])
    while remaining and len(picked) < first - len(spots):
        candidates = np.array(sorted(remaining))
        best = int(candidates[np.argmax(doubt[candidates] * nearest[candidates])])
        picked.append(best)
        remaining.discard(best)
        nearest = np.minimum(nearest, 1.0 - unit @ unit[best])
    rest = [i for i in order if i in remaining]
    return [*(scored[i] for i in picked), *marked, *(scored[i] for i in rest)]


def _spot_checks(scored: Sequence[Rescored], count: int) -> list[int]:
    """``count`` photos sorted into a category, not reviewed, whose folder the re-score keeps:
    a uniform random sample (an unbiased look at how often the sorted photos are right) that is
    the same on every re-score, since it is drawn by content hash, so the queue does not
    reshuffle after each correction."""
    if count <= 0:
        return []
    pool = [i for i, r in enumerate(scored) if not r.reviewed and not r.changed and r.current not in NOT_SORTED]
    pool.sort(key=lambda i: (scored[i].op.sha256, scored[i].path.name))
    return pool[:count]


def queue_key(
    label: str,
    *,
    suggested: bool,
    reviewed: bool,
    reason: str | None,
    rank: int,
    confidence: float,
    name: str,
) -> tuple[object, ...]:
    """Sort key of the review: photos whose re-scored folder changed first, then photos not yet
    reviewed, ``_unsure`` (and ``_other``) before the categories, photos of none of the
    categories in a group of their own after the other unsure ones,
    then the re-score's review order (``rank``) and the least confident."""
    return (not suggested, reviewed, reason == NONE_OF_THESE, label not in NOT_SORTED, rank, confidence, name)


class Queued(Protocol):
    @property
    def spot_check(self) -> bool: ...

    @property
    def reviewed(self) -> bool: ...


Q = TypeVar("Q", bound=Queued)


def interleave_spot_checks(ordered: Sequence[Q], every: int = SPOT_EVERY) -> list[Q]:
    """Spread the spot checks of a sorted queue: one in every ``every`` of the photos not yet
    reviewed, from the first page on; what is left of them goes before the reviewed photos."""
    spots = [q for q in ordered if q.spot_check and not q.reviewed]
    if not spots or every <= 0:
        return list(ordered)
    out: list[Q] = []
    for q in ordered:
        if q.spot_check and not q.reviewed:
            continue
        if q.reviewed:
            out.extend(spots)
            spots = []
        out.append(q)
        if spots and not q.reviewed and len(out) % every == every - 1:
            out.append(spots.pop(0))
    out.extend(spots)
    return out


def review_queue(photos: Sequence[Rescored], every: int = SPOT_EVERY) -> list[Rescored]:
    """The review dialog's queue for re-scored photos (in :func:`review_order`), without its
    grouping of near-duplicates: what the benchmark's simulated user reviews."""
    ranked = sorted(
        enumerate(photos),
        key=lambda ir: queue_key(
            ir[1].current,
            suggested=ir[1].changed and not ir[1].reviewed,
            reviewed=ir[1].reviewed,
            reason=ir[1].reason,
            rank=ir[0],
            confidence=ir[1].confidence,
            name=ir[1].path.name,
        ),
    )
    return interleave_spot_checks([r for _, r in ranked], every)
