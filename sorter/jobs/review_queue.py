"""The order in which the review shows a sorted folder: what teaches most per photo reviewed.

Two kinds of review teach Sorter. Doubtful photos (least confident, and unlike one another) are
where corrections change the most answers. Confident photos are where the promised precision is
won or lost: reviewed least-sure first only, the user's verdicts all fall below the thresholds
already in use, and the calibration they update (:mod:`sorter.learn.recalibration`) never learns
how often a confident answer is wrong (measured in docs/PERFORMANCE.md). So one photo in
``spot_every`` (:class:`sorter.knobs.Knobs`) at the head of the queue is a *spot check*: a photo sorted into a category,
drawn at random, for the user to confirm or correct.

:func:`build_queue` is the one queue: the review dialog shows it, and the correction-loop
benchmark's simulated user reviews it in the same order.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sorter.files.corrections import CorrectionStore
from sorter.files.feature_cache import FeatureCache
from sorter.files.images import NEAR_DUPLICATE_BITS, dhash
from sorter.files.journal import FEATURES_NAME, STATE_DIR, Journal
from sorter.jobs.policy import NONE_OF_THESE
from sorter.jobs.rescore import Rescored, rescore
from sorter.jobs.stated import stated
from sorter.knobs import knobs
from sorter.learn.estimate import PrecisionEstimate
from sorter.learn.shift import UNLIKE_REASON, FolderShift
from sorter.model.bundle import Bundle
from sorter.names import HOLDING_FOLDERS, OTHER_FOLDER

SPOT_CHECK_NOTE = "a spot check of a confident photo: confirm it (C) if it is right, so the confidence stays honest"


@dataclass
class QueueItem:
    """One entry of the review: a sorted photo and its near-duplicates, shown and fixed as one."""

    path: Path
    label: str
    confidence: float
    similar: list[Path] = field(default_factory=list)
    """Near-duplicates of this photo in the same folder, shown and corrected as one group."""
    suggested: str | None = None
    """The folder the re-score now suggests, when it differs from where the photo lies."""
    reviewed: bool = False
    """Corrected or confirmed by the user."""
    reason: str | None = None
    """Why it is not in a category ("looks like none of the categories", "between chair and sofa")."""
    rank: int = 1 << 30
    """Place in the re-score's review order (doubt and diversity); unscored photos come last."""
    spot_check: bool = False
    """A confident photo shown among the doubtful ones, so that confirming it keeps the
    calibration honest."""
    waits: bool = False
    """Held back although the reviews suggest a category: a re-sort leaves it until the folder's
    reviews can vouch for such photos, so only the user's C moves it now."""

    @property
    def paths(self) -> list[Path]:
        return [self.path, *self.similar]

    @property
    def why(self) -> str | None:
        """What the review says of this photo: why it is unsure, or that it is a spot check."""
        return SPOT_CHECK_NOTE if self.spot_check and not self.reviewed else self.reason


@dataclass
class ReviewQueue:
    items: list[QueueItem]
    adapted_on: int = 0
    """How many reviewed photos the model's head was adapted to in the re-score (0: not adapted)."""
    shift: FolderShift | None = None
    """How the folder compares with the model's training photos (None: not known)."""
    estimate: PrecisionEstimate | None = None
    """The precision the last re-sort stated for the folders, from the user's reviews (None: none
    stated, too few reviews then, or the folders changed since; see :mod:`sorter.jobs.stated`)."""


def folder_note(queue: ReviewQueue) -> str:
    """A sentence for the review on how far the folder's folders can be believed: the precision
    the last re-sort stated from the user's reviews, else whether the folder is unlike the
    model's training photos."""
    if queue.estimate is not None:
        return queue.estimate.sentence() + " "
    if queue.shift is None or not queue.shift.shifted:
        return ""
    held = sum(len(i.paths) for i in queue.items if i.reason == UNLIKE_REASON)
    return (
        f"These photos look unlike the model's own ({queue.shift.share:.0%} of them); {held} are held back in "
        "_unsure until your reviews teach it, then Re-sort the rest. "
    )


