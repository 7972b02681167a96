"""Review a sorted folder, least confident first, and fix labels by click, key or a typed name.

Every fix is the core ``correct()`` call (move the copy, record it in the journal, log the
correction), run on a single-thread pool so two moves never race for one file name; ``C`` (or
*Right*) confirms a photo's folder, and *Rest of page is right* confirms every unreviewed photo in
view. After each write the run is re-scored from the features kept at sort time, with the
reviewed photos as memory: photos whose suggested folder changed show it and come first, and
*Re-sort the rest* moves them (one journaled, undoable run). Each action says what it did in a
line of its own (:mod:`sorter.jobs.review_actions`), and each photo's caption says why it is
where it is ("dog 98%, needs 99%"). Keys: 1–9 and 0 move to the first ten categories, ``/``
types any category's name. The preview can overlay a Grad-CAM heat map
(:mod:`sorter.gui.preview`); the queue itself, with no Qt in it, is
:func:`sorter.jobs.review_queue.build_queue`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from sorter.gui import messages
from sorter.gui.actions import ActionRegistry, ActionSpec
from sorter.gui.label_pad import KEYS, LabelPad
from sorter.gui.preview import PreviewPane
from sorter.gui.thumbnails import ThumbnailCache
from sorter.gui.worker import FunctionWorker, WorkerSet
from sorter.jobs.review_queue import QueueItem, caption, folder_note, overview
from sorter.names import UNSURE_FOLDER, is_category

if TYPE_CHECKING:
    from sorter.jobs.review_actions import Done
    from sorter.model.classifier import Classifier

PATH_ROLE = Qt.ItemDataRole.UserRole
PATHS_ROLE = Qt.ItemDataRole.UserRole + 1
ALL_FOLDERS = "All folders"
CONFIRM = ActionSpec(
    "confirm", "Right", ("C",), "The selected photos are in the right folder: remember that for retraining"
)
CONFIRM_PAGE = ActionSpec(
    "confirm_page", "Rest of page is right", (), "Confirm every photo in view that you have not reviewed"
)
RESORT = ActionSpec(
    "resort",
    "Re-sort the rest",
    (),
    "Move the photos you have not reviewed to the folders suggested after your corrections (undoable)",
)
UNDO = ActionSpec("undo", "Undo last correction", (), "Take back the newest correction in this folder")
TYPE_CATEGORY = ActionSpec("type_category", "Type a category", ("/",), "Type any category's name, then Enter")
MOVE_TO = [ActionSpec(f"move_to_{key}", f"Move to category {n}", (key,)) for n, key in enumerate(KEYS, start=1)]


class ReviewDialog(QDialog):
    """Args:
        output: the sorted folder.
        corrections_db: the corrections store to log into.
        pool: pool for thumbnails and Grad-CAM.
        classifier: the model that sorted (for the heat map and the label list), if loaded.

    Signals:
        corrected(object): a photo moved; its new Path.
        moved(object, object): a photo moved from the first Path to the second.
        changed: a write changed the folder or the reviews (the main window follows).
        heatmap_shown(str): the preview shows a heat map for this class.
        loaded: the grid shows the folder's current content.
    """

    corrected = Signal(object)
    moved = Signal(object, object)
    changed = Signal()
    heatmap_shown = Signal(str)
    loaded = Signal()

    def __init__(
        self,
        output: Path,
        corrections_db: Path,
        pool: QThreadPool,
        classifier: Classifier | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Review — {output.name}")
        self.output = output
        self.corrections_db = corrections_db
        self.pool = pool
        self.classifier = classifier
        self.write_pool = QThreadPool(self)
        self.write_pool.setMaxThreadCount(1)  # one writer: two moves never race for a name
        self.workers = WorkerSet(self)
        self.thumbs = ThumbnailCache(pool, 128, self)
        self.thumbs.ready.connect(self._on_thumbnail)
        self.registry = ActionRegistry(self)
        self.registry.add(CONFIRM, self.confirm_selected)
        self.registry.add(CONFIRM_PAGE, self.confirm_page)
        self.registry.add(RESORT, self.resort_rest)
        self.registry.add(UNDO, self.undo_last)
        self.registry.add(TYPE_CATEGORY, self.type_category)
        for n, spec in enumerate(MOVE_TO):
            self.registry.add(spec, functools.partial(self._move_to_nth, n))
        self.items: list[QueueItem] = []
        self.folders: list[str] = []
        self.adapted_on = 0
        """Reviewed photos the head was adapted to in the last re-score (0: not adapted)."""
        self._build()
        self.reload()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.filter_combo = QComboBox()
        self.filter_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.filter_combo.currentIndexChanged.connect(self._apply_filter)
        top.addWidget(QLabel("Show:"))
        top.addWidget(self.filter_combo)
        top.addStretch()
        self.resort_button = QPushButton(RESORT.text)
        self.registry.bind(self.resort_button, RESORT.name)
        self.resort_button.setEnabled(self.classifier is not None)
        self.registry[RESORT.name].setEnabled(self.classifier is not None)
        top.addWidget(self.resort_button)
        self.undo_button = QPushButton(UNDO.text)
        self.registry.bind(self.undo_button, UNDO.name)
        top.addWidget(self.undo_button)
        layout.addLayout(top)

        splitter = QSplitter()
        self.grid = QListWidget()
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(128, 128))
        self.grid.setGridSize(QSize(184, 214))
        self.grid.setWordWrap(True)
        self.grid.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setSelectionMode(QListWidget.SelectionMode.ExtendedSelection)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.currentItemChanged.connect(self._show_preview)
        splitter.addWidget(self.grid)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        self.preview_pane = PreviewPane(self.pool, self.classifier)
        self.preview_pane.said.connect(self._say)
        self.preview_pane.heatmap_shown.connect(self.heatmap_shown)
        self.preview = self.preview_pane.image
        self.heat_check = self.preview_pane.heat_check
        side_layout.addWidget(self.preview_pane, 1)
        self.pad = LabelPad()
        self.pad.chosen.connect(self._label_chosen)
        self.move_combo, self.move_button = self.pad.combo, self.pad.move_button
        side_layout.addWidget(self.pad)
        confirm_row = QHBoxLayout()
        self.confirm_button = QPushButton(f"{CONFIRM.text} (C)")
        self.registry.bind(self.confirm_button, CONFIRM.name)
        self.confirm_page_button = QPushButton(CONFIRM_PAGE.text)
        self.registry.bind(self.confirm_page_button, CONFIRM_PAGE.name)
        confirm_row.addWidget(self.confirm_button)
        confirm_row.addWidget(self.confirm_page_button)
        side_layout.addLayout(confirm_row)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([660, 440])
        layout.addWidget(splitter, 1)
        self.feedback = QLabel("")
        """What the last action did (kept until the next one)."""
        self.status = QLabel("")
        for label in (self.feedback, self.status):
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            layout.addWidget(label)
        font = self.feedback.font()
        font.setBold(True)
        self.feedback.setFont(font)
        self.resize(1120, 720)

    # -- content --------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        known = list(self.classifier.classes) if self.classifier else []
        return [*known, *[f for f in self.folders if f not in known]]

    def reload(self) -> None:
        """Build the queue on a worker (from the journal and the kept features), then fill the grid."""
        output, db = self.output, self.corrections_db
        bundle = self.classifier.bundle if self.classifier is not None else None

        def read() -> tuple[list[QueueItem], list[str], int, str]:
            from sorter.files.corrections import CorrectionStore
            from sorter.jobs.review_queue import build_queue

            folders = sorted(p.name for p in output.iterdir() if p.is_dir() and is_category(p.name))
            if bundle is None:
                queue = build_queue(output)
            else:
                with CorrectionStore(db) as store:
                    queue = build_queue(output, bundle, store)
            return queue.items, folders, queue.adapted_on, folder_note(queue)

        worker = FunctionWorker(read)
        worker.signals.returned.connect(self._populate)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self.workers.start(worker, self.pool)

    def _populate(self, result: tuple[list[QueueItem], list[str], int, str]) -> None:
        self.items, self.folders, self.adapted_on, unlike = result
        row_before = max(self.grid.currentRow(), 0)
        self.grid.clear()
        for item in self.items:
            entry = QListWidgetItem(caption(item))
            if item.why:
                entry.setStatusTip(item.why)
            entry.setData(PATH_ROLE, str(item.path))
            entry.setData(PATHS_ROLE, [str(p) for p in item.paths])
            entry.setToolTip("\n".join([*(str(p) for p in item.paths), *([item.why] if item.why else [])]))
            self.grid.addItem(entry)
            self.thumbs.request(item.path)
        current = self.filter_combo.currentText()
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        self.filter_combo.addItem(ALL_FOLDERS)
        for label in sorted({i.label for i in self.items}, key=lambda s: (s != UNSURE_FOLDER, s)):
            self.filter_combo.addItem(label)
        index = self.filter_combo.findText(current)
        self.filter_combo.setCurrentIndex(max(index, 0))
        self.filter_combo.blockSignals(False)
        self._apply_filter()
        self.pad.set_labels(self.labels())
        if self.grid.count():
            self.grid.setCurrentRow(min(row_before, self.grid.count() - 1))
        self.status.setText(overview(self.items, self.adapted_on, unlike))
        self.loaded.emit()

    def _apply_filter(self) -> None:
        wanted = self.filter_combo.currentText()
        for row in range(self.grid.count()):
            item = self.grid.item(row)
            label = Path(item.data(PATH_ROLE)).parent.name
            item.setHidden(wanted not in (ALL_FOLDERS, "") and label != wanted)

    def _on_thumbnail(self, key: str, pixmap: QPixmap) -> None:
        for row in range(self.grid.count()):
            item = self.grid.item(row)
            if item.data(PATH_ROLE) == key and not pixmap.isNull():
                item.setIcon(QIcon(pixmap))

    # -- preview and heat map ---------------------------------------------------------------------
    def current_path(self) -> Path | None:
        item = self.grid.currentItem()
        return Path(item.data(PATH_ROLE)) if item is not None else None

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _show_preview(self, *_: Any) -> None:
        path = self.current_path()
        item = next((i for i in self.items if path in i.paths), None) if path is not None else None
        if item is not None and item.why:
            self.status.setText(f"{item.path.name}: {item.why}.")
        self.preview_pane.show_photo(path)

    # -- reviews ----------------------------------------------------------------------------------
    def _selected(self) -> list[Path]:
        return [Path(p) for i in self.grid.selectedItems() for p in i.data(PATHS_ROLE)]

    def _move_to_nth(self, index: int) -> None:
        labels = self.labels()
        if index < len(labels):
            self.apply_label(labels[index])

    def type_category(self) -> None:
        """``/``: type any category's name in the box, then Enter."""
        self.pad.focus_typing()

    def _label_chosen(self, label: str) -> None:
        self.apply_label(label)
        self.grid.setFocus()

    def apply_label(self, label: str) -> None:
        """Move every selected photo to ``label`` (a new category is allowed)."""
        selected = self._selected()
        if not selected or not label:
            return
        from sorter.jobs.review_actions import correct_photos

        output, db = self.output, self.corrections_db
        known = tuple(self.classifier.classes) if self.classifier is not None else ()
        self._run_write(lambda: correct_photos(output, selected, label, db, known))

    def confirm_selected(self) -> None:
        """The selected photos are in the right folder."""
        self._confirm(self._selected())

    def confirm_page(self) -> None:
        """Every photo in view, not yet reviewed and not in ``_unsure`` or ``_other``, is in the right
        folder."""
        view = self.grid.viewport().rect()
        reviewed = {p for i in self.items if i.reviewed for p in i.paths}
        paths: list[Path] = []
        for row in range(self.grid.count()):
            entry = self.grid.item(row)
            if entry.isHidden() or not self.grid.visualItemRect(entry).intersects(view):
                continue
            paths.extend(Path(p) for p in entry.data(PATHS_ROLE) if Path(p) not in reviewed)
        self._confirm(paths)

    def _confirm(self, paths: list[Path]) -> None:
        if not paths:
            return
        from sorter.jobs.review_actions import confirm_photos

        output, db = self.output, self.corrections_db
        # a photo held back that the review offers a category for ("_unsure → dog?") goes there
        offered = {p: i.suggested for i in self.items if i.suggested for p in i.paths}
        self._run_write(lambda: confirm_photos(output, paths, db, offered))

    def resort_rest(self) -> None:
        """Move the photos not reviewed where the re-score now puts them (``sorter resort``)."""
        if self.classifier is None or not self.resort_button.isEnabled():  # one is running
            return
        from sorter.jobs.review_actions import resort_rest

        output, db, bundle = self.output, self.corrections_db, self.classifier.bundle
        # the estimate refits the model once per part of the reviews (a few seconds): say so, and
        # take no second click that would only re-sort the same photos again
        self.resort_button.setEnabled(False)
        self.feedback.setText("Re-sorting the photos not reviewed…")
        self._run_write(lambda: resort_rest(output, bundle, db), then=self._resort_ended)

    def _resort_ended(self) -> None:
        """Whatever became of the re-sort (done, or one sentence of why not), it can be asked again."""
        self.resort_button.setEnabled(self.classifier is not None)

    def undo_last(self) -> None:
        from sorter.jobs.review_actions import undo_last_correction

        output, db = self.output, self.corrections_db
        self._run_write(lambda: undo_last_correction(output, db))

    def _run_write(self, work: Callable[[], Done], then: Callable[[], None] | None = None) -> None:
        """``work`` on the one writer thread; ``then`` (a method of this dialog, so it runs on the
        GUI thread) after it, however it ended."""
        worker = FunctionWorker(work)
        worker.signals.returned.connect(self._after_write)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        if then is not None:
            worker.signals.finished.connect(then)
        self.workers.start(worker, self.write_pool)

    def _after_write(self, done: Done) -> None:
        self.feedback.setText(done.message)
        for old, new in done.moved:
            self.moved.emit(old, new)
            self.corrected.emit(new)
        self.changed.emit()
        self.reload()

    def done(self, result: int) -> None:
        self.write_pool.waitForDone(30_000)
        super().done(result)
