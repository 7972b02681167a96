"""Render the desktop flow, step by step, at the windows' default sizes, to PNGs.

Run under a real X server to see what a person sees, e.g.
``xvfb-run -s "-screen 0 1400x1000x24" .venv/bin/python scripts/screenshot.py``
(``QT_QPA_PLATFORM=offscreen`` works too). Writes the walkthrough in ``docs/walkthrough/``
(a folder chosen and the form before Start; the window after the sort; the review; after a
correction; after *Re-sort the rest*; the question before an undo; the window after it; the
train dialog offering the reviewed folder for the general model), and ``docs/main_window.png``,
``docs/review_dialog.png``; for a folder of line drawings the furniture model has never seen the
like of, ``docs/shifted_main_window.png`` and ``docs/shifted_review.png``; and the train dialog
after a run within its time budget, ``docs/train_dialog.png``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt, QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QPushButton

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sorter.gui import messages  # noqa: E402
from sorter.gui.main_window import MainWindow  # noqa: E402
from sorter.settings import Settings  # noqa: E402


def wait(signal: object, timeout_ms: int = 180_000) -> list[object]:
    loop = QEventLoop()
    got: list[object] = []

    def done(*args: object) -> None:
        got.extend(args)
        loop.quit()

    signal.connect(done)  # type: ignore[attr-defined]
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()
    return got


def settle(ms: int = 1500) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def grab_question(path: Path, answer: str) -> None:
    """When the next modal question shows, save a picture of it, then press ``answer``."""

    def shoot() -> None:
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(100, shoot)
            return
        box.grab().save(str(path))
        for button in box.findChildren(QPushButton):
            if button.text().replace("&", "") == answer:
                button.click()

    QTimer.singleShot(300, shoot)


def main() -> int:
    app = QApplication(sys.argv)  # noqa: F841 - must stay alive for the whole run
    messages.set_non_blocking(True)
    docs = ROOT / "docs"
    steps = docs / "walkthrough"
    steps.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "Holiday photos"
        shutil.copytree(ROOT / "assets" / "samples", photos, ignore=shutil.ignore_patterns("*.md"))
        pool = QThreadPool()
        window = MainWindow(
            Settings(device="cpu"),
            pool,
            corrections_db=Path(tmp) / "corrections.sqlite",
            model_dirs=[ROOT / "models"],
        )
        window.show()
        wait(window.models_ready)
        window.enqueue([photos])
        settle()
        window.grab().save(str(steps / "01_folder_chosen.png"))
        window.start()
        wait(window.run_finished)
        settle()
        window.grab().save(str(docs / "main_window.png"))
        window.grab().save(str(steps / "02_sorted.png"))
        # The review dialog on furniture photos, two bees and a mirrored twin, after one correction.
        from PIL import Image, ImageOps

        shared = ROOT.parent / "shared" / "datasets"
        room = Path(tmp) / "Flat"
        room.mkdir()
        for cls in ("chair", "sofa", "bed", "table"):
            for photo in sorted((shared / "furniture7" / "images" / cls).iterdir())[30:34]:
                shutil.copy2(photo, room / f"{cls}_{photo.name}")
        for photo in sorted((shared / "hymenoptera" / "images" / "bees").iterdir())[:2]:
            shutil.copy2(photo, room / photo.name)
        first = sorted(room.glob("chair_*"))[0]
        with Image.open(first) as img:
            ImageOps.mirror(img.convert("RGB")).save(room / "chair_twin.jpg", quality=92)
        window.model_combo.setCurrentIndex(window.model_combo.findText("furniture", Qt.MatchFlag.MatchContains))
        window.output_edit.setText(str(Path(tmp) / "Flat (sorted)"))
        window.enqueue([room])
        window.start()
        wait(window.run_finished)
        window.review()
        dialog = window.review_dialog
        wait(dialog.loaded, 60_000)
        settle()
        dialog.grab().save(str(steps / "03_review.png"))
        dialog.grid.clearSelection()
        row = next(r for r in range(dialog.grid.count()) if first.name in dialog.grid.item(r).text())
        dialog.grid.setCurrentRow(row)
        dialog.grid.item(row).setSelected(True)
        dialog.apply_label("sofa")
        wait(dialog.loaded, 60_000)
        if messages.shown:
            print("shown:", messages.shown)
        dialog.grid.setCurrentRow(0)
        settle()
        dialog.grab().save(str(docs / "review_dialog.png"))
        dialog.grab().save(str(steps / "04_after_a_correction.png"))
        dialog.resort_rest()
        wait(dialog.loaded, 60_000)
        settle()
        dialog.grab().save(str(steps / "05_after_resort.png"))
        dialog.close()
        messages.set_non_blocking(False)
        grab_question(steps / "06_undo_question.png", "Undo")
        window.undo()
        wait(window.folder_changed, 60_000)
        messages.set_non_blocking(True)
        settle()
        window.grab().save(str(steps / "07_after_undo.png"))
        window.model_combo.setCurrentIndex(window.model_combo.findText("general"))
        window.open_train_dialog()
        settle()
        window.train_dialog.grab().save(str(steps / "08_train_general_model.png"))
        window.train_dialog.close()
        window.model_combo.setCurrentIndex(window.model_combo.findText("furniture", Qt.MatchFlag.MatchContains))
        # A folder unlike the model's photos: line drawings made from real furniture photos.
        from PIL import ImageFilter

        drawings = Path(tmp) / "Sketchbook"
        drawings.mkdir()
        for cls in ("bed", "chair", "sofa"):
            for photo in sorted((shared / "furniture7_extra" / "images" / cls).iterdir())[300:312]:
                with Image.open(photo) as img:
                    edges = ImageOps.grayscale(img.convert("RGB")).filter(ImageFilter.FIND_EDGES)
                    ImageOps.invert(ImageOps.autocontrast(edges)).save(drawings / f"{cls}_{photo.stem}.png")
        window.output_edit.setText(str(Path(tmp) / "Sketchbook (sorted)"))
        window.enqueue([drawings])
        window.start()
        wait(window.run_finished)
        settle()
        window.grab().save(str(docs / "shifted_main_window.png"))
        window.review()
        dialog = window.review_dialog
        wait(dialog.loaded, 60_000)
        settle()
        dialog.grab().save(str(docs / "shifted_review.png"))
        dialog.close()
        # The train dialog after a run within a two-minute budget, on 20 photos of four classes.
        labelled = Path(tmp) / "Labelled"
        for cls in ("bed", "chair", "sofa", "table"):
            (labelled / cls).mkdir(parents=True)
            for photo in sorted((shared / "furniture7" / "images" / cls).iterdir())[:20]:
                shutil.copy2(photo, labelled / cls / photo.name)
        window.model_dirs = [Path(tmp) / "user models", *window.model_dirs]
        window.open_train_dialog()
        trainer = window.train_dialog
        trainer.data_edit.setText(str(labelled))
        trainer.name_edit.setText("my furniture")
        trainer.budget.setValue(2)
        trainer.start_button.click()
        wait(trainer.trained, 600_000)
        settle()
        trainer.grab().save(str(docs / "train_dialog.png"))
        trainer.close()
        window.close()
        pool.waitForDone(30_000)
    print(
        "wrote the walkthrough, main_window.png, review_dialog.png, shifted_main_window.png, shifted_review.png "
        f"and train_dialog.png in {docs}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
