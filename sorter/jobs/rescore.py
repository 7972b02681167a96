"""Re-score a sorted folder from the features kept at sort time, and re-sort what was not reviewed.

After a correction the user should see its effect at once, not after a retrain: the photos of the
run are scored again from their cached body features (no photo is decoded), with the user's
reviewed photos added to the model's exemplar memory, and their folders decided by the policy the
run was sorted with (:mod:`sorter.jobs.policy`). The review queue (:mod:`sorter.jobs.review_queue`)
orders the result; :func:`sorter.jobs.resort.resort` moves the copies whose folder changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sorter.errors import ModelLoadError, UsageError
from sorter.files.corrections import CORRECTION, Correction, CorrectionStore
from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.files.journal import FEATURES_NAME, STATE_DIR, Journal, Placement
from sorter.jobs.policy import Choices, Policy
from sorter.knobs import knobs
from sorter.learn import estimate as estimates
from sorter.learn.adapt import AdaptedHead, adapt_head
from sorter.learn.estimate import PrecisionEstimate
from sorter.learn.evidence import gather
from sorter.learn.memory import sharpened_for
from sorter.learn.recalibration import recalibrate, since_made
from sorter.learn.shift import FolderShift, TypicalityIndex, folder_shift
from sorter.model.bundle import Bundle
from sorter.model.memory import DEFAULT_ALPHA, DEFAULT_BETA, ExemplarMemory
from sorter.model.people import DETECTOR_NAME
from sorter.model.replay import Replay
from sorter.model.scoring import score
from sorter.names import HOLDING_FOLDERS

log = logging.getLogger(__name__)

WAIT_REASON = "your reviews suggest it; C if right (a re-sort moves such photos once your reviews can vouch for them)"


@dataclass(frozen=True)
class Rescored:
    """One sorted photo scored again: where it is, and where the model now puts it."""

    placement: Placement
    path: Path
    current: str
    suggested: str
    confidence: float
    probs: np.ndarray = field(repr=False)
    reviewed: bool = False
    reason: str | None = None
    spot_check: bool = False
    """Shown among the doubtful photos to check that confident answers are right."""
    fit: float = 1.0
    """How well it fits any category (see :mod:`sorter.learn.ood`)."""
    typical: float = 1.0
    """How typical of the training (and reviewed) photos it is (see :mod:`sorter.learn.shift`)."""
    guess: str = ""
    """The category it is likeliest to be, even where it is held back (a spot check asks about it)."""
    waits: bool = False
    """Held back, and moved to :attr:`suggested` only by the user (``C`` in the review), not by a
    re-sort: in a folder unlike the training photos too few reviews cannot vouch for it yet."""

    @property
    def changed(self) -> bool:
        return self.suggested != self.current


def with_user_memory(bundle: Bundle, labelled: Sequence[tuple[np.ndarray, str]]) -> ExemplarMemory | None:
    """The bundle's memory plus the user's reviewed photos (features and label) not yet in it.

    Labels the model does not know cannot vote (a retrain adds them as classes).
    """
    index = {c: i for i, c in enumerate(bundle.config.classes)}
    usable = [(f, index[label]) for f, label in labelled if label in index]
    base = bundle.memory
    if not usable:
        return base
    keys = np.stack([f for f, _ in usable]).astype(np.float32)
    labels = np.array([i for _, i in usable], dtype=np.int64)
    if base is None:
        return ExemplarMemory(keys, labels, DEFAULT_ALPHA, DEFAULT_BETA)
    return ExemplarMemory(
        np.concatenate([base.keys, keys]), np.concatenate([base.labels, labels]), base.alpha, base.beta
    )


@dataclass
class Rescoring:
    """What :func:`rescore` found."""

    photos: list[Rescored]
    """In the journal's order; :func:`sorter.jobs.review_queue.review_order` orders them for review."""
    features: np.ndarray = field(repr=False)
    """(len(photos), D): each photo's cached body features, row for row."""
    missing: int
    """Photos with no cached features (sorted by a version of Sorter that did not keep them, or
    with another model's body)."""
    policy: Policy
    """The policy that decided, its thresholds recalibrated on the user's reviewed photos."""
    calibrated_on: int = 0
    """How many reviewed photos updated the calibration (see :func:`recalibrate`)."""
    adapted: AdaptedHead | None = None
    """The head refitted to the reviewed photos that scored them (see :mod:`sorter.learn.adapt`),
    if the bundle has a feature replay and the refit kept its validation accuracy."""
    shift: FolderShift | None = None
    """How the folder compares with the training photos (None: the bundle keeps none of them)."""
    estimate: PrecisionEstimate | None = None
    """The precision the folders will have, estimated from the user's reviews, and the cut that
    keeps to the target (None: too few reviews, or a fixed threshold; see :mod:`sorter.learn.estimate`)."""


