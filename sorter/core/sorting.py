"""The sorting job: a generator of one event per photo, shared by the CLI and the GUI.

Plan, then act: each photo is classified, its folder decided from the threshold, and only then
copied (or moved). The consumer can stop between photos by closing the generator; the run is then
journaled as cancelled and the same call later resumes it.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections import Counter, deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sorter.core.classifier import Classifier, top_k
from sorter.core.corrections import Correction
from sorter.core.fileops import Placed, Staged, candidate_names, discard, place, stage, sweep_temporaries
from sorter.core.images import Candidate, scan
from sorter.core.journal import STATE_DIR, Journal
from sorter.errors import DestinationError, UsageError, describe_os_error
from sorter.learn.calibration import DEFAULT_PRECISION, Calibration
from sorter.learn.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.model.bundle import BundleConfig
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER

Status = Literal["sorted", "unsure", "skipped", "failed", "planned"]

_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


log = logging.getLogger(__name__)
MAX_WRITES_IN_FLIGHT = 32
FEATURES_NAME = "features.sqlite"
"""Beside the journal: each sorted photo's body features, keyed by content, for re-scoring."""
FEATURE_FLUSH = 64
COPY_THREADS = 4
"""Copies written and synced at once; four keep the disk busy while the CPU decodes."""


@dataclass
class _Pending:
    candidate: Candidate
    probs: np.ndarray
    labels: tuple[str, ...]
    top: tuple[tuple[str, float], ...]
    confidence: float
    status: Status
    future: Future[list[Placed]]
    features: np.ndarray | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SortOptions:
    """What to sort where.

    Args:
        source: folder of photos (searched recursively).
        output: folder that receives ``<label>/`` sub-folders.
        move: move instead of copy (originals are never touched otherwise).
        threshold: confidence below which a photo goes to ``_unsure``, for every class; None uses
            the model's calibrated per-class thresholds for ``precision``.
        precision: the share of sorted photos that should be right (calibrated bundles).
        other_folder: photos that fit none of the categories go to ``_other``, not ``_unsure``.
        dry_run: decide everything, write nothing.
        reviewed: the photos the user corrected or confirmed (the corrections store's latest
            word on each); those reviewed since the model was made update its calibration.
    """

    source: Path
    output: Path
    move: bool = False
    threshold: float | None = None
    dry_run: bool = False
    precision: float | None = None
    other_folder: bool = False
    reviewed: tuple[Correction, ...] = ()


@dataclass(frozen=True)
class SortEvent:
    """What happened to one photo. ``index`` counts from 1 up to ``total``."""

    index: int
    total: int
    source: Path
    status: Status
    labels: tuple[str, ...] = ()
    confidence: float = 0.0
    top: tuple[tuple[str, float], ...] = ()
    destinations: tuple[Path, ...] = ()
    duplicate: bool = False
    error: str | None = None
    elapsed: float = 0.0
    reason: str | None = None
    """Why a photo was not sorted into a category (unsure, or none of the categories)."""


@dataclass
class SortSummary:
    run_id: int | None
    source: Path
    output: Path
    device: str
    model: str
    dry_run: bool
    backend: str = "torch"
    total: int = 0
    sorted: int = 0
    unsure: int = 0
    skipped: int = 0
    failed: int = 0
    per_label: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    not_sorted: list[tuple[Path, str]] = field(default_factory=list)
    """Photos left out of the categories, with the reason."""
    notes: list[str] = field(default_factory=list)

    @property
    def classified(self) -> int:
        return self.sorted + self.unsure

    @property
    def images_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    def count(self, event: SortEvent) -> None:
        if event.status == "failed":
            self.failed += 1
            self.failures.append((event.source, event.error or "unknown error"))
        elif event.status == "skipped":
            self.skipped += 1
        elif event.status == "unsure" or (
            event.status == "planned" and event.labels in ((UNSURE_FOLDER,), (OTHER_FOLDER,))
        ):
            self.unsure += 1
            if event.reason:
                self.not_sorted.append((event.source, event.reason))
        else:
            self.sorted += 1
        if event.status in ("sorted", "unsure", "planned"):
            for label in event.labels:
                self.per_label[label] += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": str(self.source),
            "output": str(self.output),
            "model": self.model,
            "dry_run": self.dry_run,
            "total": self.total,
            "sorted": self.sorted,
            "unsure": self.unsure,
            "skipped": self.skipped,
            "failed": self.failed,
            "per_label": dict(sorted(self.per_label.items())),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "device": self.device,
            "backend": self.backend,
            "failures": [{"path": str(p), "reason": r} for p, r in self.failures],
            "not_sorted": [{"path": str(p), "reason": r} for p, r in self.not_sorted],
            "notes": list(self.notes),
        }


