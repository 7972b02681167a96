"""The sorting job: a generator of one event per photo, shared by the CLI and the GUI.

Plan, then act: each photo is classified, its folder decided from the threshold, and only then
copied (or moved). The consumer can stop between photos by closing the generator; the run is then
journaled as cancelled and the same call later resumes it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sorter.errors import DestinationError, ModelLoadError, UsageError, describe_os_error
from sorter.files.corrections import Correction
from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.files.fileops import planned_destination, stage, sweep_temporaries
from sorter.files.images import Candidate, scan
from sorter.files.journal import FEATURES_NAME, STATE_DIR, Journal, Placement, output_holding
from sorter.files.ledger import FOUND
from sorter.jobs.events import SortEvent, SortSummary, Status
from sorter.jobs.placing import Written, write_photo
from sorter.jobs.policy import Choices, Policy
from sorter.learn.evidence import weighed_one_by_one
from sorter.learn.recalibration import recalibrate, since_made
from sorter.learn.shift import UNLIKE_REASON, ShiftWatch, TypicalityIndex
from sorter.model.classifier import Classifier, top_k
from sorter.model.people import DETECTOR_NAME
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER
from sorter.usertypes import RunMode, RunStatus

log = logging.getLogger(__name__)
MAX_WRITES_IN_FLIGHT = 32
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
    future: Future[Written]
    features: np.ndarray | None = None
    reason: str | None = None
    face: float | None = None
    look: int | None = None


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
        reviewed: the photos of the model's family the user corrected or confirmed (the
            corrections store's latest word on each, :func:`sorter.jobs.reviews.reviews_for_sorting`);
            those reviewed since the model was made update its calibration.
        kept: photos of the output the user reviewed: sorting a folder of the output leaves
            them where the user put them.
    """

    source: Path
    output: Path
    move: bool = False
    threshold: float | None = None
    dry_run: bool = False
    precision: float | None = None
    other_folder: bool = False
    reviewed: tuple[Correction, ...] = ()
    kept: tuple[Path, ...] = ()

    @property
    def choices(self) -> Choices:
        """The decision choices, as the journal keeps them with the run."""
        return Choices(self.threshold, self.precision, self.other_folder)


def _recalibrated(classifier: Classifier, policy: Policy, reviewed: tuple[Correction, ...]) -> tuple[Policy, int]:
    """The policy recalibrated on the reviewed photos this model was not trained on, scored from
    the copies the corrections store keeps (a photo no longer readable is left out)."""
    recent = since_made(classifier.bundle, reviewed)
    if not recent or classifier.config.calibration is None or policy.target is None:
        return policy, 0
    features = {
        (p.item.sha256, CLEAN_VIEW): p.features
        for p in classifier.classify(recent, lambda c: c.stored)
        if p.features is not None
    }
    table, count = recalibrate(classifier.bundle, recent, features, classifier.bundle.memory, user_rows_in_memory=False)
    return (policy.recalibrated(table), count) if table is not None else (policy, 0)


def _typicality_index(classifier: Classifier, notes: list[str]) -> TypicalityIndex | None:
    """From the bundle's feature replay; a bundle without one (the general model, whose photos
    are not at hand) cannot tell a shifted folder, and says what it lacks in its own note. A
    damaged replay costs only the check, with a note: the photos are sorted all the same."""
    if classifier.config.multi_label:
        return None
    try:
        replay = classifier.bundle.read_replay()
    except ModelLoadError as exc:
        log.warning("%s", exc)
        notes.append(f"these photos were not compared with the model's training photos ({exc})")
        return None
    return TypicalityIndex.from_replay(replay) if replay is not None else None


def _report_shift(summary: SortSummary, watch: ShiftWatch) -> None:
    watch.finish()
    shift = watch.shift
    if shift is None:
        return
    held_back = sum(1 for _, reason in summary.not_sorted if reason == UNLIKE_REASON)
    summary.shift = shift.to_json(held_back)
    if watch.shifted or held_back:
        summary.notes.append(shift.sentence(held_back))


