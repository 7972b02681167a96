"""Correct three photos in the review dialog and show a Grad-CAM overlay, with the real model."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from sorter.files.corrections import CorrectionStore
from sorter.gui.review_dialog import ReviewDialog
from sorter.names import UNSURE_FOLDER
from tests.gui.conftest import sort_and_review


def test_review_corrects_three_photos_and_shows_heatmap(qtbot, window, photo_folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sorted"
    dialog: ReviewDialog = sort_and_review(qtbot, window, photo_folder, out)
    assert sum(len(i.paths) for i in dialog.items) == 21
    confidences = [i.confidence for i in dialog.items if i.label != UNSURE_FOLDER and not i.spot_check]
    assert confidences[0] == min(confidences), "the least confident first (then doubt and diversity)"
    spots = [r for r, i in enumerate(dialog.items) if i.spot_check]
    assert spots and spots[0] == 3, "the fourth photo is a spot check of a sorted one"
    assert dialog.items[3].label != UNSURE_FOLDER
    assert dialog.grid.item(3).text().endswith("right? (C)")
    if any(i.label == UNSURE_FOLDER for i in dialog.items):
        assert dialog.items[0].label == UNSURE_FOLDER

    # 1: a click on a label button
    dialog.grid.setCurrentRow(0)
    first = Path(dialog.grid.item(0).data(Qt.ItemDataRole.UserRole))
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        dialog.apply_label("Animals" if first.parent.name != "Animals" else "Vehicles")
    # 2: a number key (1 = the model's first class, "Animals")
    dialog.grid.clearSelection()
    row = next(
        r
        for r in range(dialog.grid.count())
        if Path(dialog.grid.item(r).data(Qt.ItemDataRole.UserRole)).parent.name != "Animals"
    )
    dialog.grid.setCurrentRow(row)
    second = Path(dialog.grid.item(row).data(Qt.ItemDataRole.UserRole))
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        qtbot.keyClick(dialog, Qt.Key.Key_1)
    # 3: the drop-down with a brand-new category
    dialog.grid.clearSelection()
    dialog.grid.setCurrentRow(dialog.grid.count() - 1)
    third = Path(dialog.grid.item(dialog.grid.count() - 1).data(Qt.ItemDataRole.UserRole))
    dialog.move_combo.setEditText("Workshop")
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        dialog.move_button.click()

    assert not first.exists() and not second.exists() and not third.exists()
    assert (out / "Animals" / second.name).exists()
    assert (out / "Workshop" / third.name).exists()
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        logged = store.all()
    assert [c.corrected for c in logged][1:] == ["Animals", "Workshop"] and len(logged) == 3
    assert all(c.stored.exists() for c in logged)

    # Grad-CAM overlay for the current photo
    with qtbot.waitSignal(dialog.heatmap_shown, timeout=60_000) as blocker:
        dialog.heat_check.setChecked(True)
    assert blocker.args[0] in window._classifiers[next(iter(window._classifiers))].classes
    assert not dialog.preview.pixmap().isNull()

    # undo the last correction: the photo goes back
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        dialog.undo_button.click()
    assert third.exists() and not (out / "Workshop" / third.name).exists()
    dialog.close()


def test_heatmap_looks_at_the_cat(general_classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    from sorter.model.explain import grad_cam
    from tests.conftest import SAMPLES

    cat = Image.open(SAMPLES / "chelsea.jpg").convert("RGB").resize((300, 300))
    canvas = Image.new("RGB", (600, 300), "white")
    canvas.paste(cat, (300, 0))
    canvas.save(tmp_path / "cat-right.png")
    heat, label, _p = grad_cam(general_classifier, tmp_path / "cat-right.png", "Animals")
    assert label == "Animals" and heat.shape == (224, 224)
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    # the general model centre-crops 224/256 of the short side; the cat is the right half
    assert heat[:, 112:].mean() > 2 * heat[:, :112].mean()


def test_near_duplicates_are_one_group_and_move_together(qtbot, general_classifier, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image
    from PySide6.QtCore import QThreadPool

    from sorter.jobs.events import drive
    from sorter.jobs.sorting import SortOptions, sort_folder
    from tests.conftest import SAMPLES

    src = tmp_path / "src"
    src.mkdir()
    cat = Image.open(SAMPLES / "chelsea.jpg").convert("RGB")
    cat.save(src / "cat.jpg", quality=95)
    cat.resize((cat.width // 2, cat.height // 2)).save(src / "cat-small.jpg", quality=70)
    (src / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    out = tmp_path / "out"
    drive(sort_folder(SortOptions(src, out, threshold=0.0), general_classifier), lambda e: None)
    pool = QThreadPool()
    dialog = ReviewDialog(out, tmp_path / "corrections.sqlite", pool, general_classifier)
    qtbot.add_widget(dialog)
    qtbot.waitSignal(dialog.loaded, timeout=30_000).wait()
    assert dialog.grid.count() == 2
    group = next(i for i in dialog.items if i.similar)
    assert {p.name for p in group.paths} == {"cat.jpg", "cat-small.jpg"}
    row = [i.path for i in dialog.items].index(group.path)
    dialog.grid.setCurrentRow(row)
    with qtbot.waitSignals([dialog.corrected, dialog.loaded], timeout=30_000):
        dialog.apply_label("Pets")
    assert {p.name for p in (out / "Pets").iterdir()} == {"cat.jpg", "cat-small.jpg"}
    dialog.close()
    pool.waitForDone(30_000)


def test_a_user_who_reviews_the_selected_photo_meets_a_spot_check_on_the_fourth(  # type: ignore[no-untyped-def]
    qtbot, general_classifier, photo_folder: Path, tmp_path: Path
) -> None:
    """The dialog rebuilds its queue after each click and keeps the cursor on the same row: the
    spot check that is due must come to that row, not stay three rows below it."""
    from PySide6.QtCore import QThreadPool

    from sorter.jobs.events import drive
    from sorter.jobs.sorting import SortOptions, sort_folder

    out = tmp_path / "out"
    drive(sort_folder(SortOptions(photo_folder, out), general_classifier), lambda e: None)
    pool = QThreadPool()
    dialog = ReviewDialog(out, tmp_path / "corrections.sqlite", pool, general_classifier)
    qtbot.add_widget(dialog)
    with qtbot.waitSignal(dialog.loaded, timeout=30_000):
        dialog.show()
    qtbot.waitExposed(dialog)
    met = []
    for _ in range(4):
        row = dialog.grid.currentRow()
        item = dialog.items[row]
        assert row == 0 and not item.reviewed
        met.append((item.spot_check, dialog.grid.item(row).text().endswith("right? (C)")))
        with qtbot.waitSignal(dialog.loaded, timeout=30_000):
            if item.label == UNSURE_FOLDER:
                dialog.apply_label(general_classifier.classes[0])
            else:
                qtbot.keyClick(dialog, Qt.Key.Key_C)
    assert met == [(False, False)] * 3 + [(True, True)], "the fourth is a spot check, and its tile says so"
    dialog.close()
    pool.waitForDone(30_000)


def test_the_preview_never_shows_the_last_photo_while_the_next_one_loads(qtbot, photo_folder: Path) -> None:  # type: ignore[no-untyped-def]
    """After a click the queue is rebuilt and the cursor lands on another photo; on a busy machine
    its preview takes a moment, and the one just reviewed must not stand in for it meanwhile (the
    user judges the large photo and presses C)."""
    from PySide6.QtCore import QThreadPool

    from sorter.gui.preview import PreviewPane

    first, second = sorted(photo_folder.glob("*.jp*g"))[:2]
    pool = QThreadPool()
    pane = PreviewPane(pool, None)
    qtbot.add_widget(pane)
    with qtbot.waitSignal(pane.thumbs.ready, timeout=30_000):
        pane.show_photo(first)
    assert not pane.image.pixmap().isNull()
    pane.show_photo(second)  # not loaded yet
    assert pane.image.pixmap().isNull(), "the photo reviewed before is not shown for the next one"
    qtbot.waitUntil(lambda: not pane.image.pixmap().isNull(), timeout=30_000)
    pane.show_photo(first)  # loaded before: shown at once
    assert not pane.image.pixmap().isNull()
    pool.waitForDone(30_000)


def test_c_on_a_spot_check_held_in_unsure_moves_it_to_the_category_offered(  # type: ignore[no-untyped-def]
    qtbot, general_classifier, photo_folder: Path, tmp_path: Path
) -> None:
    """A spot check may be a sure photo still held back: its tile asks '_unsure → chair?', and C
    (it is right) puts it in that category and logs it, where confirming _unsure is impossible."""
    from PySide6.QtCore import QThreadPool

    from sorter.files.corrections import CorrectionStore
    from sorter.jobs.events import drive
    from sorter.jobs.sorting import SortOptions, sort_folder
    from sorter.knobs import overridden

    out = tmp_path / "out"
    drive(sort_folder(SortOptions(photo_folder, out), general_classifier), lambda e: None)
    assert any((out / UNSURE_FOLDER).iterdir())
    pool = QThreadPool()
    db = tmp_path / "corrections.sqlite"
    with overridden(spot_sure=0.0, spot_every=1):  # every photo a spot check, held back or not
        dialog = ReviewDialog(out, db, pool, general_classifier)
        qtbot.add_widget(dialog)
        with qtbot.waitSignal(dialog.loaded, timeout=30_000):
            dialog.show()
        row = next(r for r, i in enumerate(dialog.items) if i.spot_check and i.label == UNSURE_FOLDER)
        item = dialog.items[row]
        offered = item.suggested
        assert offered in general_classifier.classes
        assert f"{UNSURE_FOLDER} → {offered}?" in dialog.grid.item(row).text()
        dialog.grid.setCurrentRow(row)
        with qtbot.waitSignal(dialog.loaded, timeout=30_000):
            qtbot.keyClick(dialog, Qt.Key.Key_C)
        dialog.close()
        pool.waitForDone(30_000)
    assert not item.path.exists()
    with CorrectionStore(db) as store:
        (logged,) = store.latest_per_photo(out)
    assert logged.label == offered and logged.sorted_path.parent == out / offered and logged.sorted_path.is_file()