def caption(item: QueueItem) -> str:
    """What a photo's tile says: its name, where it is (and where it would go), how sure the
    model is, and why it was held back or is shown now."""
    extra = f" (+{len(item.similar)})" if item.similar else ""
    where = f"{item.label} → {item.suggested}?" if item.suggested else item.label
    mark = "✓ " if item.reviewed else ""
    if item.reason:  # it says what the model gave, and what was needed
        lines = [f"{item.path.name}{extra}", f"{mark}{where}", item.reason]
    else:
        lines = [f"{item.path.name}{extra}", f"{mark}{where} · {item.confidence:.0%}"]
    if item.spot_check and not item.reviewed:
        lines.append("right? (C)")
    return "\n".join(lines)


def overview(items: list[QueueItem], adapted_on: int, unlike: str) -> str:
    """The review's status line: what the queue holds, in the order it is shown."""
    total = sum(len(i.paths) for i in items)
    if not total:
        return "No photos are left in this folder."
    groups = sum(1 for i in items if i.similar)
    grouped = f" ({groups} groups of near-duplicates shown as one)" if groups else ""
    offered = sum(len(i.paths) for i in items if i.waits and not i.spot_check)
    changed = sum(len(i.paths) for i in items if i.suggested and not i.spot_check) - offered
    parts = [f"{unlike}{total} photos{grouped}."]
    if adapted_on:
        parts.append(f"The model adapted to your {adapted_on} reviewed {'photo' if adapted_on == 1 else 'photos'}.")
    if changed:
        parts.append(f"First the {changed} that your reviews would move (Re-sort the rest moves them).")
    if offered:
        lead = "Next" if changed else "First"
        parts.append(f"{lead} the {offered} your reviews suggest a category for (C if right).")
    parts.append("Then the least sure first")
    if any(i.spot_check and not i.reviewed for i in items):
        parts[-1] += f", and every {knobs().spot_every}th a sure one to check (C if it is right)"
    parts[-1] += "."
    return " ".join(parts)


def photos_in_order(queue: ReviewQueue) -> list[Path]:
    """Every photo in the order a user meets them: each entry, then its near-duplicates (the
    correction-loop benchmark's simulated user reviews them in this order)."""
    return [path for item in queue.items for path in item.paths]


def build_queue(
    output: Path,
    bundle: Bundle | None = None,
    store: CorrectionStore | None = None,
) -> ReviewQueue:
    """The review of a sorted folder: photos still in place, near-duplicates grouped; photos not
    yet reviewed whose re-scored folder changed first, then ``_unsure``, then by doubt and
    diversity with a spot check of a confident photo one in ``spot_every``, photos of
    none of the categories in a group of their own (see :func:`queue_key`). With a bundle and
    the corrections store the photos are re-scored from their cached features (with the run's
    own policy), and only then are near-duplicates grouped (a hash alone is not enough: see
    :func:`group_near_duplicates`). Reads files: the GUI calls it off its thread."""
    adapted_on = 0
    shift = None
    estimate = None
    with Journal.open(output, create=False, lock=False) as journal:
        placed = [p for p in journal.placements() if p.path.exists()]
        last_stated = stated(output, journal, None if bundle is None else bundle.config.classes)
    seen: dict[Path, QueueItem] = {p.path: QueueItem(p.path, p.label, p.confidence) for p in placed}
    shas: dict[Path, str] = {p.path: p.sha256 for p in placed}
    features: dict[Path, np.ndarray] = {}
    if bundle is not None and store is not None and not bundle.config.multi_label:
        # rebuilt after every click: it shows (and decides by) what the last re-sort stated
        found = rescore(output, bundle, store, placements=placed, stated=last_stated, estimating=False)
        adapted_on = found.adapted.user_rows if found.adapted is not None else 0
        shift = found.shift
        estimate = found.estimate
        features = {r.path: row for r, row in zip(found.photos, found.features, strict=True)}
        for rank, r in enumerate(review_order(found.photos, found.features)):
            if r.path in seen:
                seen[r.path] = scored_item(r, rank)
    ordered = in_queue_order(list(seen.values()))
    grouped = group_near_duplicates(ordered, kept_looks(output, shas), features)
    done = sum(1 for i in grouped if i.reviewed)
    return ReviewQueue(interleave_spot_checks(grouped, done=done), adapted_on, shift, estimate)


