"""Revert the last run on an output folder, removing only what is provably Sorter's own copy.

A copy the user has edited since (its content no longer matches the journal) is kept and
reported: undo must never destroy work. Moved photos go back where they came from, under a
``" (N)"`` name if something else has taken that place meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sorter.errors import SorterError, describe_os_error
from sorter.files.fileops import place, sha256_of
from sorter.files.journal import Journal
from sorter.usertypes import OpStatus, RunMode, RunStatus


@dataclass
class UndoReport:
    run_id: int
    removed: int = 0
    restored: int = 0
    kept: list[tuple[Path, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "removed": self.removed,
            "restored": self.restored,
            "kept": [{"path": str(p), "reason": r} for p, r in self.kept],
        }


def _unchanged(path: Path, sha: str, size: int) -> bool:
    try:
        return path.stat().st_size == size and sha256_of(path) == sha
    except OSError:
        return False


def undo_last_run(output: Path) -> UndoReport:
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
        for op in reversed(journal.ops(run.id)):
            if op.status == OpStatus.COPIED:
                if not op.destination.exists():
                    continue
                if not _unchanged(op.destination, op.sha256, op.size):
                    report.kept.append((op.destination, "it was changed after sorting"))
                    journal.set_op_status(op.id, OpStatus.KEPT)
                    continue
                try:
                    op.destination.unlink()
                except OSError as exc:
                    report.kept.append((op.destination, describe_os_error(exc)))
                    continue
                report.removed += 1
                journal.set_op_status(op.id, OpStatus.UNDONE)
            elif op.status == OpStatus.MOVED or (op.status == OpStatus.DUPLICATE and run.mode == RunMode.MOVE):
                # A move whose content was already there removed the source: restore it by copy.
                keep_destination = op.status == OpStatus.DUPLICATE
                if not op.destination.exists() or (
                    not keep_destination and not _unchanged(op.destination, op.sha256, op.size)
                ):
                    report.kept.append((op.destination, "it was changed or removed after sorting"))
                    continue
                if os.path.lexists(op.source) and _unchanged(op.source, op.sha256, op.size):
                    continue
                try:
                    back = place(op.destination, op.source.parent, op.source.name, move=not keep_destination)
                except OSError as exc:
                    report.kept.append((op.destination, describe_os_error(exc)))
                    continue
                if back.destination != op.source:
                    report.kept.append((back.destination, f"its old name {op.source.name} was taken"))
                if run.mode == RunMode.RESORT:
                    # The sort that first placed this copy points at it again, with its old label
                    # and confidence (a re-sort records the old confidence in its own op).
                    placed = journal.op_for_destination(op.destination, exclude_run=run.id)
                    if placed is not None:
                        journal.relocate_op(placed.id, back.destination, back.destination.parent.name, op.confidence)
                report.restored += 1
                journal.set_op_status(op.id, OpStatus.UNDONE)
        _remove_empty_folders({op.destination.parent for op in journal.ops(run.id)}, output)
        journal.forget_sources(run.id)
        journal.finish_run(run.id, RunStatus.UNDONE)
    return report


def _remove_empty_folders(folders: set[Path], output: Path) -> None:
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder != output and folder.is_relative_to(output):
            with contextlib.suppress(OSError):  # not empty: the user's or another run's files
                folder.rmdir()
