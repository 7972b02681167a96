"""Undo from the desktop: the newest run on a sorted folder, taken back on a pool worker.

The journal and the corrections store are read and written off the GUI thread; the window only
hears the report (:class:`sorter.files.undo.UndoReport`) or the one sentence of a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QWidget

from sorter.gui import messages
from sorter.gui.worker import FunctionWorker, WorkerSet


def undo_newest_run(
    parent: QWidget,
    output: Path,
    corrections_db: Path,
    pool: QThreadPool,
    workers: WorkerSet,
    done: Callable[[Any], None],
) -> None:
    """Undo the newest run on ``output`` on ``pool``; ``done`` gets its report."""
    from sorter.files.corrections import CorrectionStore
    from sorter.files.undo import UndoReport, undo_last_run

    def work() -> UndoReport:
        with CorrectionStore(corrections_db) as store:
            return undo_last_run(output, store)

    worker = FunctionWorker(work)
    worker.signals.returned.connect(done)
    worker.signals.errored.connect(lambda exc: messages.show_error(parent, exc))
    workers.start(worker, pool)