def scored_item(r: Rescored, rank: int) -> QueueItem:
    """A re-scored photo as the review shows it, ``rank``-th in the re-score's review order."""
    return QueueItem(
        r.path,
        r.current,
        r.confidence,
        suggested=_suggestion(r),
        reviewed=r.reviewed,
        reason=r.reason if r.current in HOLDING_FOLDERS else None,
        rank=rank,
        spot_check=r.spot_check,
        waits=r.waits,
    )


def _suggestion(r: Rescored) -> str | None:
    """The folder the review offers: where the re-score would move the photo, or, for a spot
    check held back in ``_unsure``, the category it is likeliest to be (C accepts it)."""
    if r.reviewed:
        return None
    if r.changed:
        return r.suggested
    if r.spot_check and r.current in HOLDING_FOLDERS and r.guess:
        return r.guess
    return None


def in_queue_order(items: list[QueueItem]) -> list[QueueItem]:
    """Sorted by :func:`queue_key`."""
    return sorted(
        items,
        key=lambda i: queue_key(
            i.label,
            suggested=i.suggested is not None and not i.spot_check,
            reviewed=i.reviewed,
            reason=i.reason,
            rank=i.rank,
            confidence=i.confidence,
            name=i.path.name,
        ),
    )


def group_near_duplicates(
    items: list[QueueItem], looks: dict[Path, int], features: dict[Path, np.ndarray]
) -> list[QueueItem]:
    """Fold near-duplicates (same folder, dHash within a few bits *and* features within
    ``duplicate_cosine``) into their least confident one.

    ``looks`` are the photos' difference hashes (kept when they were sorted); ``features`` their
    body features (the re-score's rows). A group is corrected as one, so both must agree: the
    hash alone put sketches of giraffes and guitars in one group, and a photo without features
    is in no group. The pairs within :data:`NEAR_DUPLICATE_BITS` bits are found at once, folder
    by folder, with numpy (XOR and a bit count over all pairs: 10,000 photos take a fraction of
    a second), then confirmed by their cosine; then, in queue order, each photo joins the first
    earlier photo it is near that represents a group."""
    hashes = [looks.get(item.path) for item in items]
    usable = [
        h is not None and 8 <= h.bit_count() <= 56 and item.path in features
        for h, item in zip(hashes, items, strict=True)
    ]
    closest = knobs().duplicate_cosine
    groups: dict[tuple[str, bool], list[int]] = {}
    for i, item in enumerate(items):
        if usable[i]:
            groups.setdefault((item.label, item.reviewed), []).append(i)
    near: dict[int, list[int]] = {}
    for members in groups.values():
        ids = np.array(members)
        values = np.array([hashes[i] for i in members], dtype=np.uint64)
        unit = np.stack([features[items[i].path] for i in members]).astype(np.float32)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True).clip(min=1e-6)
        for start in range(0, len(ids), 512):
            block = values[start : start + 512, None] ^ values[None, :]
            rows, cols = np.nonzero(np.bitwise_count(block) <= NEAR_DUPLICATE_BITS)
            rows += start
            alike = np.einsum("ij,ij->i", unit[rows], unit[cols]) >= closest
            for r, c in zip(rows[alike], cols[alike], strict=True):
                if c < r:  # an earlier photo of the queue
                    near.setdefault(int(ids[r]), []).append(int(ids[c]))
    is_rep = [True] * len(items)
    kept: list[QueueItem] = []
    for i, item in enumerate(items):  # already least confident first: the first of a group represents it
        rep = next((j for j in sorted(near.get(i, ())) if is_rep[j]), None)
        if rep is None:
            kept.append(item)
        else:
            is_rep[i] = False
            items[rep].similar.append(item.path)
    return kept


