"""Train a model from a labelled folder in the Train dialog and switch the window to it."""

from __future__ import annotations

from pathlib import Path

from sorter.gui.train_dialog import TrainDialog


def test_train_dialog_trains_and_offers_the_new_model(qtbot, window, tiny_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window.model_dirs = [tmp_path / "user models", *window.model_dirs]
    window.open_train_dialog()
    dialog: TrainDialog = window.train_dialog
    qtbot.add_widget(dialog)
    assert not dialog.retrain_radio.isEnabled(), "no corrections yet"
    dialog.data_edit.setText(str(tiny_data))
    dialog.name_edit.setText("tiny from gui")
    dialog.epochs.setValue(4)
    dialog.budget.setValue(10)  # enough for the stronger network on these 72 photos, so it always runs
    with qtbot.waitSignal(dialog.trained, timeout=300_000) as blocker:
        dialog.start_button.click()
        assert "left of the 10:00 budget" in dialog.time_label.text()
    path = blocker.args[0]
    assert path == tmp_path / "user models" / "tiny from gui.safetensors" and path.exists()
    assert "Validation accuracy" in dialog.result_label.text()
    assert not dialog.confusion.pixmap().isNull()
    log = dialog.log.toPlainText()
    assert "head epoch 4/4" in log
    # each step of the budget is shown, and what won
    assert "Training the stronger network" in log and "Stronger network: validation accuracy" in log
    assert "Kept: the " in dialog.result_label.text() and "network" in dialog.result_label.text()
    assert dialog.time_label.text().startswith("Took ") and dialog.progress.format() == "Done"
    with qtbot.waitSignal(dialog.model_accepted, timeout=5000):
        dialog.use_button.click()
    assert window.model_combo.currentText() == "tiny from gui"
    assert window.model_path() == path