def default_output(source: Path) -> Path:
    """A sibling folder ``<source> (sorted)``: never inside the photos being sorted."""
    source = source.resolve()
    return source.with_name(f"{source.name} (sorted)")


NONE_OF_THESE = "looks like none of the categories"


@dataclass(frozen=True)
class Policy:
    """When a photo is sorted, from the bundle's statistics and the user's choices.

    Args:
        thresholds: confidence each class needs (per class: calibrated for a precision).
        fit_threshold: the fit below which a photo is none of the categories; None when the
            bundle has no such statistics.
        other_folder: where those photos go (``_unsure`` or ``_other``).
        target: the precision the thresholds were calibrated for; None when they are fixed.
    """

    classes: tuple[str, ...]
    thresholds: np.ndarray
    multi_label: bool
    fit_threshold: float | None = None
    other_folder: str = UNSURE_FOLDER
    target: float | None = None

    def recalibrated(self, calibration: Calibration) -> Policy:
        """The same choices with thresholds from ``calibration`` (updated by the user's reviews);
        a fixed threshold stays fixed."""
        if self.target is None:
            return self
        return replace(self, thresholds=calibration.thresholds(self.target))

    def decide(self, probs: np.ndarray, fit: float = 1.0) -> tuple[tuple[str, ...], str | None]:
        """The folder(s) for one photo and, when it is not sorted, why."""
        if self.fit_threshold is not None and fit < self.fit_threshold:
            return (self.other_folder,), NONE_OF_THESE
        if self.multi_label:
            chosen = tuple(self.classes[i] for i in np.flatnonzero(probs >= self.thresholds))
            return (chosen, None) if chosen else ((UNSURE_FOLDER,), "no category is likely enough")
        order = np.argsort(-probs)
        best = int(order[0])
        if probs[best] >= self.thresholds[best]:
            return (self.classes[best],), None
        if len(order) > 1:
            second = int(order[1])
            return (UNSURE_FOLDER,), (
                f"between {self.classes[best]} ({probs[best]:.0%}) and {self.classes[second]} ({probs[second]:.0%})"
            )
        return (UNSURE_FOLDER,), f"not sure enough ({probs[best]:.0%})"


def policy_for(
    config: BundleConfig,
    *,
    threshold: float | None = None,
    precision: float | None = None,
    other_folder: bool = False,
) -> Policy:
    """A fixed ``threshold`` applies to every class; otherwise a calibrated bundle gives each class
    the threshold that reached ``precision`` on its validation photos, and an older bundle uses its
    single default threshold."""
    k = len(config.classes)
    table = config.calibration_table()
    target = None
    if threshold is not None:
        thresholds = np.full(k, threshold, dtype=np.float32)
    elif table is not None and not config.multi_label:
        target = DEFAULT_PRECISION if precision is None else precision
        thresholds = table.thresholds(target)
    else:
        thresholds = np.full(k, config.threshold, dtype=np.float32)
    fit = config.ood.threshold if config.ood is not None else None
    folder = OTHER_FOLDER if other_folder else UNSURE_FOLDER
    return Policy(config.classes, thresholds, config.multi_label, fit, folder, target)


def _recalibrated(classifier: Classifier, policy: Policy, reviewed: tuple[Correction, ...]) -> tuple[Policy, int]:
    """The policy recalibrated on the reviewed photos this model was not trained on, scored from
    the copies the corrections store keeps (a photo no longer readable is left out)."""
    from sorter.core.recalibration import recalibrate, since_made

    recent = since_made(classifier.bundle, reviewed)
    if not recent or classifier.config.calibration is None:
        return policy, 0
    features = {
        (p.item.sha256, CLEAN_VIEW): p.features
        for p in classifier.classify(recent, lambda c: c.stored)
        if p.features is not None
    }
    return recalibrate(classifier.bundle, policy, recent, features, classifier.bundle.memory, user_rows_in_memory=False)


def _check_folders(options: SortOptions) -> tuple[Path, Path]:
    source = options.source.expanduser()
    if not source.is_dir():
        raise UsageError(f"The folder '{source}' does not exist or is not a folder.")
    source = source.resolve()
    output = options.output.expanduser().resolve()
    if output == source:
        raise UsageError("The output folder must differ from the folder being sorted.")
    if source.is_relative_to(output) and not source.is_relative_to(output / UNSURE_FOLDER):
        raise UsageError("The output folder cannot contain the folder being sorted.")
    return source, output