def _check_folders(options: SortOptions) -> tuple[Path, Path]:
    source = options.source.expanduser()
    if not source.is_dir():
        raise UsageError(f"The folder '{source}' does not exist or is not a folder.")
    source = source.resolve()
    output = options.output.expanduser().resolve()
    if output == source:
        raise UsageError("The output folder must differ from the folder being sorted.")
    if source.is_relative_to(output) and (
        output_holding(output) != output or source.is_relative_to(output / STATE_DIR)
    ):
        raise UsageError("The output folder cannot contain the folder being sorted.")
    holder = output_holding(source)
    if options.move and holder is not None and holder != output:
        raise UsageError(
            f"'{source.name}' is part of the sorted folder '{holder}': sort it into that folder, "
            "or copy instead of moving, so that folder's record of its photos stays true."
        )
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
    policy = options.choices.policy(classifier.config)
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
                f"confidence recalibrated on {calibrated_on} {'photo' if calibrated_on == 1 else 'photos'} "
                "you reviewed since this model was made"
            )
    started = time.perf_counter()
    journal: Journal | None = None
    if not options.dry_run:
        journal = Journal.open(output)
    elif (output / STATE_DIR).exists():
        journal = Journal.open(output, create=False, lock=False)
    run_status = RunStatus.CANCELLED
    # Copies are written and synced in parallel under unique temporary names (syncing is mostly
    # waiting on the disk); one writer thread, as in Picard, then gives each its final name in
    # input order and records it, so two copies never race for one name, collisions number
    # deterministically, and the journal has a single writer while the run lasts.
    writer = ThreadPoolExecutor(1, thread_name_prefix="sorter-write")
    copier = ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="sorter-copy")
    pending: deque[_Pending] = deque()
    features: FeatureCache | None = None
    unsaved: dict[tuple[str, int], np.ndarray] = {}
    unsaved_faces: dict[str, float] = {}
    unsaved_looks: dict[str, int] = {}

    def save_features() -> None:
        assert features is not None
        if unsaved:
            features.put_many(classifier.feature_recipe, unsaved)
            unsaved.clear()
        if unsaved_faces:
            features.put_faces(DETECTOR_NAME, unsaved_faces)
            unsaved_faces.clear()
        if unsaved_looks:
            features.put_looks(unsaved_looks)
            unsaved_looks.clear()

    def keep_features(sha: str, vector: np.ndarray | None, face: float | None, look: int | None) -> None:
        """Everything the review needs of a photo, kept as it passes by: it never decodes again."""
        if features is None or vector is None:
            return
        unsaved[(sha, CLEAN_VIEW)] = vector
        if face is not None:  # re-scoring finds the face sorting found, and decides as it did
            unsaved_faces[sha] = face
        if look is not None:  # the review groups near-duplicates by it
            unsaved_looks[sha] = look
        if len(unsaved) >= FEATURE_FLUSH:
            save_features()

    index = 0

    def event(c: Candidate, status: Status, **kw: Any) -> SortEvent:
        """Number and count one photo's outcome."""
        nonlocal index
        index += 1
        ev = SortEvent(index, summary.total, c.path, status, elapsed=time.perf_counter() - started, **kw)
        summary.count(ev)
        return ev

    def finish(p: _Pending) -> SortEvent:
        """Describe one photo once the writer has placed and recorded it."""
        c = p.candidate
        try:
            written = p.future.result()
        except OSError as exc:  # the writer re-raises only faults of the output
            raise DestinationError(
                f"Sorting stopped: {describe_os_error(exc)} "
                "Photos already sorted are safe; free space or fix the folder, then run again."
            ) from exc
        if written.error is not None:
            return event(c, "failed", error=written.error)
        placed = written.landed
        if placed:
            keep_features(placed[0].sha256, p.features, p.face, p.look)
        duplicate = all(pl.outcome == FOUND for pl in placed)
        return event(
            c,
            "skipped" if duplicate else p.status,
            labels=p.labels,
            confidence=p.confidence,
            top=p.top,
            destinations=tuple(pl.path for pl in placed),
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
                source,
                RunMode.MOVE if options.move else RunMode.COPY,
                str(classifier.bundle.path),
                str(classifier.device),
                decision=options.choices.to_json(),
            )

        todo: list[Candidate] = []
        inside: dict[str, Placement] = {}
        reviewed: set[str] = set()
        if journal is not None and source.is_relative_to(output):
            # sorting a folder of the output: its photos are placements, moved rather than placed
            inside = {journal.key(p.path): p for p in journal.placements()}
            reviewed = {journal.key(path) for path in options.kept}
        for c in candidates:
            if c.problem is not None:
                yield event(c, "failed", error=c.problem)
            elif journal is not None and journal.is_done(c.path, c.size, c.mtime_ns):
                yield event(c, "skipped")
            elif journal is not None and journal.key(c.path) in reviewed:
                yield event(c, "skipped", reason="you reviewed it: it stays where you put it")
            else:
                todo.append(c)

        training = _typicality_index(classifier, summary.notes)
        watch = ShiftWatch(training is not None)
        weighed = weighed_one_by_one(classifier.config, training, classifier.classify(todo, lambda c: c.path))
        under_shift = policy.under_shift(True)  # once, not per photo
        for pred, evidence in watch.stream(weighed):
            c = pred.item
            if evidence is None:
                if journal is not None and summary.run_id is not None:
                    run_id = summary.run_id
                    error = pred.error or "it cannot be read"
                    writer.submit(journal.record_failure, run_id, c.path, c.size, c.mtime_ns, error).result()
                yield event(c, "failed", error=pred.error)
                continue
            labels, reason = (under_shift if watch.shifted else policy).decide(*evidence.row(0))
            probs = evidence.probs[0]
            top = tuple(top_k(probs, classifier.classes))
            confidence = float(probs.max())
            status: Status = "unsure" if labels in ((UNSURE_FOLDER,), (OTHER_FOLDER,)) else "sorted"
            if options.dry_run:
                planned = tuple(planned_destination(output / label, c.path.name) for label in labels)
                yield event(
                    c, "planned", labels=labels, confidence=confidence, top=top, destinations=planned, reason=reason
                )
                continue
            assert journal is not None and summary.run_id is not None
            confidences = [_label_prob(probs, classifier.classes, label) for label in labels]
            ahead = labels[:-1] if options.move else labels
            staged = [copier.submit(stage, c.path, output / label) for label in ahead]
            future = writer.submit(
                write_photo,
                journal,
                summary.run_id,
                c,
                output,
                labels,
                confidences,
                move=options.move,
                staged=staged,
                inside=inside.get(journal.key(c.path)),
            )
            pending.append(
                _Pending(c, probs, labels, top, confidence, status, future, pred.features, reason, pred.face, pred.look)
            )
            while pending and (pending[0].future.done() or len(pending) >= MAX_WRITES_IN_FLIGHT):
                yield finish(pending.popleft())
        while pending:
            yield finish(pending.popleft())
        _report_shift(summary, watch)
        run_status = RunStatus.FINISHED
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
            save_features()
            features.close()
        summary.seconds = time.perf_counter() - started
        if journal is not None:
            try:
                if summary.run_id is not None:
                    journal.finish_run(summary.run_id, run_status)
            except DestinationError:
                if run_status == RunStatus.FINISHED:
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
