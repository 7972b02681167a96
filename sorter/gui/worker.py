"""Run a core generator job on a thread pool, reporting by Qt signals, stoppable between items.

The sorting job is a generator of events; this worker pulls one event at a time, emits it, and
checks ``abort_requested`` before pulling the next, so Cancel takes effect between two photos
(``generator.close()`` lets the job journal the run as cancelled). Only signals reach the GUI
thread: widgets are never touched from here.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)


class WorkerSignals(QObject):
    """Signals:
    started: the job began.
    yielded(object): one event from the generator.
    returned(object): the generator's return value (the job finished normally).
    errored(object): the exception that ended the job.
    aborted: the job stopped because abort was requested.
    finished: always last, whatever happened.
    """

    started = Signal()
    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    aborted = Signal()
    finished = Signal()


class GeneratorWorker(QRunnable):
    """Consumes ``factory()`` (a generator) on a pool thread.

    Args:
        factory: builds the generator *on the worker thread*, so slow set-up (loading torch,
            the model) never blocks the window.
    """

    def __init__(self, factory: Callable[[], Generator[Any, None, Any]]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = WorkerSignals()
        self._factory = factory
        self.abort_requested = False

    def quit(self) -> None:
        """Ask the job to stop before its next item."""
        self.abort_requested = True

    def run(self) -> None:
        self.signals.started.emit()
        try:
            job = self._factory()
            try:
                while True:
                    if self.abort_requested:
                        job.close()
                        self.signals.aborted.emit()
                        return
                    try:
                        event = next(job)
                    except StopIteration as stop:
                        self.signals.returned.emit(stop.value)
                        return
                    self.signals.yielded.emit(event)
            finally:
                job.close()
        except Exception as exc:  # every failure reaches the GUI as a signal, never a dead thread
            log.debug("worker failed:\n%s", traceback.format_exc())
            self.signals.errored.emit(exc)
        finally:
            self.signals.finished.emit()


class FunctionWorker(QRunnable):
    """Runs one callable on a pool thread; the same signals (no ``yielded``)."""

    def __init__(self, func: Callable[[], Any]) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = WorkerSignals()
        self._func = func

    def run(self) -> None:
        self.signals.started.emit()
        try:
            self.signals.returned.emit(self._func())
        except Exception as exc:
            self.signals.errored.emit(exc)
        finally:
            self.signals.finished.emit()


class WorkerSet(QObject):
    """The workers a window has started and not yet seen finish.

    A worker must stay referenced while it runs (Python would otherwise collect it under the
    pool), but not after: as superqt's worker set does, each is let go when its ``finished``
    signal reaches the GUI thread, after the signals it emitted before. A long review no longer
    keeps every re-score and thumbnail worker it ever ran.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._running: dict[int, GeneratorWorker | FunctionWorker] = {}

    def start(self, worker: GeneratorWorker | FunctionWorker, pool: QThreadPool) -> None:
        self._running[id(worker.signals)] = worker
        worker.signals.finished.connect(self._finished)
        pool.start(worker)

    @Slot()
    def _finished(self) -> None:
        self._running.pop(id(self.sender()), None)

    def __len__(self) -> int:
        return len(self._running)