def sort_folder(options: SortOptions, classifier: Classifier) -> Generator[SortEvent, None, SortSummary]:
    """Sort ``options.source`` into ``options.output``, yielding one :class:`SortEvent` per photo.

    Returns (as the generator's value) a :class:`SortSummary`.

    Raises:
        UsageError: the folders are unusable.
        DestinationError: the output cannot be written (locked, read-only, disk full); photos
            placed until then stay placed and journaled, and running again resumes.
    """
    source, output = _check_folders(options)
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise UsageError("The confidence threshold must be between 0 and 1.")
    if options.precision is not None and not 0.5 <= options.precision < 1.0:
        raise UsageError("The precision must be at least 0.5 and below 1 (for example 0.95).")
    policy = policy_for(
        classifier.config, threshold=options.threshold, precision=options.precision, other_folder=options.other_folder
    )
    summary = SortSummary(
        run_id=None,
        source=source,
        output=output,
        device=str(classifier.device),
        model=classifier.name,
        dry_run=options.dry_run,
        backend=classifier.backend,
    )
    note = classifier.bundle.lacks_statistics
    if note is not None:
        summary.notes.append(note)
        log.info("%s", note)  # the CLI and the GUI show the summary's notes once, at the end
    if options.reviewed and options.threshold is None:
        policy, calibrated_on = _recalibrated(classifier, policy, options.reviewed)
        if calibrated_on:
            summary.notes.append(
                f"confidence recalibrated on {calibrated_on} photos you reviewed since this model was made"
            )
    started = time.perf_counter()
    journal: Journal | None = None
    if not options.dry_run:
        journal = Journal.open(output)
    elif (output / STATE_DIR).exists():
        journal = Journal.open(output, create=False, lock=False)
    run_status = "cancelled"
    # Copies are written and synced in parallel under unique temporary names (syncing is mostly
    # waiting on the disk); one writer thread, as in Picard, then gives each its final name in
    # input order, so two copies never race for one name and collisions number deterministically.
    # for one destination name.
    writer = ThreadPoolExecutor(1, thread_name_prefix="sorter-write")
    copier = ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="sorter-copy")
    pending: deque[_Pending] = deque()
    features: FeatureCache | None = None
    unsaved: dict[tuple[str, int], np.ndarray] = {}

    def keep_features(sha: str, vector: np.ndarray | None) -> None:
        if features is None or vector is None:
            return
        unsaved[(sha, CLEAN_VIEW)] = vector
        if len(unsaved) >= FEATURE_FLUSH:
            features.put_many(classifier.feature_recipe, unsaved)
            unsaved.clear()

    index = 0

    def event(c: Candidate, status: Status, **kw: Any) -> SortEvent:
        """Number and count one photo's outcome."""
        nonlocal index
        index += 1
        ev = SortEvent(index, summary.total, c.path, status, elapsed=time.perf_counter() - started, **kw)
        summary.count(ev)
        return ev

    def finish(p: _Pending) -> SortEvent:
        """Journal one photo once its copy has landed, and describe it."""
        assert journal is not None and summary.run_id is not None
        c = p.candidate
        try:
            placed = p.future.result()
        except OSError as exc:
            if _is_destination_fault(exc, c.path):
                raise DestinationError(
                    f"Sorting stopped: {describe_os_error(exc)} "
                    "Photos already sorted are safe; free space or fix the folder, then run again."
                ) from exc
            journal.record_source(summary.run_id, c.path, c.size, c.mtime_ns, [], failed=describe_os_error(exc))
            return event(c, "failed", error=describe_os_error(exc))
        ops = [
            {
                "destination": pl.destination,
                "sha256": pl.sha256,
                "size": pl.size,
                "label": label,
                "confidence": _label_prob(p.probs, classifier.classes, label),
                "status": pl.outcome,
            }
            for label, pl in zip(p.labels, placed, strict=True)
        ]
        journal.record_source(summary.run_id, c.path, c.size, c.mtime_ns, ops)
        if placed:
            keep_features(placed[0].sha256, p.features)
        duplicate = all(pl.outcome == "duplicate" for pl in placed)
        return event(
            c,
            "skipped" if duplicate else p.status,
            labels=p.labels,
            confidence=p.confidence,
            top=p.top,
            destinations=tuple(pl.destination for pl in placed),
            duplicate=duplicate,
            reason=p.reason,
        )

    try:
        candidates = list(scan(source, exclude=(output,)))
        summary.total = len(candidates)
        if journal is not None and not options.dry_run:
            sweep_temporaries(output)
            features = _open_features(output)
            summary.run_id = journal.start_run(
                source, "move" if options.move else "copy", str(classifier.bundle.path), str(classifier.device)
            )

        todo: list[Candidate] = []
        for c in candidates:
            if c.problem is not None:
                yield event(c, "failed", error=c.problem)
            elif journal is not None and journal.is_done(c.path, c.size, c.mtime_ns):
                yield event(c, "skipped")
            else:
                todo.append(c)

        for pred in classifier.classify(todo, lambda c: c.path):
            c = pred.item
            if pred.probs is None:
                if journal is not None and summary.run_id is not None:
                    journal.record_source(summary.run_id, c.path, c.size, c.mtime_ns, [], failed=pred.error)
                yield event(c, "failed", error=pred.error)
                continue
            labels, reason = policy.decide(pred.probs, pred.fit)
            top = tuple(top_k(pred.probs, classifier.classes))
            confidence = float(pred.probs.max())
            status: Status = "unsure" if labels in ((UNSURE_FOLDER,), (OTHER_FOLDER,)) else "sorted"
            if options.dry_run:
                planned = tuple(_planned_destination(output / label, c.path.name) for label in labels)
                yield event(
                    c, "planned", labels=labels, confidence=confidence, top=top, destinations=planned, reason=reason
                )
                continue
            assert journal is not None and summary.run_id is not None
            if options.move:
                future = writer.submit(_place_all, c.path, output, labels, move=True)
            else:
                staged = [copier.submit(stage, c.path, output / label) for label in labels]
                future = writer.submit(_name_all, c.path, output, labels, staged)
            pending.append(_Pending(c, pred.probs, labels, top, confidence, status, future, pred.features, reason))
            while pending and (pending[0].future.done() or len(pending) >= MAX_WRITES_IN_FLIGHT):
                yield finish(pending.popleft())
        while pending:
            yield finish(pending.popleft())
        run_status = "finished"
    finally:
        # Cancelled or failed: copies already in flight still land and are journaled, so a
        # resumed run skips them; nothing is left half-written.
        while pending:
            try:
                finish(pending.popleft())
            except Exception:  # the first error is already propagating; journal what we can
                continue
        writer.shutdown(wait=True)
        copier.shutdown(wait=True)
        if features is not None:
            if unsaved:
                features.put_many(classifier.feature_recipe, unsaved)
            features.close()
        summary.seconds = time.perf_counter() - started
        if journal is not None:
            try:
                if summary.run_id is not None:
                    journal.finish_run(summary.run_id, run_status)
            except DestinationError:
                if run_status == "finished":
                    raise  # every photo is placed, but the user must hear that the journal failed
                # the user already has the one sentence that stopped the run; resuming does not need the mark
                log.info("could not mark the interrupted run in the journal", exc_info=True)
            finally:
                journal.close()
    return summary


