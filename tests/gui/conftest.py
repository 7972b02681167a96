"""GUI fixtures: offscreen Qt, dialogs that log instead of block, a real window and model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _non_blocking_dialogs() -> Iterator[None]:
    from sorter.gui import messages

    messages.set_non_blocking(True)
    messages.shown.clear()
    yield
    messages.set_non_blocking(False)


@pytest.fixture
def window(qtbot, tmp_path: Path):  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QThreadPool

    from sorter.gui.main_window import MainWindow
    from sorter.settings import Settings

    pool = QThreadPool()
    pool.setMaxThreadCount(4)
    win = MainWindow(
        Settings(device="cpu"),
        pool,
        corrections_db=tmp_path / "data" / "corrections.sqlite",
        model_dirs=[REPO / "models"],
        cache_dir=tmp_path / "cache",
    )
    qtbot.add_widget(win)
    with qtbot.waitSignal(win.models_ready, timeout=120_000):
        win.show()
    yield win
    if win.worker is not None:
        win.worker.quit()
    pool.waitForDone(60_000)


def sort_and_review(qtbot, window, folder: Path, out: Path):  # type: ignore[no-untyped-def]
    """Sort ``folder`` into ``out`` in the window, open the review dialog and wait for its grid."""
    window.source_edit.setText(str(folder))
    window.output_edit.setText(str(out))
    with qtbot.waitSignal(window.run_finished, timeout=180_000):
        window.start()
    window.review()
    dialog = window.review_dialog
    qtbot.add_widget(dialog)
    qtbot.waitSignal(dialog.loaded, timeout=30_000).wait()
    return dialog
