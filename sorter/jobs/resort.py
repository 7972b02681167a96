"""Re-sort a sorted folder: move each photo not reviewed to the folder the re-score now chooses.

One journaled run of its own (mode ``resort``) that ``sorter undo`` reverts byte for byte; a photo
the user corrected or confirmed is never moved, and folders are decided by the policy the folder
was sorted with unless the caller gives another (:func:`sorter.jobs.rescore.rescore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorter.errors import SorterError, UsageError, describe_os_error
from sorter.files.corrections import CorrectionStore
from sorter.files.journal import Journal
from sorter.files.ledger import IN_PLACE, relocate
from sorter.jobs.policy import Policy
from sorter.jobs.rescore import rescore
from sorter.jobs.stated import keep_stated
from sorter.knobs import knobs
from sorter.learn.estimate import PrecisionEstimate
from sorter.learn.shift import UNLIKE_REASON
from sorter.model.bundle import Bundle
from sorter.usertypes import OpKind, RunMode, RunStatus


def sorting_model(output: Path) -> str:
    """The model that sorted ``output`` (a bundle path, or a bare name in older journals), so that
    re-sorting uses it unless the user names another.

    Raises:
        UsageError: nothing was sorted there.
    """
    with Journal.open(output, create=False, lock=False) as journal:
        run = journal.last_sorting_run()
    if run is None:
        raise UsageError(f"Nothing was sorted in '{output}'.")
    model = run.model
    if not Path(model).exists() and not model.replace("_", "").replace("-", "").isalnum():
        raise UsageError(f"The model that sorted '{output}' ({model}) is gone; choose one with --model.")
    return model


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
    shift: dict[str, object] | None = None
    """How the folder compares with the training photos, and how many photos stay held back."""
    estimate: PrecisionEstimate | None = None
    """The precision the folders should have, estimated from the user's reviews (None: too few)."""
    doubted: tuple[str, ...] = ()
    """Classes held back because the first reviews found their confident photos wrong again and
    again (see :meth:`sorter.jobs.policy.Policy.doubting`)."""
    waiting: int = 0
    """Photos held back that the reviews suggest a category for, left in place until enough
    reviews can vouch for them (see :attr:`sorter.jobs.rescore.Rescored.waits`)."""

    def worth(self) -> str:
        """What the folders are now worth, in a sentence or two ("" when nothing is to be said)."""
        said = []
        if self.doubted:
            names = ", ".join(self.doubted)
            said.append(
                f"Your reviews found several photos sorted as {names} that were not, so the others wait in "
                f"_unsure until {knobs().min_reviews} reviews can tell how far this folder can be trusted."
            )
        if self.estimate is not None:
            said.append(self.estimate.sentence())
        if self.waiting:
            said.append(
                f"{self.waiting} {'photo' if self.waiting == 1 else 'photos'} your reviews suggest a category for "
                f"stay in _unsure until "
                f"{knobs().min_reviews} reviews can tell how far this folder can be trusted; C in the review "
                "moves one."
            )
        return " ".join(said)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "thresholds": self.thresholds,
            "calibrated_on_reviewed": self.calibrated_on,
            "head_adapted_on_reviewed": self.adapted_on,
            "shift": self.shift,
            "estimate": None if self.estimate is None else self.estimate.to_json(),
            "doubted": list(self.doubted),
            "waiting": self.waiting,
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
        estimate=found.estimate,
        doubted=tuple(sorted(found.policy.doubted)),
    )
    if found.shift is not None:
        held_back = sum(1 for r in found.photos if r.reason == UNLIKE_REASON and not r.reviewed)
        report.shift = found.shift.to_json(held_back)
    todo = []
    for r in found.photos:
        if r.reviewed:
            report.reviewed += 1
        elif r.waits:
            report.waiting += 1
        elif r.changed:
            todo.append(r)
        else:
            report.unchanged += 1
    if not todo:
        with Journal.open(output, create=False, lock=False) as journal:
            keep_stated(output, journal, found.estimate, bundle.config.classes)
        return report
    with Journal.open(output) as journal:
        run_id = journal.start_run(output, RunMode.RESORT, str(bundle.path), "features")
        report.run_id = run_id
        try:
            for r in todo:
                current = journal.placement(r.placement.id)
                if current is None or journal.key(current.path) != journal.key(r.path) or not r.path.is_file():
                    continue  # moved since it was scored
                try:
                    landed = relocate(
                        journal,
                        current,
                        output / r.suggested,
                        r.suggested,
                        OpKind.MOVE,
                        run_id=run_id,
                        confidence=r.confidence,
                    )
                except OSError as exc:
                    report.failed.append((r.path, describe_os_error(exc)))
                    continue
                if landed.outcome != IN_PLACE:
                    report.moved.append((r.path, landed.path))
        finally:
            journal.finish_run(run_id, RunStatus.FINISHED)
        keep_stated(output, journal, found.estimate, bundle.config.classes)
    if report.failed and not report.moved:
        raise SorterError(f"No photo could be re-sorted: {report.failed[0][1]}")
    return report
