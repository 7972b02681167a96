"""The main window: drop a folder, watch it sort, then review, open or undo.

Widgets only emit intents; sorting, undo and model loading run in pool workers over core objects.
torch is imported on a worker after the window is shown, so the window appears at once.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSlider,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from sorter import APP_NAME, __version__
from sorter.gui import messages
from sorter.gui.thumbnails import ThumbnailCache
from sorter.gui.widgets import FolderField
from sorter.gui.worker import FunctionWorker, GeneratorWorker
from sorter.paths import FEATURE_CACHE_NAME
from sorter.settings import Settings

if TYPE_CHECKING:
    from sorter.core.classifier import Classifier
    from sorter.core.sorting import SortEvent, SortOptions, SortSummary

OPEN_MODEL = "Open model file…"


class DropZone(QFrame):
    """A large target for folders; clicking it opens a folder chooser.

    Signals:
        folders_dropped(list): folders dropped or chosen, as Paths.
    """

    folders_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setObjectName("dropZone")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setMinimumHeight(130)
        self.setStyleSheet(
            "#dropZone { border: 2px dashed palette(mid); border-radius: 10px; }"
            '#dropZone[hover="true"] { border-color: palette(highlight); }'
        )
        layout = QVBoxLayout(self)
        self.label = QLabel("Drop a folder of photos here")
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        font = self.label.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        self.label.setFont(font)
        self.choose = QPushButton("Choose folder…")
        self.choose.clicked.connect(self._choose)
        layout.addStretch()
        layout.addWidget(self.label)
        row = QHBoxLayout()
        row.addStretch()
        row.addWidget(self.choose)
        row.addStretch()
        layout.addLayout(row)
        layout.addStretch()

    @staticmethod
    def folders_in(event: QDragEnterEvent | QDropEvent) -> list[Path]:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        return [Path(u.toLocalFile()) for u in urls if u.isLocalFile() and Path(u.toLocalFile()).is_dir()]

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self.folders_in(event):
            self.setProperty("hover", True)
            self.style().polish(self)
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: Any) -> None:
        self.setProperty("hover", False)
        self.style().polish(self)

    def dropEvent(self, event: QDropEvent) -> None:
        self.setProperty("hover", False)
        self.style().polish(self)
        folders = self.folders_in(event)
        if folders:
            event.acceptProposedAction()
            self.folders_dropped.emit(folders)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of photos")
        if folder:
            self.folders_dropped.emit([Path(folder)])


class MainWindow(QMainWindow):
    """Args:
        settings: the user's options (read and updated; the app persists them).
        pool: thread pool for sorting, model loading and thumbnails.
        corrections_db: where the review dialog logs corrections.
        model_dirs: folders searched for model bundles, user folder first.
        cache_dir: where exported ONNX graphs and training features are kept; None recomputes them.

    Signals:
        run_finished(object): a folder finished sorting (its SortSummary).
        models_ready: the model list and device choice are filled in (torch is loaded).
    """

    run_finished = Signal(object)
    models_ready = Signal()

    def __init__(
        self,
        settings: Settings,
        pool: QThreadPool,
        *,
        corrections_db: Path,
        model_dirs: list[Path],
        cache_dir: Path | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.feature_cache = cache_dir / FEATURE_CACHE_NAME if cache_dir is not None else None
        self.settings = settings
        self.pool = pool
        self.corrections_db = corrections_db
        self.model_dirs = model_dirs
        self.queue: list[Path] = []
        self.worker: GeneratorWorker | None = None
        self.last_summary: SortSummary | None = None
        self._classifiers: dict[tuple[str, str], Classifier] = {}
        self._models_ready = False
        self._lock = threading.Lock()
        self._started = 0.0
        self._items: dict[str, QTreeWidgetItem] = {}
        self._loaders: list[Any] = []
        self.thumbs = ThumbnailCache(pool, 48, self)
        self.thumbs.ready.connect(self._on_thumbnail)
        self.setWindowTitle(f"{APP_NAME} {__version__}")
        self._build()
        self._load_models_in_background()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        self.drop_zone = DropZone()
        self.drop_zone.folders_dropped.connect(self.enqueue)
        layout.addWidget(self.drop_zone)

        form = QFormLayout()
        source_row = QHBoxLayout()
        self.source_edit = QLineEdit(self.settings.last_source)
        self.source_edit.setPlaceholderText("Folder of photos")
        self.recent_button = QPushButton("Recent")
        self.recent_menu = QMenu(self.recent_button)
        self.recent_button.setMenu(self.recent_menu)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        source_row.addWidget(self.source_edit)
        source_row.addWidget(self.recent_button)
        form.addRow("Photos:", source_row)
        output_field = FolderField(
            self.settings.last_output, "Default: a folder beside it named '… (sorted)'", "Sort into which folder?"
        )
        self.output_edit = output_field.edit
        form.addRow("Sorted into:", output_field)

        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Copy photos (originals stay)", "copy")
        self.mode_combo.addItem("Move photos", "move")
        self.mode_combo.setCurrentIndex(1 if self.settings.mode == "move" else 0)
        form.addRow("Mode:", self.mode_combo)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.addItem("Loading models…")
        self.model_combo.setEnabled(False)
        self.model_combo.activated.connect(self._model_chosen)
        self.model_info = QLabel("")
        self.model_info.setWordWrap(True)
        model_row.addWidget(self.model_combo, 2)
        model_row.addWidget(self.model_info, 3)
        form.addRow("Model:", model_row)

        self.device_combo = QComboBox()
        self.device_combo.addItem("Auto", "auto")
        self.device_combo.addItem("CPU", "cpu")
        self.device_combo.addItem("GPU (CUDA)", "cuda")
        self.device_combo.setCurrentIndex(["auto", "cpu", "cuda"].index(self.settings.device))
        form.addRow("Device:", self.device_combo)

        precision_row = QHBoxLayout()
        self.precision_slider = QSlider(Qt.Orientation.Horizontal)
        self.precision_slider.setRange(80, 99)
        self.precision_slider.setValue(round(self.settings.precision * 100))
        self.precision_slider.setToolTip(
            "Photos go into a category only when the model is at least this often right there, as measured "
            "on its own validation photos; the rest go to _unsure. (Models made by older versions use their "
            "single default threshold.)"
        )
        self.precision_label = QLabel()
        self.precision_slider.valueChanged.connect(self._precision_changed)
        self._precision_changed(self.precision_slider.value())
        precision_row.addWidget(self.precision_slider)
        precision_row.addWidget(self.precision_label)
        form.addRow("Sort only when:", precision_row)
        self.other_check = QCheckBox("Put photos that fit no category in _other (not _unsure)")
        self.other_check.setChecked(self.settings.other_folder)
        form.addRow("", self.other_check)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.train_button = QPushButton("Train…")
        self.train_button.setToolTip("Train a model from labelled photos, or retrain with your corrections")
        self.train_button.clicked.connect(self.open_train_dialog)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.train_button)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.status = QLabel("Ready.")
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.results = QTreeWidget()
        self.results.setHeaderLabels(["Photo", "Folder", "Confidence"])
        self.results.setIconSize(QSize(48, 48))
        self.results.setRootIsDecorated(False)
        self.results.setUniformRowHeights(True)
        self.results.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.results, 1)

        summary_row = QHBoxLayout()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.open_button = QPushButton("Open output folder")
        self.review_button = QPushButton("Review…")
        self.undo_button = QPushButton("Undo")
        for b in (self.open_button, self.review_button, self.undo_button):
            b.setEnabled(False)
        self.open_button.clicked.connect(self.open_output)
        self.review_button.clicked.connect(self.review)
        self.undo_button.clicked.connect(self.undo)
        summary_row.addWidget(self.summary, 1)
        summary_row.addWidget(self.open_button)
        summary_row.addWidget(self.review_button)
        summary_row.addWidget(self.undo_button)
        layout.addLayout(summary_row)
        self.setCentralWidget(central)
        self.statusBar().showMessage("Loading the image classifier…")
        self.resize(820, 720)

    # -- models and device (torch is imported here, on a worker) ----------------------------------
    def _load_models_in_background(self) -> None:
        def discover() -> tuple[list[tuple[Path, str]], bool]:
            import torch

            from sorter.errors import SorterError
            from sorter.model.bundle import describe, read_config

            found = []
            for folder in self.model_dirs:
                for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
                    try:
                        info = describe(read_config(path))
                    except SorterError as exc:
                        found.append((path, f"unusable: {exc}"))
                        continue
                    acc = info["accuracy"]
                    text = f"{len(info['classes'])} classes: {', '.join(info['classes'][:6])}"
                    text += "…" if len(info["classes"]) > 6 else ""
                    if acc is not None:
                        text += f" — validation accuracy {acc:.0%}"
                    found.append((path, text))
            return found, bool(torch.cuda.is_available())

        worker = FunctionWorker(discover)
        worker.signals.returned.connect(self._models_loaded)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self._loaders.append(worker)
        self.pool.start(worker)

    def _models_loaded(self, result: tuple[list[tuple[Path, str]], bool]) -> None:
        models, has_cuda = result
        self.model_combo.clear()
        for path, info in models:
            self.model_combo.addItem(path.stem, str(path))
            self.model_combo.setItemData(self.model_combo.count() - 1, info, Qt.ItemDataRole.ToolTipRole)
        self.model_combo.addItem(OPEN_MODEL, None)
        self.model_combo.setEnabled(True)
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count())]
        want = Path(self.settings.model).stem
        self.model_combo.setCurrentIndex(names.index(want) if want in names else 0)
        self._model_chosen(self.model_combo.currentIndex())
        gpu = self.device_combo.model().item(2)  # type: ignore[attr-defined]
        if not has_cuda:
            gpu.setEnabled(False)
            gpu.setToolTip("No CUDA GPU was found on this computer.")
            if self.device_combo.currentIndex() == 2:
                self.device_combo.setCurrentIndex(0)
        self.statusBar().showMessage("GPU (CUDA) available." if has_cuda else "No GPU found: sorting on the CPU.")
        self._models_ready = True
        self.models_ready.emit()
        if self.queue and self.worker is None:
            self.start()

    def _model_chosen(self, index: int) -> None:
        if self.model_combo.itemData(index) is None and self.model_combo.itemText(index) == OPEN_MODEL:
            path, _ = QFileDialog.getOpenFileName(self, "Open a Sorter model", "", "Sorter models (*.safetensors)")
            if path:
                self.model_combo.insertItem(0, Path(path).stem, path)
                self.model_combo.setCurrentIndex(0)
                index = 0
            else:
                self.model_combo.setCurrentIndex(0)
                index = 0
        tip = self.model_combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
        self.model_info.setText(str(tip or ""))

    def model_path(self) -> Path | None:
        data = self.model_combo.currentData()
        return Path(data) if data else None

    def _precision_changed(self, value: int) -> None:
        self.precision_label.setText(f"at least {value}% sure")

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.source_edit.setText(f))
        if not self.settings.recent_folders:
            self.recent_menu.addAction("No recent folders").setEnabled(False)

    # -- sorting --------------------------------------------------------------------------------
    def enqueue(self, folders: list[Path]) -> None:
        """Dropped folders queue up; the first starts at once when nothing is running."""
        self.queue.extend(folders)
        if self.worker is None:
            self.start()

    def start(self) -> None:
        if self.worker is not None:
            return
        if not self.queue:
            text = self.source_edit.text().strip()
            if not text:
                messages.show_error(self, "Choose or drop a folder of photos first.")
                return
            self.queue.append(Path(text))
        model = self.model_path()
        if model is None and not self._models_ready:
            # A folder dropped during start-up waits for the models instead of being refused.
            self.status.setText(f"Loading the models; {self.queue[0].name} will start as soon as they are ready…")
            return
        if model is None:
            messages.show_error(self, "No model is available: open a Sorter model (.safetensors) first.")
            self.queue.clear()
            return
        source = self.queue.pop(0)
        self.source_edit.setText(str(source))
        from sorter.core.sorting import SortOptions, default_output

        output_text = self.output_edit.text().strip()
        output = Path(output_text) if output_text else default_output(source)
        options = SortOptions(
            source=source,
            output=output,
            move=self.mode_combo.currentData() == "move",
            precision=self.precision_slider.value() / 100,
            other_folder=self.other_check.isChecked(),
        )
        device = str(self.device_combo.currentData())
        self._remember(source, output, model, device, options)

        def job():  # type: ignore[no-untyped-def]
            from dataclasses import replace

            from sorter.core.corrections import reviewed_photos
            from sorter.core.sorting import sort_folder

            reviewed = reviewed_photos(self.corrections_db)  # off the GUI thread: it reads a database
            return sort_folder(replace(options, reviewed=reviewed), self.classifier(model, device))

        self.worker = GeneratorWorker(job)
        self.worker.signals.yielded.connect(self._on_event)
        self.worker.signals.returned.connect(self._on_done)
        self.worker.signals.errored.connect(self._on_error)
        self.worker.signals.aborted.connect(self._on_aborted)
        self.worker.signals.finished.connect(self._on_finished)
        self.results.clear()
        self._items.clear()
        self.progress.setRange(0, 0)
        self.status.setText(f"Preparing {source.name}…")
        self.summary.setText("")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        for b in (self.open_button, self.review_button, self.undo_button):
            b.setEnabled(False)
        self._started = time.monotonic()
        self.pool.start(self.worker)

    def classifier(self, model: Path, device: str) -> Classifier:
        """Load once per model and device (called on the worker thread)."""
        from sorter.core.classifier import Classifier

        key = (str(model), device)
        with self._lock:
            if key not in self._classifiers:
                self._classifiers[key] = Classifier.load(model, device, cache_dir=self.cache_dir)
            return self._classifiers[key]

    def cancel(self) -> None:
        if self.worker is not None:
            self.queue.clear()
            self.worker.quit()
            self.status.setText("Stopping after the current photo…")

    def _on_event(self, event: SortEvent) -> None:
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.index)
        elapsed = max(event.elapsed, 1e-6)
        rate = event.index / elapsed
        left = (event.total - event.index) / rate if rate > 0 else 0.0
        self.status.setText(
            f"{event.index} of {event.total} photos · {rate:.1f} photos/s · about {_duration(left)} left"
        )
        folder = event.labels[0] if event.labels else ("failed" if event.status == "failed" else event.status)
        confidence = f"{event.confidence:.0%}" if event.labels else (event.error or "")
        item = QTreeWidgetItem([event.source.name, folder, confidence])
        item.setToolTip(0, str(event.source))
        if event.error:
            item.setToolTip(2, event.error)
        self.results.addTopLevelItem(item)
        if event.status != "failed":
            shown = event.destinations[0] if event.destinations else event.source
            self._items[str(shown)] = item
            self.thumbs.request(shown)

    def _on_thumbnail(self, key: str, pixmap: QPixmap) -> None:
        item = self._items.get(key)
        if item is not None and not pixmap.isNull():
            item.setIcon(0, QIcon(pixmap))

    def _on_done(self, summary: SortSummary) -> None:
        self.last_summary = summary
        per = ", ".join(f"{k} {v}" for k, v in sorted(summary.per_label.items()))
        self.summary.setText(
            f"Sorted {summary.classified} of {summary.total} photos into {summary.output} "
            f"({summary.unsure} unsure, {summary.skipped} skipped, {summary.failed} failed) "
            f"in {summary.seconds:.1f} s on {summary.device}. {per}"
        )
        notes = " ".join(f"Note: {n[0].upper()}{n[1:]}." for n in summary.notes)
        self.status.setText(f"Done. {notes}".strip())
        self.status.setWordWrap(True)
        for b in (self.open_button, self.review_button, self.undo_button):
            b.setEnabled(True)
        self.run_finished.emit(summary)

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText("Stopped.")
        messages.show_error(self, exc)

    def _on_aborted(self) -> None:
        self.status.setText("Cancelled. Start the same folder again to finish the rest.")

    def _on_finished(self) -> None:
        self.worker = None
        self.progress.setRange(0, max(self.progress.maximum(), 1))
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.queue:
            self.start()

    def _remember(self, source: Path, output: Path, model: Path, device: str, options: SortOptions) -> None:
        s = self.settings
        s.last_source, s.last_output, s.model = str(source), self.output_edit.text().strip(), model.stem
        s.precision = options.precision if options.precision is not None else s.precision
        s.other_folder = options.other_folder
        s.device = "cuda" if device == "cuda" else "cpu" if device == "cpu" else "auto"
        s.mode = "move" if self.mode_combo.currentData() == "move" else "copy"
        s.recent_folders = [str(source), *[f for f in s.recent_folders if f != str(source)]][:10]

    # -- after a run ------------------------------------------------------------------------------
    def open_output(self) -> None:
        if self.last_summary is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.last_summary.output)))

    def review(self) -> None:
        if self.last_summary is None:
            return
        from sorter.gui.review_dialog import ReviewDialog

        model = self.model_path()
        classifier = self._classifiers.get((str(model), str(self.device_combo.currentData())))
        dialog = ReviewDialog(self.last_summary.output, self.corrections_db, self.pool, classifier, self)
        dialog.show()
        self.review_dialog = dialog

    def open_train_dialog(self) -> None:
        from sorter.core.corrections import CorrectionStore
        from sorter.gui.train_dialog import TrainDialog

        try:
            with CorrectionStore(self.corrections_db) as store:
                count = len(store)
        except Exception as exc:
            messages.show_error(self, exc)
            return
        dialog = TrainDialog(
            self.model_path(),
            count,
            self.corrections_db,
            self.model_dirs[0],
            self.pool,
            self,
            feature_cache=self.feature_cache,
        )
        dialog.model_accepted.connect(self.use_model)
        dialog.show()
        self.train_dialog = dialog

    def use_model(self, path: Path) -> None:
        """Add a (new) bundle to the picker and select it; the old one stays listed."""
        index = self.model_combo.findData(str(path))
        if index < 0:
            self.model_combo.insertItem(0, path.stem, str(path))
            index = 0
        self.model_combo.setCurrentIndex(index)
        self.model_info.setText(f"New model: {path.name}")

    def undo(self) -> None:
        if self.last_summary is None:
            return
        from sorter.core.undo import undo_last_run

        output = self.last_summary.output
        worker = FunctionWorker(lambda: undo_last_run(output))
        worker.signals.returned.connect(self._undone)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self._loaders.append(worker)
        self.undo_button.setEnabled(False)
        self.pool.start(worker)

    def _undone(self, report: Any) -> None:
        kept = f"; kept {len(report.kept)} changed copies" if report.kept else ""
        self.summary.setText(f"Undone: removed {report.removed} copies, restored {report.restored} photos{kept}.")
        self.results.clear()

    def closeEvent(self, event: Any) -> None:
        if self.worker is not None:
            self.worker.quit()
        self.pool.waitForDone(30_000)
        super().closeEvent(event)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
