"""In the review dialog a correction re-scores the run at once; C confirms; Re-sort moves the rest."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps
from PySide6.QtCore import Qt

from sorter.files.corrections import CONFIRMATION, CORRECTION, CorrectionStore
from sorter.gui.review_dialog import ReviewDialog
from sorter.jobs.review_queue import build_queue, photos_in_order
from sorter.names import UNSURE_FOLDER
from tests.gui.conftest import sort_and_review


def _row_of(dialog: ReviewDialog, path: Path) -> int:
    return next(
        r for r in range(dialog.grid.count()) if str(path) in dialog.grid.item(r).data(Qt.ItemDataRole.UserRole + 1)
    )


def test_a_correction_suggests_the_same_folder_for_its_twin_and_resort_moves_it(
    qtbot, window, photo_folder: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    original = sorted(photo_folder.glob("*.jp*g"))[0]
    twin = photo_folder / "zz_twin.jpg"
    with Image.open(original) as img:
        ImageOps.mirror(img.convert("RGB")).save(twin, quality=92)
    out = tmp_path / "sorted"
    dialog: ReviewDialog = sort_and_review(qtbot, window, photo_folder, out)
    first = next(p for i in dialog.items for p in i.paths if p.name.endswith(original.name))
    twin_sorted = next(p for i in dialog.items for p in i.paths if p.name.endswith(twin.name))
    target = next(c for c in dialog.labels() if c not in (first.parent.name, twin_sorted.parent.name))

    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(_row_of(dialog, first))
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        dialog.apply_label(target)
    twin_item = next(i for i in dialog.items if twin_sorted in i.paths)
    assert twin_item.suggested == target, "the twin shows the corrected folder as its suggestion"
    assert dialog.items[0] is twin_item, "suggested moves come first"
    assert f"→ {target}?" in dialog.grid.item(0).text()
    assert dialog.adapted_on == 0, "the general model has no feature replay: its memory alone learns"

    # C confirms the selected photo (one not in _unsure and not the twin)
    other = next(i for i in dialog.items if i is not twin_item and not i.reviewed and i.label != UNSURE_FOLDER)
    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(_row_of(dialog, other.path))
    with qtbot.waitSignal(dialog.loaded, timeout=30_000):
        qtbot.keyClick(dialog, Qt.Key.Key_C)
    assert next(i for i in dialog.items if other.path in i.paths).reviewed

    running = len(dialog.workers)
    with qtbot.waitSignal(dialog.loaded, timeout=60_000):
        dialog.resort_button.click()
        # while it runs the dialog says so and takes no second re-sort
        assert not dialog.resort_button.isEnabled()
        assert dialog.feedback.text() == "Re-sorting the photos not reviewed…"
        dialog.resort_rest()
        assert len(dialog.workers) == running + 1
    qtbot.waitUntil(dialog.resort_button.isEnabled, timeout=10_000)
    assert (out / target / twin_sorted.name).exists() and not twin_sorted.exists()
    assert other.path.exists(), "a confirmed photo is never moved"
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        assert store.count(CORRECTION) == 1 and store.count(CONFIRMATION) == 1


def test_with_a_replay_the_head_adapts_and_the_review_says_so(
    qtbot, window, photo_folder: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    window.model_combo.setCurrentIndex(window.model_combo.findText("furniture", Qt.MatchFlag.MatchContains))
    out = tmp_path / "sorted"
    dialog: ReviewDialog = sort_and_review(qtbot, window, photo_folder, out)
    assert dialog.adapted_on == 0 and "adapted" not in dialog.status.text()
    # the dialog shows the very queue the correction-loop benchmark's simulated user reviews
    assert dialog.classifier is not None
    with CorrectionStore(dialog.corrections_db) as store:
        queue = build_queue(out, dialog.classifier.bundle, store)
    shown = [
        Path(p) for r in range(dialog.grid.count()) for p in dialog.grid.item(r).data(Qt.ItemDataRole.UserRole + 1)
    ]
    assert shown == photos_in_order(queue) and len(shown) == 21
    assert any(i.spot_check for i in queue.items) and any(i.rank < len(shown) for i in queue.items)
    # the user confirms a chair that is one (a mislabelling would be refused if it cost the
    # model's validation photos more than a point: test_adapt.py)
    photo = next(i for i in dialog.items if i.label == "chair" and "chair" in i.path.name).path
    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(_row_of(dialog, photo))
    with qtbot.waitSignal(dialog.loaded, timeout=30_000):
        qtbot.keyClick(dialog, Qt.Key.Key_C)
    assert dialog.adapted_on == 1
    assert "The model adapted to your 1 reviewed photo." in dialog.status.text()
