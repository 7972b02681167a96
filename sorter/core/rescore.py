"""Re-score a sorted folder from the features kept at sort time, and re-sort what was not reviewed.

After a correction the user should see its effect at once, not after a retrain: the photos of the
run are scored again from their cached body features (no photo is decoded), with the user's
reviewed photos added to the model's exemplar memory. :func:`resort` then moves the copies whose
folder changed, in a journaled run of its own that ``sorter undo`` reverts; a photo the user
corrected or confirmed is never moved.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sorter.core.corrections import Correction, CorrectionStore
from sorter.core.fileops import place
from sorter.core.journal import STATE_DIR, Journal, Op
from sorter.core.recalibration import recalibrate
from sorter.core.review_queue import SPOT_EVERY, review_order
from sorter.core.sorting import FEATURES_NAME, Policy, policy_for
from sorter.errors import SorterError, UsageError, describe_os_error
from sorter.learn.adapt import AdaptedHead, adapt_head
from sorter.learn.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.learn.memory import DEFAULT_ALPHA, DEFAULT_BETA, ExemplarMemory, score_and_fit
from sorter.learn.replay import Replay
from sorter.model.bundle import Bundle
from sorter.model.pipeline import group_matrix

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rescored:
    """One sorted photo scored again: where it is, and where the model now puts it."""

    op: Op
    path: Path
    current: str
    suggested: str
    confidence: float
    probs: np.ndarray = field(repr=False)
    reviewed: bool = False
    reason: str | None = None
    spot_check: bool = False
    """Shown among the doubtful photos to check that confident answers are right."""

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


def score(bundle: Bundle, features: np.ndarray, memory: ExemplarMemory | None) -> np.ndarray:
    """Folder probabilities for cached features, as the bundle's network would give them."""
    return score_with_fit(bundle, features, memory)[0]