def rescore(
    output: Path,
    bundle: Bundle,
    store: CorrectionStore,
    policy: Policy | None = None,
    placements: list[Placement] | None = None,
    stated: PrecisionEstimate | None = None,
    estimating: bool = True,
) -> Rescoring:
    """Score every photo still in ``output`` again from its cached features, deciding folders
    with ``policy`` (default: the one the folder was sorted with, see :func:`sorted_with`),
    recalibrated on the photos the user reviewed there (see :func:`recalibrate`), the head first
    refitted to the reviewed photos (:func:`adapted_head`; unless the knob ``adapt`` is off).
    ``placements``: the folder's photos that are there, when the caller has just read them.
    Without ``estimating``, the precision is not estimated from the reviews (a second or more;
    see :mod:`sorter.learn.estimate`), and folders are decided by what the last re-sort
    ``stated`` instead, if it did (see :mod:`sorter.jobs.stated`).
    """
    if bundle.config.multi_label:
        raise UsageError("Re-sorting is for single-label models; this model gives several labels per photo.")
    tuned = knobs()
    output = output.expanduser().resolve()
    with Journal.open(output, create=False, lock=False) as journal:
        placed = placements if placements is not None else [p for p in journal.placements() if p.path.is_file()]
        if policy is None:
            policy = sorted_with(journal).policy(bundle.config)
    empty = np.zeros((0, 0), dtype=np.float32)
    recipe = bundle.feature_recipe
    features_path = output / STATE_DIR / FEATURES_NAME
    if not features_path.exists():
        return Rescoring([], empty, len(placed), policy)
    with FeatureCache.open(features_path) as cache:
        found = cache.get_many(recipe, [(p.sha256, CLEAN_VIEW) for p in placed])
        labelled = store.latest_per_photo(output)
        standing = store.standing_in(output)
        reviewed_ids = {c.placement_id for c in standing}
        reviewed_paths = {c.sorted_path for c in standing}
        extra = cache.get_many(recipe, [(c.sha256, CLEAN_VIEW) for c in labelled])
        kept_faces = cache.get_faces(DETECTOR_NAME, [p.sha256 for p in placed]) if bundle.config.people else {}
    user = _labelled_features(labelled, extra)
    memory = with_user_memory(bundle, user)
    known = [p for p in placed if (p.sha256, CLEAN_VIEW) in found]
    missing = len(placed) - len(known)
    if not known:
        return Rescoring([], empty, missing, policy, 0, adapted_head(bundle, user) if tuned.adapt else None)
    feats = np.stack([found[(p.sha256, CLEAN_VIEW)] for p in known])
    memory = _sharpened(memory, user, feats)
    # a photo sorted before faces were kept counts as showing none
    faces = np.array([kept_faces.get(p.sha256, 0.0) for p in known], dtype=np.float32) if kept_faces else None
    scored = score(bundle, feats, memory)
    index = _kept(bundle).index
    # the folder against the training photos alone, as the bundle's own head sees it
    evidence = gather(bundle.config, scored.probs, scored.fit, feats, faces, index)
    shift = folder_shift(evidence.untaught) if evidence.untaught is not None else None
    shifted = shift is not None and shift.shifted
    # in a folder unlike the training photos a handful of reviews bends the head the wrong way
    head = adapted_head(bundle, user) if tuned.adapt and (not shifted or len(user) >= tuned.adapt_after) else None
    if head is not None:
        scored = score(bundle, feats, memory, head)
    # in a shifted folder a few reviews do not yet say which photos are like them (sketches: ten
    # released photos that were 81 % right); from min_reviews on, the estimate keeps the promise
    teaching = user if not shifted or len(user) >= tuned.min_reviews else []
    if head is not None or teaching:
        evidence = gather(bundle.config, scored.probs, scored.fit, feats, faces, index, teaching)
    calibrated_on = 0
    if policy.target is not None:
        table, calibrated_on = recalibrate(bundle, labelled, extra, memory)
        if table is not None:
            policy = policy.recalibrated(table)
    policy = policy.under_shift(shifted)
    recent = since_made(bundle, labelled)
    estimate = stated
    if estimating and policy.target is not None and not bundle.config.multi_label:
        ids = {c.id for c in recent}
        honest = _labelled_features(recent, extra)
        learnt = _labelled_features([c for c in labelled if c.id not in ids], extra)
        pending = np.array(
            [
                not (p.id in reviewed_ids or p.path in reviewed_paths)
                and (policy.fit_threshold is None or f >= policy.fit_threshold)
                for p, f in zip(known, evidence.fit, strict=True)
            ],
            dtype=bool,
        )
        estimate = _estimate(bundle, honest, learnt, head is not None, policy.target, evidence.probs[pending], feats)
    if estimate is None:  # until the reviews can say how far the folder can be trusted
        mistakes = [(c.predicted, c.corrected) for c in recent if c.kind == CORRECTION]
        policy = policy.doubting(estimates.doubted_classes(mistakes, bundle.config.classes))
    policy = policy.kept_to(estimate)
    # in a folder unlike the training photos a few reviews' votes released atypical sketches from
    # _unsure at 100 % sure, 60 % right, ten reviews in (docs/PERFORMANCE.md): until min_reviews
    # the review offers them, and the re-sort leaves them where they are
    early = shifted and len(user) < tuned.min_reviews
    out = []
    for i, placement in enumerate(known):
        row, fit, typ = evidence.row(i)
        labels, reason = policy.decide(row, fit, typ)
        label = labels[0]
        reviewed = placement.id in reviewed_ids or placement.path in reviewed_paths
        held = placement.path.parent.name in HOLDING_FOLDERS
        waits = early and held and not reviewed and label not in HOLDING_FOLDERS
        out.append(
            Rescored(
                placement=placement,
                path=placement.path,
                current=placement.path.parent.name,
                suggested=label,
                confidence=float(row.max()),
                probs=row,
                reviewed=reviewed,
                reason=WAIT_REASON if waits else reason,
                fit=float(fit),
                typical=float(typ),
                guess=bundle.config.classes[int(np.argmax(row))],
                waits=waits,
            )
        )
    return Rescoring(out, feats, missing, policy, calibrated_on, head, shift, estimate)


