"""Review a sorted folder, least confident first, and fix labels by click, drop-down or number key.

Every fix is the core ``correct()`` call (move the copy, update the journal, log the correction),
run on a single-thread pool so two moves never race for one file name; ``C`` (or *Right*) confirms
a photo's folder, and *Rest of page is right* confirms every unreviewed photo in view. After each
write the run is re-scored from the features kept at sort time, with the reviewed photos as
memory: photos whose suggested folder changed show it and come first, and *Re-sort the rest*
moves them (one journaled, undoable run). The preview can overlay a Grad-CAM heat map
(:mod:`sorter.gui.preview`); the queue itself, with no Qt in it, is
:func:`sorter.jobs.review_queue.build_queue`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from sorter.files.corrections import CorrectionStore
from sorter.gui import messages
from sorter.gui.actions import ActionRegistry, ActionSpec
from sorter.gui.preview import PreviewPane
from sorter.gui.thumbnails import ThumbnailCache
from sorter.gui.worker import FunctionWorker, WorkerSet
from sorter.jobs.review_queue import SPOT_EVERY, QueueItem, build_queue, unlike_note
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER

if TYPE_CHECKING:
    from sorter.model.classifier import Classifier

PATH_ROLE = Qt.ItemDataRole.UserRole
PATHS_ROLE = Qt.ItemDataRole.UserRole + 1
ALL_FOLDERS = "All folders"
LABEL_KEYS = 9
"""Number keys 1-9 move the selection to the first nine categories."""
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
UNDO = ActionSpec("undo", "Undo last correction")
MOVE_TO = [ActionSpec(f"move_to_{n}", f"Move to category {n}", (str(n),)) for n in range(1, LABEL_KEYS + 1)]


class ReviewDialog(QDialog):
    """Args:
        output: the sorted folder.
        corrections_db: the corrections store to log into.
        pool: pool for thumbnails and Grad-CAM.
        classifier: the model that sorted (for the heat map and the label list), if loaded.

    Signals:
        corrected(object): a photo moved; its new Path.
        heatmap_shown(str): the preview shows a heat map for this class.
        loaded: the grid shows the folder's current content.
    """

    corrected = Signal(object)
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
        self.grid.setGridSize(QSize(150, 170))
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
        self.label_buttons = QGridLayout()
        side_layout.addWidget(QLabel("Move the selected photos to (or press its number):"))
        side_layout.addLayout(self.label_buttons)
        move_row = QHBoxLayout()
        self.move_combo = QComboBox()
        self.move_combo.setEditable(True)
        self.move_combo.setToolTip("Pick a folder, or type a new category")
        self.move_button = QPushButton("Move")
        self.move_button.clicked.connect(lambda: self.apply_label(self.move_combo.currentText().strip()))
        move_row.addWidget(self.move_combo, 1)
        move_row.addWidget(self.move_button)
        side_layout.addLayout(move_row)
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
        splitter.setSizes([640, 460])
        layout.addWidget(splitter, 1)
        self.status = QLabel("")
        layout.addWidget(self.status)
        self.resize(1100, 700)

    # -- content --------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        known = list(self.classifier.classes) if self.classifier else []
        return [*known, *[f for f in self.folders if f not in known]]

    def reload(self) -> None:
        """Read the journal and group near-duplicates on a worker, then fill the grid."""
        output, db = self.output, self.corrections_db
        bundle = self.classifier.bundle if self.classifier is not None else None

        def read() -> tuple[list[QueueItem], list[str], int, str]:
            folders = sorted(
                p.name
                for p in output.iterdir()
                if p.is_dir() and not p.name.startswith(".") and p.name != UNSURE_FOLDER
            )
            if bundle is None:
                queue = build_queue(output)
            else:
                with CorrectionStore(db) as store:
                    queue = build_queue(output, bundle, store)
            return queue.items, folders, queue.adapted_on, unlike_note(queue)

        worker = FunctionWorker(read)
        worker.signals.returned.connect(self._populate)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self.workers.start(worker, self.pool)

    def _populate(self, result: tuple[list[QueueItem], list[str], int, str]) -> None:
        self.items, self.folders, self.adapted_on, unlike = result
        row_before = max(self.grid.currentRow(), 0)
        self.grid.clear()
        for item in self.items:
            extra = f"  (+{len(item.similar)} similar)" if item.similar else ""
            where = f"{item.label} → {item.suggested}?" if item.suggested else item.label
            mark = "✓ " if item.reviewed else ""
            spot = " · right?" if item.spot_check and not item.reviewed else ""
            entry = QListWidgetItem(f"{item.path.name}{extra}\n{mark}{where} · {item.confidence:.0%}{spot}")
            if item.why:
                entry.setStatusTip(item.why)
            entry.setData(PATH_ROLE, str(item.path))
            entry.setData(PATHS_ROLE, [str(p) for p in item.paths])
            entry.setToolTip("\n".join([*(str(p) for p in item.paths), *([item.why] if item.why else [])]))
            entry.setSizeHint(QSize(150, 170))
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
        self._rebuild_label_buttons()
        if self.grid.count():
            self.grid.setCurrentRow(min(row_before, self.grid.count() - 1))
        total = sum(len(i.paths) for i in self.items)
        groups = sum(1 for i in self.items if i.similar)
        grouped = f", {groups} groups of near-duplicates" if groups else ""
        changed = sum(len(i.paths) for i in self.items if i.suggested)
        suggested = f"; {changed} would move after your corrections (first)" if changed else ""
        if self.adapted_on:
            suggested += f", the model adapted to your {self.adapted_on} reviewed photos"
        spots = sum(1 for i in self.items if i.spot_check and not i.reviewed)
        spot_text = f", with a confident one every {SPOT_EVERY}th as a spot check (C if right)" if spots else ""
        self.status.setText(f"{unlike}{total} photos{grouped}{suggested}; then the least confident{spot_text}.")
        self.loaded.emit()

    def _rebuild_label_buttons(self) -> None:
        while self.label_buttons.count():
            taken = self.label_buttons.takeAt(0)
            widget = taken.widget() if taken is not None else None
            if widget is not None:
                widget.deleteLater()
        self.move_combo.clear()
        for n, label in enumerate(self.labels(), start=1):
            text = label.replace("&", "&&")  # a lone & would become a keyboard mnemonic
            button = QPushButton(f"{n}. {text}" if n <= LABEL_KEYS else text)
            button.clicked.connect(lambda _=False, lab=label: self.apply_label(lab))
            self.label_buttons.addWidget(button, (n - 1) // 3, (n - 1) % 3)
            self.move_combo.addItem(label)

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

    # -- corrections ------------------------------------------------------------------------------
    def _move_to_nth(self, index: int) -> None:
        labels = self.labels()
        if index < len(labels):
            self.apply_label(labels[index])

    def apply_label(self, label: str) -> None:
        """Move every selected photo to ``label`` (a new category is allowed)."""
        selected = [Path(p) for i in self.grid.selectedItems() for p in i.data(PATHS_ROLE)]
        if not selected or not label:
            return
        from sorter.files.corrections import CorrectionStore, correct

        output, db = self.output, self.corrections_db
        known = tuple(self.classifier.classes) if self.classifier is not None else ()

        def work() -> list[Path]:
            moved = []
            with CorrectionStore(db) as store:
                for path in selected:
                    if path.parent.name != label:
                        moved.append(correct(output, path, label, store, known).path)
            return moved

        self._run_write(work, f"Moved {len(selected)} photo(s) to {label}.")

    def confirm_selected(self) -> None:
        """The selected photos are in the right folder."""
        self._confirm([Path(p) for i in self.grid.selectedItems() for p in i.data(PATHS_ROLE)])

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
        paths = [p for p in paths if p.parent.name not in (UNSURE_FOLDER, OTHER_FOLDER)]  # confirm() refuses them
        if not paths:
            return
        from sorter.files.corrections import CorrectionStore, confirm

        output, db = self.output, self.corrections_db

        def work() -> list[Path]:
            with CorrectionStore(db) as store:
                for path in paths:
                    confirm(output, path, store)
            return []

        self._run_write(work, f"Confirmed {len(paths)} photo(s).")

    def resort_rest(self) -> None:
        """Move the photos not reviewed where the re-score now puts them (``sorter resort``)."""
        if self.classifier is None:
            return
        from sorter.files.corrections import CorrectionStore
        from sorter.jobs.resort import resort

        output, db, bundle = self.output, self.corrections_db, self.classifier.bundle

        def work() -> list[Path]:
            with CorrectionStore(db) as store:
                report = resort(output, bundle, store)
            return [new for _, new in report.moved]

        self._run_write(work, "Re-sorted the photos you had not reviewed (Undo in the main window reverts it).")

    def undo_last(self) -> None:
        from sorter.files.corrections import CorrectionStore, undo_correction

        output, db = self.output, self.corrections_db

        def work() -> list[Path]:
            with CorrectionStore(db) as store:
                return [undo_correction(output, store)]

        self._run_write(work, "Undid the last correction.")

    def _run_write(self, work: Any, done_text: str) -> None:
        worker = FunctionWorker(work)
        worker.signals.returned.connect(lambda paths: self._after_write(paths, done_text))
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self.workers.start(worker, self.write_pool)

    def _after_write(self, paths: list[Path], done_text: str) -> None:
        self.reload()
        self.status.setText(done_text)
        for path in paths:
            self.corrected.emit(path)

    def done(self, result: int) -> None:
        self.write_pool.waitForDone(30_000)
        super().done(result)
