"""Revert the newest run on an output folder, photo by photo, from the placement record.

A run placed photos (copied or moved in) and moved others (a re-sort, or sorting a folder of the
output). Undo removes its copies (a copy the user has edited since is kept and reported: undo
never destroys work), returns its moved photos to where they came from (``" (N)"`` if something
else took that name meanwhile), and moves the photos it moved back where it found them: wherever
a photo is now, corrections since included. The reviews of those photos are withdrawn first, so
the corrections store never points at a photo that is no longer there. Folders the run's photos
were in are removed once empty. Runs undo one after another, newest first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorter.errors import SorterError, describe_os_error
from sorter.files.corrections import CorrectionStore
from sorter.files.journal import STATE_DIR, Journal, Op, Placement
from sorter.files.ledger import IN_PLACE, relocate, remove, return_to_source
from sorter.usertypes import Arrival, OpKind, PlacementStatus, RunStatus


@dataclass
class UndoReport:
    run_id: int
    removed: int = 0
    restored: int = 0
    reviews_withdrawn: int = 0
    kept: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "removed": self.removed,
            "restored": self.restored,
            "reviews_withdrawn": self.reviews_withdrawn,
            "kept": [{"path": str(p), "reason": r} for p, r in self.kept],
        }


@dataclass(frozen=True)
class UndoPlan:
    """What undoing the newest run would do, for the question a person is asked first."""

    run_id: int
    mode: str
    copies: int
    """Copies it would remove."""
    returns: int
    """Photos it would move back (to their source, or where the run found them)."""
    reviews: int
    """Corrections and confirmations of those photos that would be withdrawn."""


def _touched(journal: Journal, run_id: int) -> dict[int, tuple[Op, Placement]]:
    """The photos the run placed or moved that are still in the folder, with the run's first
    operation on each (what undo reverts)."""
    touched: dict[int, tuple[Op, Placement]] = {}
    for op in journal.ops(run_id):
        if op.kind not in (OpKind.PLACE, OpKind.MOVE) or op.placement_id in touched:
            continue
        placement = journal.placement(op.placement_id)
        if placement is not None and placement.status == PlacementStatus.PLACED:
            touched[op.placement_id] = (op, placement)
    return touched


def plan_undo(output: Path, store: CorrectionStore) -> UndoPlan:
    """What :func:`undo_last_run` would do now.

    Raises:
        SorterError: there is nothing to undo.
    """
    output = output.expanduser().resolve()
    with Journal.open(output, create=False, lock=False) as journal:
        run = journal.last_undoable_run()
        if run is None:
            raise SorterError(f"There is no run to undo in '{output}'.")
        touched = _touched(journal, run.id)
    copies = sum(1 for op, p in touched.values() if op.kind == OpKind.PLACE and p.how == Arrival.COPIED)
    ids = {p.id for _, p in touched.values()}
    reviews = sum(1 for c in store.all() if c.output == output and c.placement_id in ids)
    return UndoPlan(run.id, run.mode, copies, len(touched) - copies, reviews)


def undo_last_run(output: Path, store: CorrectionStore) -> UndoReport:
    """Undo the most recent run that has not been undone yet.

    Raises:
        SorterError: there is nothing to undo, or the folder is locked by a running sort.
    """
    output = output.expanduser().resolve()
    with Journal.open(output, create=False) as journal:
        run = journal.last_undoable_run()
        if run is None:
            raise SorterError(f"There is no run to undo in '{output}'.")
        report = UndoReport(run.id)
        touched = _touched(journal, run.id)
        report.reviews_withdrawn = store.withdraw_placements(output, [p for _, p in touched.values()])
        folders = {p.path.parent for _, p in touched.values()}
        for op, placement in reversed(list(touched.values())):
            folders.add(op.to_path.parent if op.to_path is not None else placement.path.parent)
            try:
                _revert(journal, run.id, op, placement, report)
            except OSError as exc:
                report.kept.append((placement.path, describe_os_error(exc)))
        _remove_empty_folders(folders, output)
        journal.forget_sources(run.id)
        journal.finish_run(run.id, RunStatus.UNDONE)
    return report


def _revert(journal: Journal, run_id: int, op: Op, placement: Placement, report: UndoReport) -> None:
    if op.kind == OpKind.PLACE and placement.how == Arrival.COPIED:
        if remove(journal, placement, run_id):
            report.removed += 1
        else:
            report.kept.append((placement.path, "it was changed after sorting"))
        return
    if op.kind == OpKind.PLACE:
        landed = return_to_source(journal, placement, run_id)
        if landed.outcome != IN_PLACE and landed.path != placement.source:
            report.kept.append((landed.path, f"its old name {placement.source.name} was taken"))
    else:
        assert op.from_path is not None
        back = op.from_path
        label = back.parent.name
        relocate(journal, placement, back.parent, label, OpKind.REVERT, run_id=run_id, name=back.name)
    report.restored += 1


def _remove_empty_folders(folders: set[Path], output: Path) -> None:
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder != output and folder.is_relative_to(output) and STATE_DIR not in folder.relative_to(output).parts:
            with contextlib.suppress(OSError):  # not empty: the user's or another run's files
                folder.rmdir()