def _estimate(
    bundle: Bundle,
    honest: Sequence[tuple[np.ndarray, str]],
    learnt: Sequence[tuple[np.ndarray, str]],
    adapted: bool,
    target: float,
    candidates: np.ndarray,
    folder: np.ndarray,
) -> PrecisionEstimate | None:
    """The precision estimate from the reviews the bundle did not learn from (``honest``; it did
    learn from ``learnt``, the folder's reviews made before it): each scored by a model fitted,
    as the re-score's is, to the *other* reviews (``adapted``: the head refitted to them, else the
    bundle's own; in both the memory holds them, narrowed to ``folder``'s spread), in
    ``folds`` parts.
    The reviews are weighted to the confidence bands of the ``candidates`` they stand for."""
    index = {c: i for i, c in enumerate(bundle.config.classes)}
    labels = np.array([index.get(label, -1) for _, label in honest], dtype=np.int64)
    tuned = knobs()
    if int((labels >= 0).sum()) < tuned.min_reviews:
        return None
    feats = np.stack([f for f, _ in honest]).astype(np.float32)
    learnt_bytes = b"".join(f.tobytes() + label.encode() for f, label in learnt)
    made = f"{bundle.path}:{bundle.path.stat().st_mtime_ns if bundle.path.exists() else 0}".encode()
    key = hashlib.sha256(made + feats.tobytes() + labels.tobytes() + learnt_bytes + bytes([adapted])).hexdigest()
    folds = np.arange(len(labels)) % tuned.folds
    probs = _honest_cache.get(key)
    if probs is None:
        probs = np.zeros((len(labels), len(bundle.config.classes)), dtype=np.float32)
        for k in range(min(tuned.folds, len(labels))):
            test = folds == k
            rest = [*learnt, *(honest[int(i)] for i in np.flatnonzero(~test))]
            head = adapted_head(bundle, rest, remember=False) if adapted else None
            memory = _sharpened(with_user_memory(bundle, rest), rest, folder)
            probs[test] = score(bundle, feats[test], memory, head).probs
        _honest_cache.clear()
        _honest_cache[key] = probs
    weights = estimates.stratified_weights(probs.max(axis=1), candidates.max(axis=1))
    return estimates.estimate(target, probs, labels, candidates, weights=weights)