def score_with_fit(
    bundle: Bundle, features: np.ndarray, memory: ExemplarMemory | None, head: AdaptedHead | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Folder probabilities and each photo's fit to any category, from cached features (with
    ``head`` in place of the bundle's own, when adapted to the user's photos)."""
    group = group_matrix(bundle.config)
    anchors = bundle.ood_anchors
    return score_and_fit(
        features,
        head.weight if head is not None else bundle.state["head.weight"].float().numpy(),
        head.bias if head is not None else bundle.state["head.bias"].float().numpy(),
        group=None if group is None else group.numpy(),
        multi_label=bundle.config.multi_label,
        memory=memory,
        temperature=bundle.config.temperature,
        anchors=None if anchors is None else anchors.numpy(),
    )


@dataclass
class Rescoring:
    """What :func:`rescore` found."""

    photos: list[Rescored]
    """Review order: see :func:`review_order`."""
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


def rescore(
    output: Path,
    bundle: Bundle,
    store: CorrectionStore,
    policy: Policy | None = None,
    spot_every: int = SPOT_EVERY,
    adapt: bool = True,
) -> Rescoring:
    """Score every photo still in ``output`` again from its cached features, deciding folders
    with ``policy`` (default: the bundle's own, see :func:`~sorter.core.sorting.policy_for`),
    recalibrated on the photos the user reviewed there (see :func:`recalibrate`), in review
    order with one spot check in ``spot_every`` (0: none; see :func:`review_order`). With
    ``adapt``, the head is first refitted to the reviewed photos (:func:`adapted_head`).
    """
    if bundle.config.multi_label:
        raise UsageError("Re-sorting is for single-label models; this model gives several labels per photo.")
    output = output.expanduser().resolve()
    policy = policy or policy_for(bundle.config)
    with Journal.open(output, create=False, lock=False) as journal:
        ops = [op for op in journal.live_ops() if op.destination.is_file()]
    recipe = bundle.feature_recipe
    features_path = output / STATE_DIR / FEATURES_NAME
    if not features_path.exists():
        return Rescoring([], len(ops), policy)
    with FeatureCache.open(features_path) as cache:
        found = cache.get_many(recipe, [(op.sha256, CLEAN_VIEW) for op in ops])
        labelled = store.latest_per_photo()
        reviewed_shas = {c.sha256 for c in labelled}
        reviewed_paths = {c.sorted_path for c in labelled}
        extra = cache.get_many(recipe, [(c.sha256, CLEAN_VIEW) for c in labelled])
    user = _labelled_features(labelled, extra)
    memory = with_user_memory(bundle, user)
    policy, calibrated_on = recalibrate(bundle, policy, labelled, extra, memory)
    head = adapted_head(bundle, user) if adapt else None
    known = [op for op in ops if (op.sha256, CLEAN_VIEW) in found]
    missing = len(ops) - len(known)
    if not known:
        return Rescoring([], missing, policy, calibrated_on, head)
    feats = np.stack([found[(op.sha256, CLEAN_VIEW)] for op in known])
    probs, fits = score_with_fit(bundle, feats, memory, head)
    out = []
    for op, row, fit in zip(known, probs, fits, strict=True):
        labels, reason = policy.decide(row, float(fit))
        label = labels[0]
        out.append(
            Rescored(
                op=op,
                path=op.destination,
                current=op.destination.parent.name,
                suggested=label,
                confidence=float(row.max()),
                probs=row,
                reviewed=op.sha256 in reviewed_shas or op.destination in reviewed_paths,
                reason=reason,
            )
        )
    # out is in the order of known, the rows of feats
    return Rescoring(review_order(out, feats, spot_every=spot_every), missing, policy, calibrated_on, head)


def adapted_head(bundle: Bundle, labelled: Sequence[tuple[np.ndarray, str]]) -> AdaptedHead | None:
    """The bundle's head refitted to the user's reviewed photos (features and label) beside its
    feature replay; None without a replay, without reviewed photos of its classes, or when the
    refit would cost validation accuracy (see :func:`~sorter.learn.adapt.adapt_head`)."""
    if not labelled or bundle.config.grouping is not None or bundle.config.multi_label:
        return None
    replay = _replay(bundle)
    if replay is None:
        return None
    index = {c: i for i, c in enumerate(bundle.config.classes)}
    features = np.stack([f for f, _ in labelled]).astype(np.float32)
    labels = np.array([index.get(label, -1) for _, label in labelled], dtype=np.int64)
    return adapt_head(
        bundle.state["head.weight"].float().numpy(), bundle.state["head.bias"].float().numpy(), replay, features, labels
    )


_replays: dict[tuple[str, int], Replay | None] = {}


def _replay(bundle: Bundle) -> Replay | None:
    """The bundle's replay, read once per bundle file (the review re-scores after every write)."""
    if bundle.config.replay is None:
        return None
    try:
        key = (str(bundle.path), bundle.path.stat().st_mtime_ns)
    except OSError:
        return None  # the model file is gone since it was loaded: score without adapting
    if key not in _replays:
        _replays.clear()
        _replays[key] = bundle.read_replay()
    return _replays[key]


def _labelled_features(
    labelled: Sequence[Correction], found: dict[tuple[str, int], np.ndarray]
) -> list[tuple[np.ndarray, str]]:
    return [(found[(c.sha256, CLEAN_VIEW)], c.label) for c in labelled if (c.sha256, CLEAN_VIEW) in found]


@dataclass
class ResortReport:
    run_id: int | None
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    unchanged: int = 0
    reviewed: int = 0
    without_features: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    """The confidence each class needed, after recalibration on the reviewed photos."""
    calibrated_on: int = 0
    adapted_on: int = 0
    """How many reviewed photos the head was refitted to (0: the bundle's head decided)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thresholds": self.thresholds,
            "calibrated_on_reviewed": self.calibrated_on,
            "head_adapted_on_reviewed": self.adapted_on,
            "moved": [{"from": str(a), "to": str(b)} for a, b in self.moved],
            "unchanged": self.unchanged,
            "reviewed_kept": self.reviewed,
            "without_features": self.without_features,
            "failed": [{"path": str(p), "reason": r} for p, r in self.failed],
        }


def resort(output: Path, bundle: Bundle, store: CorrectionStore, policy: Policy | None = None) -> ResortReport:
    """Move every photo not reviewed whose folder the current model (and the user's reviewed
    photos) now chooses differently; one journaled run that ``undo`` reverts.

    Raises:
        SorterError: nothing was sorted there, or the folder is in use by another run.
    """
    output = output.expanduser().resolve()
    found = rescore(output, bundle, store, policy)
    report = ResortReport(
        None,
        without_features=found.missing,
        thresholds={c: round(float(t), 2) for c, t in zip(found.policy.classes, found.policy.thresholds, strict=True)},
        calibrated_on=found.calibrated_on,
        adapted_on=found.adapted.user_rows if found.adapted is not None else 0,
    )
    todo = []
    for r in found.photos:
        if r.reviewed:
            report.reviewed += 1
        elif r.changed:
            todo.append(r)
        else:
            report.unchanged += 1
    if not todo:
        return report
    with Journal.open(output) as journal:
        run_id = journal.start_run(output, "resort", bundle.name, "features")
        report.run_id = run_id
        try:
            for r in todo:
                current = journal.op_for_destination(r.path)
                if current is None or not r.path.is_file():
                    continue  # moved since it was scored
                try:
                    moved = place(r.path, output / r.suggested, move=True)
                except OSError as exc:
                    report.failed.append((r.path, describe_os_error(exc)))
                    continue
                journal.record_op(
                    run_id,
                    Op(
                        0,
                        run_id,
                        r.path,
                        moved.destination,
                        current.sha256,
                        current.size,
                        r.suggested,
                        current.confidence,
                        "moved",
                    ),
                )
                journal.relocate_op(current.id, moved.destination, r.suggested, r.confidence)
                report.moved.append((r.path, moved.destination))
        finally:
            journal.finish_run(run_id, "finished")
    if report.failed and not report.moved:
        raise SorterError(f"No photo could be re-sorted: {report.failed[0][1]}")
    return report