def kept_looks(output: Path, placements: dict[Path, str]) -> dict[Path, int]:
    """Each photo's difference hash, from the folder's feature cache; a photo sorted before
    hashes were kept is hashed from its file once, and the hash kept for the next time (where
    the folder can be written)."""
    found: dict[str, int] = {}
    cache: FeatureCache | None = None
    with contextlib.suppress(OSError, sqlite3.Error):
        cache = FeatureCache.open(output / STATE_DIR / FEATURES_NAME)
    try:
        if cache is not None:
            found = cache.get_looks(placements.values())
        missing = {sha: p for p, sha in placements.items() if sha not in found}
        computed = {sha: h for sha, p in missing.items() if (h := dhash(p)) is not None}
        if computed and cache is not None:
            cache.put_looks(computed)
        found.update(computed)
    finally:
        if cache is not None:
            cache.close()
    return {p: found[sha] for p, sha in placements.items() if sha in found}


def review_order(
    scored: list[Rescored], features: np.ndarray, first: int | None = None, spot_every: int | None = None
) -> list[Rescored]:
    """Least confident first, but the first ``first`` photos are picked one by one for doubt
    *and* unlikeness to those already picked (greedy k-centre on cosine distance, weighted by
    1 - confidence), so thirty near-identical doubtful photos do not fill the first page; and one
    in ``spot_every`` of the head is a spot check (marked ``spot_check``, placed right after the
    head; :func:`interleave_spot_checks` spreads them). ``features`` are the rows of ``scored``.
    Both default to :class:`~sorter.knobs.Knobs`' ``diverse_first`` and ``spot_every``.
    """
    tuned = knobs()
    first = tuned.diverse_first if first is None else first
    spot_every = tuned.spot_every if spot_every is None else spot_every
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
    """``count`` photos not reviewed that are sorted into a category the re-score keeps, or held
    back and the re-score is sure of (``spot_sure``; never one a re-sort would move between
    categories, whose "bed → sofa?" C could not answer): a uniform random sample (an unbiased
    look at how often the photos a re-sort sorts are right) that is the same on every re-score,
    since it is drawn by content hash, so the queue does not reshuffle after each correction."""
    if count <= 0:
        return []
    sure = knobs().spot_sure

    def candidate(r: Rescored) -> bool:
        held = r.current in HOLDING_FOLDERS
        return (held and r.confidence >= sure) or (not held and not r.changed)

    pool = [
        i
        for i, r in enumerate(scored)
        if not r.reviewed and OTHER_FOLDER not in (r.current, r.suggested) and candidate(r)
    ]
    pool.sort(key=lambda i: (scored[i].placement.sha256, scored[i].path.name))
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
    return (not suggested, reviewed, reason == NONE_OF_THESE, label not in HOLDING_FOLDERS, rank, confidence, name)


def interleave_spot_checks(ordered: Sequence[QueueItem], every: int | None = None, done: int = 0) -> list[QueueItem]:
    """Spread the spot checks of a sorted queue: one in every ``every`` (default ``spot_every``)
    reviews, counting the ``done`` already made, so the photos not yet reviewed are placed as the
    user's next reviews. The dialog builds the queue again after every click and keeps its cursor,
    so a user who takes the top photo each time meets one every ``every`` clicks, as a user who
    goes down the first page does (placed by the unreviewed photos alone, the next was always
    three ahead of the first). What is left of them goes before the reviewed photos."""
    every = knobs().spot_every if every is None else every
    spots = [q for q in ordered if q.spot_check and not q.reviewed]
    if not spots or every <= 0:
        return list(ordered)
    out: list[QueueItem] = []
    for q in ordered:
        if q.spot_check and not q.reviewed:
            continue
        if q.reviewed:
            out.extend(spots)
            spots = []
        elif spots and (done + len(out)) % every == every - 1:
            out.append(spots.pop(0))
        out.append(q)
    out.extend(spots)
    return out