def _sharpened(
    memory: ExemplarMemory | None, user: Sequence[tuple[np.ndarray, str]], folder: np.ndarray
) -> ExemplarMemory | None:
    """``memory`` narrowed so that the ``user``'s reviewed photos vote only for photos of
    ``folder`` closer to them than its photos usually are (see :func:`sharpened_for`)."""
    if memory is None or not user:
        return memory
    return sharpened_for(memory, np.stack([f for f, _ in user]), folder)


_honest_cache: dict[str, np.ndarray] = {}
"""The last honest scores, by reviews: the review's rebuild after a re-sort reuses them."""


def sorted_with(journal: Journal) -> Choices:
    """The choices the folder was last sorted with: the review and re-sorting decide as it did.
    A folder sorted before runs kept them is taken as sorted with the defaults."""
    run = journal.last_sorting_run()
    return (Choices.from_json(run.decision) if run is not None else None) or Choices()


def adapted_head(
    bundle: Bundle, labelled: Sequence[tuple[np.ndarray, str]], remember: bool = True
) -> AdaptedHead | None:
    """The bundle's head refitted to the user's reviewed photos (features and label) beside its
    feature replay; None without a replay, without reviewed photos of its classes, or when the
    refit would cost validation accuracy (see :func:`~sorter.learn.adapt.adapt_head`).
    ``remember``: keep it as the last refit (the estimate's refits to part of the reviews are not)."""
    if not labelled or bundle.config.grouping is not None or bundle.config.multi_label:
        return None
    replay = _kept(bundle).replay
    if replay is None:
        return None
    index = {c: i for i, c in enumerate(bundle.config.classes)}
    features = np.stack([f for f, _ in labelled]).astype(np.float32)
    labels = np.array([index.get(label, -1) for _, label in labelled], dtype=np.int64)
    # the same reviews give the same head: a re-sort and the review's rebuild after it refit once
    reviews = hashlib.sha256(features.tobytes() + labels.tobytes()).hexdigest()
    key = (str(bundle.path), bundle.path.stat().st_mtime_ns if bundle.path.exists() else 0, reviews)
    if key in _adapted:
        return _adapted[key]
    head = adapt_head(bundle.head, replay, features, labels)
    if remember:
        _adapted.clear()
        _adapted[key] = head
    return head


_adapted: dict[tuple[str, int, str], AdaptedHead | None] = {}
"""The last refit, by bundle and reviewed photos (the head is a pure function of them)."""


@dataclass(frozen=True)
class _Kept:
    """What a re-score needs of the bundle's replay: the rows (to adapt the head) and the
    typicality index built from them (to tell a shifted folder)."""

    replay: Replay | None = None
    index: TypicalityIndex | None = None


_kept_by_file: dict[tuple[str, int], _Kept] = {}


def _kept(bundle: Bundle) -> _Kept:
    """Read and indexed once per bundle file: the review re-scores after every write."""
    if bundle.config.replay is None:
        return _Kept()
    try:
        key = (str(bundle.path), bundle.path.stat().st_mtime_ns)
    except OSError:
        return _Kept()  # the model file is gone since it was loaded: score without adapting
    if key not in _kept_by_file:
        _kept_by_file.clear()
        try:
            replay = bundle.read_replay()
        except ModelLoadError as exc:  # a retrain refuses it with this sentence; a re-score goes on
            log.warning("re-scoring without the feature replay: %s", exc)
            replay = None
        index = TypicalityIndex.from_replay(replay) if replay is not None and not bundle.config.multi_label else None
        _kept_by_file[key] = _Kept(replay, index)
    return _kept_by_file[key]


def _labelled_features(
    labelled: Sequence[Correction], found: dict[tuple[str, int], np.ndarray]
) -> list[tuple[np.ndarray, str]]:
    return [(found[(c.sha256, CLEAN_VIEW)], c.label) for c in labelled if (c.sha256, CLEAN_VIEW) in found]
