"""The whole desktop flow as a person meets it, on real photos with a real model (issue 26):
choose, set, Start, review, correct, confirm, re-sort, undo, train, retrain; asserting what a
person would check at each step."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool

from sorter.gui import messages
from sorter.gui.main_window import MainWindow
from sorter.names import UNSURE_FOLDER
from sorter.settings import Settings
from tests.conftest import REPO, content_counts


def _photos(root: Path, furniture: Path) -> Path:
    """Furniture the tiny model knows (bed, chair, sofa) and tables it does not."""
    root.mkdir()
    for cls in ("bed", "chair", "sofa", "table"):
        for photo in sorted((furniture / cls).iterdir())[50:54]:
            shutil.copy2(photo, root / f"{cls}_{photo.name}")
    return root


def _rows(window: MainWindow) -> dict[str, str]:
    table = window.results
    return {table.topLevelItem(i).text(0): table.topLevelItem(i).text(1) for i in range(table.topLevelItemCount())}


def _row_of(dialog, name: str) -> int:  # type: ignore[no-untyped-def]
    return next(r for r in range(dialog.grid.count()) if dialog.grid.item(r).text().startswith(name))


def test_the_desktop_flow_from_a_folder_to_a_retrained_model(
    qtbot, tiny_model, furniture: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy2(tiny_model.path, models / "tiny.safetensors")
    saved: list[Settings] = []
    pool = QThreadPool()
    window = MainWindow(
        Settings(device="cpu"),
        pool,
        corrections_db=tmp_path / "data" / "corrections.sqlite",
        model_dirs=[models, REPO / "models"],
        cache_dir=tmp_path / "cache",
        save_settings=saved.append,
    )
    qtbot.add_widget(window)
    with qtbot.waitSignal(window.models_ready, timeout=120_000):
        window.show()

    # choose: the folder fills the form; nothing is sorted before Start
    photos = _photos(tmp_path / "Flat", furniture)
    out = tmp_path / "Flat (sorted)"
    window.drop_zone.folders_dropped.emit([photos])
    assert window.source_edit.text() == str(photos) and window.worker is None
    assert "press Start" in window.status.text() and not out.exists()
    assert window.output_edit.placeholderText() == f"Default: {out}"

    # set: the model, and the slider says what it means for a calibrated one
    window.model_combo.setCurrentIndex(window.model_combo.findText("tiny"))
    assert window.form.calibrated and window.form.precision_label.text() == "at least 95% sure"
    window.precision_slider.setValue(90)
    assert saved and saved[-1].precision == 0.9, "a choice is saved the moment it is made"
    window.model_combo.setCurrentIndex(window.model_combo.findText("general"))
    assert not window.form.calibrated and "not calibrated" in window.form.precision_label.text()
    window.model_combo.setCurrentIndex(window.model_combo.findText("tiny"))
    assert not out.exists()

    # Start
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as blocker:
        qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    summary = blocker.args[0]
    assert summary.classified == 16 and window.results.topLevelItemCount() == 16
    assert window.summary.text().startswith("Of 16 photos in Flat: ")
    assert window.review_button.isEnabled() and window.undo_button.isEnabled()

    # review: every held-back photo says what it got and what it needed
    window.review()
    dialog = window.review_dialog
    qtbot.add_widget(dialog)
    qtbot.waitSignal(dialog.loaded, timeout=60_000).wait()
    unsure = [i for i in dialog.items if i.label == UNSURE_FOLDER and i.reason]
    assert all(("needs" in i.reason or "look" in i.reason) for i in unsure)
    assert all(i.reason.splitlines()[0] in dialog.grid.item(r).text() for r, i in enumerate(dialog.items) if i.reason)

    # correct: a table (a category the model does not have), by typing its name
    table = next(i.path for i in dialog.items if i.path.name.startswith("table_"))
    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(_row_of(dialog, table.name))
    with qtbot.waitSignal(dialog.loaded, timeout=60_000):
        dialog.move_combo.setEditText("table")
        dialog.move_button.click()
    assert dialog.feedback.text() == "Moved 1 photo to table; the next retrain learns from it."
    assert _rows(window)[table.name] == "table", "the main window's list follows the review"
    assert (out / "table" / table.name).is_file()

    # confirm: a sorted photo that is right, with C
    right = next(i for i in dialog.items if i.label in ("bed", "chair", "sofa") and i.path.name.startswith(i.label))
    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(_row_of(dialog, right.path.name))
    with qtbot.waitSignal(dialog.loaded, timeout=60_000):
        qtbot.keyClick(dialog, Qt.Key.Key_C)
    assert dialog.feedback.text().startswith("Confirmed 1 photo")

    # re-sort: it says how many moved, or why none did
    with qtbot.waitSignal(dialog.loaded, timeout=60_000):
        dialog.resort_button.click()
    assert dialog.feedback.text().startswith(("Re-sorted: ", "No photo moved: "))
    resorted = dialog.feedback.text().startswith("Re-sorted: ")
    dialog.close()

    # undo: asked first, then the folder as it is, and no folder left empty
    messages.shown.clear()
    with qtbot.waitSignal(window.folder_changed, timeout=60_000):
        window.undo_button.click()
    assert messages.shown[0].startswith(f"Undo the last {'re-sort' if resorted else 'sort'} of 'Flat (sorted)'?")
    assert window.summary.text().startswith("Undone:")
    assert all(any(p.iterdir()) for p in out.iterdir() if p.is_dir()), "no empty folder is left"

    # train: the general model cannot be retrained, and says so; the reviewed folder is offered
    window.model_combo.setCurrentIndex(window.model_combo.findText("general"))
    window.open_train_dialog()
    general = window.train_dialog
    qtbot.add_widget(general)
    assert not general.retrain_radio.isEnabled() and "was not trained here" in general.plan_label.text()
    assert general.data_edit.text() == str(out)
    general.close()

    # retrain: the tiny model, from what its folders' reviews taught, listed before Start
    window.model_combo.setCurrentIndex(window.model_combo.findText("tiny"))
    window.open_train_dialog()
    trainer = window.train_dialog
    qtbot.add_widget(trainer)
    if resorted:  # the undo took back the re-sort; the correction and the confirmation stand
        assert "1 correction and 1 confirmation:" in trainer.plan_label.text()
    assert "New categories: table." in trainer.plan_label.text()
    trainer.retrain_radio.setChecked(True)
    trainer.name_edit.setText("tiny-v2")
    with qtbot.waitSignal(trainer.trained, timeout=300_000):
        trainer.start_button.click()
    assert "Validation accuracy: old" in trainer.result_label.text()
    assert trainer.progress.format() == "Done"
    assert window.model_combo.findText("tiny-v2") >= 0, "the new model is listed at once"
    trainer.use_button.click()
    assert window.model_combo.currentText() == "tiny-v2"

    # and the sort itself can be undone after that, leaving nothing behind
    while window.undo_button.isEnabled():
        with qtbot.waitSignal(window.folder_changed, timeout=60_000):
            window.undo_button.click()
    assert content_counts(out) == {}
    assert [p.name for p in out.iterdir()] == [".sorter"], "the run's folders went with it"
    assert not window.review_button.isEnabled()
    window.close()
    pool.waitForDone(60_000)
