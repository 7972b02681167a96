"""A folder unlike the model's photos, in the desktop app: the summary says so and offers the
review at once, and the review shows why photos were held back."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from sorter.gui.review_dialog import ReviewDialog
from sorter.learn.shift import UNLIKE_REASON
from tests.gui.conftest import sort_and_review
from tests.jobs.test_shift import _photos, make_sketches


def test_sketches_are_held_back_with_the_reason_and_the_review_is_offered(qtbot, window, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "sketches"
    folder.mkdir()
    make_sketches(_photos(400)[::2], folder)  # 18 drawings: bed, chair and sofa
    make_sketches(_photos(420)[::2], folder)
    window.model_combo.setCurrentIndex(window.model_combo.findText("furniture", Qt.MatchFlag.MatchContains))
    dialog: ReviewDialog = sort_and_review(qtbot, window, folder, tmp_path / "sorted")
    assert "look unlike the ones this model learnt from" in window.status.text()
    assert window.review_button.text().startswith("Review 20") and window.review_button.isDefault()
    held = [i for i in dialog.items if i.why == UNLIKE_REASON]
    assert held, "photos held back say why"
    row = next(
        r for r in range(dialog.grid.count()) if dialog.grid.item(r).data(Qt.ItemDataRole.UserRole) == str(held[0].path)
    )
    assert UNLIKE_REASON in dialog.grid.item(row).toolTip()
    assert "look unlike the model's own" in dialog.status.text()