def _open_features(output: Path) -> FeatureCache | None:
    """The run's feature store; without it sorting still works, only re-scoring is slower."""
    try:
        return FeatureCache.open(output / STATE_DIR / FEATURES_NAME)
    except (OSError, sqlite3.Error) as exc:
        log.warning("sorting without keeping features: %s", exc)
        return None


def _label_prob(probs: np.ndarray, classes: tuple[str, ...], label: str) -> float:
    return float(probs[classes.index(label)]) if label in classes else float(probs.max())


def _place_all(source: Path, output: Path, labels: tuple[str, ...], *, move: bool) -> list[Placed]:
    """Copy into every label's folder; when moving, the last placement is the move."""
    placed = []
    for i, label in enumerate(labels):
        last = i == len(labels) - 1
        placed.append(place(source, output / label, move=move and last))
    return placed


def _name_all(source: Path, output: Path, labels: tuple[str, ...], staged: list[Future[Staged]]) -> list[Placed]:
    """Give each staged copy its final name, in order; copies not placed are removed."""
    placed: list[Placed] = []
    try:
        for label, future in zip(labels, staged, strict=True):
            placed.append(place(source, output / label, staged=future.result()))
    finally:
        for future in staged[len(placed) + 1 :]:
            try:
                discard(future.result())
            except OSError:
                continue
    return placed


def _planned_destination(folder: Path, name: str) -> Path:
    for candidate in candidate_names(name):
        if not os.path.lexists(folder / candidate):
            return folder / candidate
    return folder / name


def _is_destination_fault(exc: OSError, source: Path) -> bool:
    """Disk full or read-only output stops the run; a bad source file only skips that photo."""
    if exc.errno in _FATAL_ERRNOS:
        return True
    name = os.fsdecode(exc.filename) if exc.filename is not None else None
    return name is not None and Path(name) != source
