"""Workers reach the GUI only by signals, stop between items, and are let go once finished."""

from __future__ import annotations

import time
from collections.abc import Generator

from PySide6.QtCore import QThreadPool

from sorter.gui.worker import FunctionWorker, GeneratorWorker, WorkerSet


def test_a_worker_set_lets_finished_workers_go(qtbot) -> None:  # type: ignore[no-untyped-def]
    pool = QThreadPool()
    workers = WorkerSet()
    results: list[int] = []
    started = [FunctionWorker(lambda n=n: n * n) for n in range(5)]
    for w in started:
        w.signals.returned.connect(results.append)
    with qtbot.waitSignals([w.signals.finished for w in started], timeout=10_000):
        for w in started:
            workers.start(w, pool)
    qtbot.waitUntil(lambda: len(workers) == 0, timeout=10_000)
    assert sorted(results) == [0, 1, 4, 9, 16], "every result arrived before its worker was let go"
    pool.waitForDone(5_000)


def test_a_generator_worker_stops_between_items(qtbot) -> None:  # type: ignore[no-untyped-def]
    pool = QThreadPool()
    seen: list[int] = []
    closed: list[bool] = []

    def job() -> Generator[int, None, str]:
        try:
            for i in range(1000):
                time.sleep(0.01)  # a photo's worth of work: the GUI sees item 2 long before the end
                yield i
        finally:
            closed.append(True)
        return "done"

    worker = GeneratorWorker(job)

    def on_item(i: int) -> None:
        seen.append(i)
        if i == 2:
            worker.quit()

    worker.signals.yielded.connect(on_item)
    with qtbot.waitSignal(worker.signals.aborted, timeout=10_000):
        pool.start(worker)
    pool.waitForDone(5_000)
    assert closed == [True] and 3 <= len(seen) < 1000
