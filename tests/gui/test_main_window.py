"""The main window sorts real photos with the real model, cancels, and accepts dropped folders."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from sorter.files.journal import Journal
from tests.conftest import content_counts, make_photo_folder, pick_photos


def test_whole_sort_through_the_window(qtbot, window, photo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sorted"
    assert window.model_combo.currentText() == "general"
    assert "12 classes" in window.model_info.text()
    window.source_edit.setText(str(photo_folder))
    window.output_edit.setText(str(out))
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as blocker:
        qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    summary = blocker.args[0]
    assert summary.classified == 21 and summary.failed == 0
    assert window.results.topLevelItemCount() == 21
    assert content_counts(out) == content_counts(photo_folder)
    assert window.summary.text().startswith(f"Of 21 photos in {photo_folder.name}: ")
    assert window.review_button.isEnabled() and window.undo_button.isEnabled()
    assert window.progress.value() == 21
    assert window.settings.last_source == str(photo_folder)
    qtbot.waitUntil(lambda: any(not window.results.topLevelItem(i).icon(0).isNull() for i in range(21)), timeout=10_000)

    with qtbot.waitSignal(window.undo_button.clicked, timeout=1000):
        window.undo_button.click()
    qtbot.waitUntil(lambda: window.summary.text().startswith("Undone"), timeout=30_000)
    assert content_counts(out) == {}


def test_cancel_stops_between_photos(qtbot, window, furniture: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    photos = make_photo_folder(tmp_path / "many", pick_photos(furniture, 10))  # 70 photos
    out = tmp_path / "sorted"
    window.output_edit.setText(str(out))
    seen: list[object] = []
    window.source_edit.setText(str(photos))
    window.start()
    assert window.worker is not None
    window.worker.signals.yielded.connect(seen.append)
    qtbot.waitUntil(lambda: len(seen) >= 5, timeout=120_000)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: window.worker is None, timeout=60_000)
    assert "Cancelled" in window.status.text()
    with Journal.open(out) as journal:
        assert [r.status for r in journal.runs()] == ["cancelled"]
    placed = sum(content_counts(out).values())
    assert 5 <= placed < 70
    assert window.start_button.isEnabled() and not window.cancel_button.isEnabled()


def test_dropping_folders_queues_and_sorts_them(qtbot, window, furniture: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = make_photo_folder(tmp_path / "first", pick_photos(furniture, 1))
    second = make_photo_folder(tmp_path / "second", pick_photos(furniture, 1, offset=5))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(first)), QUrl.fromLocalFile(str(second))])
    zone = window.drop_zone
    where = QPoint(zone.width() // 2, zone.height() // 2).toPointF()
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(where, Qt.DropAction.CopyAction, mime, buttons, keys)
    drop = QDropEvent(where, Qt.DropAction.CopyAction, mime, buttons, keys)
    finished: list[object] = []
    window.run_finished.connect(finished.append)
    QApplication.sendEvent(zone, enter)  # as a real drag does: enter, then drop
    assert enter.isAccepted()
    QApplication.sendEvent(zone, drop)
    assert drop.isAccepted()
    # a drop fills the form; nothing is sorted before Start
    assert window.source_edit.text() == str(first) and window.worker is None
    assert "then 1 more folder" in window.status.text()
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=180_000)
    for folder in (first, second):
        out = folder.with_name(f"{folder.name} (sorted)")
        assert content_counts(out) == content_counts(folder)


def test_errors_are_one_sentence_not_a_crash(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sorter.gui import messages

    window.source_edit.setText(str(tmp_path / "does not exist"))
    window.start()
    qtbot.waitUntil(lambda: window.worker is None, timeout=60_000)
    assert messages.shown and messages.shown[-1].startswith("The folder")
    assert window.start_button.isEnabled()


def test_recent_folders_are_offered(qtbot, window, photo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window.source_edit.setText(str(photo_folder))
    window.output_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(window.run_finished, timeout=180_000):
        window.start()
    window.source_edit.setText("")
    window._fill_recent()
    actions = window.recent_menu.actions()
    assert [a.text() for a in actions] == [str(photo_folder)]
    actions[0].trigger()
    assert window.source_edit.text() == str(photo_folder)


def test_start_pressed_while_models_load_waits_then_sorts(qtbot, photo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Start-up takes seconds (torch and timm import); a drop then fills the form, and Start in
    that time waits for the models instead of being refused."""
    from PySide6.QtCore import QThreadPool

    from sorter.gui.main_window import MainWindow
    from sorter.settings import Settings
    from tests.conftest import REPO

    pool = QThreadPool()
    win = MainWindow(
        Settings(device="cpu"),
        pool,
        corrections_db=tmp_path / "corrections.sqlite",
        model_dirs=[REPO / "models"],
        cache_dir=tmp_path / "cache",
    )
    qtbot.add_widget(win)
    win.show()
    win.output_edit.setText(str(tmp_path / "out"))
    assert win.model_path() is None, "the models are still loading"
    win.enqueue([photo_folder])
    assert win.source_edit.text() == str(photo_folder) and win.worker is None
    win.start()
    assert "start as soon as" in win.status.text()
    with qtbot.waitSignal(win.run_finished, timeout=180_000) as blocker:
        pass
    assert blocker.args[0].classified == 21
    assert content_counts(tmp_path / "out") == content_counts(photo_folder)
    pool.waitForDone(60_000)


def test_a_folder_dropped_while_a_sort_runs_queues_behind_it(qtbot, window, furniture: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = make_photo_folder(tmp_path / "first", pick_photos(furniture, 2))
    second = make_photo_folder(tmp_path / "second", pick_photos(furniture, 1, offset=5))
    finished: list[object] = []
    window.run_finished.connect(finished.append)
    window.enqueue([first])
    window.start()
    assert window.worker is not None
    window.enqueue([second])
    assert "Queued second" in window.status.text()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=180_000)
    assert content_counts(second.with_name("second (sorted)")) == content_counts(second)


def test_with_no_model_found_nothing_opens_by_itself(qtbot, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A self-check under Wine once hung on a file dialog that opened with no one asking (an
    installation without models listed only "Open model file…", and selecting it opened the dialog)."""
    from PySide6.QtCore import QThreadPool
    from PySide6.QtWidgets import QFileDialog

    from sorter.gui.main_window import MainWindow
    from sorter.settings import Settings

    def no_dialog(*args: object, **kwargs: object) -> tuple[str, str]:
        raise AssertionError("a file dialog opened that the user did not ask for")

    monkeypatch.setattr(QFileDialog, "getOpenFileName", no_dialog)
    pool = QThreadPool()
    win = MainWindow(Settings(device="cpu"), pool, corrections_db=tmp_path / "c.sqlite", model_dirs=[tmp_path / "none"])
    qtbot.add_widget(win)
    with qtbot.waitSignal(win.models_ready, timeout=120_000):
        win.show()
    assert win.model_path() is None and win.model_info.text().startswith("No model was found")
    pool.waitForDone(30_000)
