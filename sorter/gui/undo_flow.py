"""Undo from the desktop: asked first, then the newest run on a sorted folder taken back on a worker.

The question says what will go (copies, photos moved back, the user's own corrections of them)
before anything happens. The journal and the corrections store are written off the GUI thread;
the window hears the report and the folder as it is afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QWidget

from sorter.errors import SorterError
from sorter.gui import messages
from sorter.gui.worker import FunctionWorker, WorkerSet


@dataclass(frozen=True)
class FolderState:
    """What a sorted folder allows now: a review needs photos, an undo a run still in it."""

    photos: int
    undoable: bool


def folder_state(output: Path) -> FolderState | None:
    """None when the folder is not (or no longer) a sorted folder."""
    from sorter.files.journal import Journal, is_output_folder

    if not is_output_folder(output):
        return None
    try:
        with Journal.open(output, create=False, lock=False) as journal:
            return FolderState(journal.count_placed(), journal.last_undoable_run() is not None)
    except SorterError:
        return None


def undo_question(output: Path, corrections_db: Path) -> str:
    """The question asked before an undo: what it will remove and put back.

    Raises:
        SorterError: there is nothing to undo.
    """
    from sorter.files.corrections import CorrectionStore
    from sorter.files.undo import plan_undo
    from sorter.usertypes import RunMode

    with CorrectionStore(corrections_db) as store:
        plan = plan_undo(output, store)
    what = "re-sort" if plan.mode == RunMode.RESORT else "sort"
    parts = []
    if plan.copies:
        parts.append(f"remove the {plan.copies} {'copy' if plan.copies == 1 else 'copies'} it made")
    if plan.returns:
        where = "where it found them" if plan.mode == RunMode.RESORT else "where they came from"
        parts.append(f"put the {plan.returns} {'photo' if plan.returns == 1 else 'photos'} it moved back {where}")
    reviews = (
        f" Your {plan.reviews} {'correction or confirmation' if plan.reviews == 1 else 'corrections and confirmations'}"
        " of these photos will be withdrawn too."
        if plan.reviews
        else ""
    )
    return f"Undo the last {what} of '{output.name}'? It will {' and '.join(parts)}.{reviews}"


def ask_and_undo(
    parent: QWidget,
    output: Path,
    corrections_db: Path,
    pool: QThreadPool,
    workers: WorkerSet,
    done: Callable[[Any, list[Any]], None],
) -> None:
    """Ask, then undo the newest run on ``output`` on ``pool``; ``done`` gets the report and the
    photos still in the folder."""
    try:
        question = undo_question(output, corrections_db)
    except SorterError as exc:
        messages.show_error(parent, exc)
        return
    if not messages.ask(parent, question, yes="Undo"):
        return
    from sorter.files.corrections import CorrectionStore
    from sorter.files.journal import Journal
    from sorter.files.undo import undo_last_run

    def work() -> tuple[Any, list[Any]]:
        with CorrectionStore(corrections_db) as store:
            report = undo_last_run(output, store)
        with Journal.open(output, create=False, lock=False) as journal:
            return report, journal.placements()

    worker = FunctionWorker(work)
    worker.signals.returned.connect(lambda result: done(*result))
    worker.signals.errored.connect(lambda exc: messages.show_error(parent, exc))
    workers.start(worker, pool)


def undone_sentence(report: Any) -> str:
    """What an undo did (its :class:`~sorter.files.undo.UndoReport`), in one sentence."""
    kept = f"; kept {len(report.kept)} copies you changed" if report.kept else ""
    reviews = (
        f", and withdrew {report.reviews_withdrawn} of your corrections and confirmations of them"
        if report.reviews_withdrawn
        else ""
    )
    return f"Undone: removed {report.removed} copies and put back {report.restored} photos{reviews}{kept}."
