"""The main window: choose a folder, set the choices, *Start*; then review, open or undo.

Choosing or dropping a folder fills the form, and *Start* sorts (a folder dropped while a sort
runs queues behind it). Widgets only emit intents; sorting, undo and model loading run in pool
workers over core objects. torch is imported on a worker after the window is shown, so the
window appears at once. After a run the window follows its folder: the review's moves, an undo,
and whether anything is left to review or undo.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QThreadPool, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QProgressBar, QPushButton, QVBoxLayout, QWidget

from sorter import APP_NAME, __version__
from sorter.gui import messages
from sorter.gui.results import ResultsTable
from sorter.gui.sort_form import ModelChoice, SortForm
from sorter.gui.undo_flow import ask_and_undo, folder_state, undone_sentence
from sorter.gui.widgets import DropZone
from sorter.gui.worker import FunctionWorker, GeneratorWorker, WorkerSet
from sorter.paths import FEATURE_CACHE_NAME
from sorter.settings import Settings

if TYPE_CHECKING:
    from sorter.files.undo import UndoReport
    from sorter.jobs.events import SortEvent, SortSummary
    from sorter.model.classifier import Classifier


class MainWindow(QMainWindow):
    """Args:
        settings: the user's options (read, and updated as they change).
        pool: thread pool for sorting, model loading and thumbnails.
        corrections_db: where the review dialog logs corrections.
        model_dirs: folders searched for model bundles, user folder first.
        cache_dir: where exported ONNX graphs and training features are kept; None recomputes them.
        save_settings: called with the settings whenever a choice changes (the app writes them).

    Signals:
        run_finished(object): a folder finished sorting (its SortSummary).
        models_ready: the model list and device choice are filled in (torch is loaded).
        folder_changed: the sorted folder changed after its run (a review's write, an undo).
    """

    run_finished = Signal(object)
    models_ready = Signal()
    folder_changed = Signal()

    def __init__(
        self,
        settings: Settings,
        pool: QThreadPool,
        *,
        corrections_db: Path,
        model_dirs: list[Path],
        cache_dir: Path | None = None,
        save_settings: Callable[[Settings], None] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.cache_dir = cache_dir
        self.feature_cache = cache_dir / FEATURE_CACHE_NAME if cache_dir is not None else None
        self.settings = settings
        self.save_settings = save_settings or (lambda s: None)
        self.pool = pool
        self.corrections_db = corrections_db
        self.model_dirs = model_dirs
        self.queue: list[Path] = []
        self.worker: GeneratorWorker | None = None
        self.last_summary: SortSummary | None = None
        self.output: Path | None = None
        """The folder the last run sorted into: what Review, Undo and Open act on."""
        self._classifiers: dict[tuple[str, str], Classifier] = {}
        self._models_ready = False
        self._start_when_ready = False
        self._lock = threading.Lock()
        self.workers = WorkerSet(self)
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

        self.form = SortForm(self.settings)
        self.form.changed.connect(lambda: self.save_settings(self.settings))
        layout.addWidget(self.form)
        # the form's fields, by the names the window's code and its tests use
        self.source_edit, self.output_edit = self.form.source_edit, self.form.output_edit
        self.recent_menu, self.mode_combo = self.form.recent_menu, self.form.mode_combo
        self.model_combo, self.model_info = self.form.model_combo, self.form.model_info
        self.device_combo, self.precision_slider = self.form.device_combo, self.form.precision_slider
        self.other_check = self.form.other_check

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
        self.status = QLabel("Drop a folder of photos, or choose one; then check the choices and press Start.")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.results = ResultsTable(self.pool)
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

        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)  # the platform's own quit, on macOS
        quit_action.triggered.connect(self.close)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(quit_action)
        self.quit_action = quit_action
        self.statusBar().showMessage("Loading the image classifier…")
        self.resize(860, 760)

    # -- models and device (torch is imported here, on a worker) ----------------------------------
    def _load_models_in_background(self) -> None:
        from functools import partial

        from sorter.gui.sort_form import discover_models

        worker = FunctionWorker(partial(discover_models, self.model_dirs))
        worker.signals.returned.connect(self._models_loaded)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self.workers.start(worker, self.pool)

    def _models_loaded(self, result: tuple[list[ModelChoice], bool]) -> None:
        models, has_cuda = result
        self.form.fill_models(models, has_cuda)
        self.statusBar().showMessage("GPU (CUDA) available." if has_cuda else "No GPU found: sorting on the CPU.")
        self._models_ready = True
        self.models_ready.emit()
        if self._start_when_ready and self.worker is None:
            self._start_when_ready = False
            self.start()

    def model_path(self) -> Path | None:
        return self.form.model_path()

    def _fill_recent(self) -> None:
        self.form.fill_recent()

    # -- sorting --------------------------------------------------------------------------------
    def enqueue(self, folders: list[Path]) -> None:
        """Dropped or chosen folders: the first fills the form (Start sorts it, the others after
        it); while a sort runs they queue behind it, with the same choices."""
        if not folders:
            return
        names = ", ".join(f.name for f in folders)
        if self.worker is not None:
            self.queue.extend(folders)
            self.status.setText(f"Queued {names}: sorted after the current folder, with the same choices.")
            return
        first, *rest = folders
        self.source_edit.setText(str(first))
        self.queue = rest
        more = f", then {len(rest)} more {'folder' if len(rest) == 1 else 'folders'}" if rest else ""
        self.status.setText(f"Ready to sort {first.name}{more}: check the choices, then press Start.")
        self.start_button.setFocus()

    def start(self) -> None:
        if self.worker is not None:
            return
        text = self.source_edit.text().strip()
        if not text:
            messages.show_error(self, "Choose or drop a folder of photos first.")
            return
        source = Path(text)
        model = self.model_path()
        if model is None and not self._models_ready:
            self._start_when_ready = True  # Start during start-up waits for the models
            self.status.setText(f"Loading the models; {source.name} will start as soon as they are ready…")
            return
        if model is None:
            messages.show_error(self, "No model is available: open a Sorter model (.safetensors) first.")
            return
        options = self.form.options(source)
        output = options.output
        device = str(self.device_combo.currentData())
        self.form.remember_source(source)

        def job():  # type: ignore[no-untyped-def]
            from dataclasses import replace

            from sorter.jobs.reviews import reviews_for_sorting
            from sorter.jobs.sorting import sort_folder

            # off the GUI thread: it reads a database
            reviewed, kept = reviews_for_sorting(self.corrections_db, model, output)
            return sort_folder(replace(options, reviewed=reviewed, kept=kept), self.classifier(model, device))

        self.worker = GeneratorWorker(job)
        self.worker.signals.yielded.connect(self._on_event)
        self.worker.signals.returned.connect(self._on_done)
        self.worker.signals.errored.connect(self._on_error)
        self.worker.signals.aborted.connect(self._on_aborted)
        self.worker.signals.finished.connect(self._on_finished)
        self.results.start_over()
        self.progress.setRange(0, 0)
        self.status.setText(f"Preparing {source.name}…")
        self.summary.setText("")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        for b in (self.open_button, self.review_button, self.undo_button):
            b.setEnabled(False)
        self.pool.start(self.worker)

    def classifier(self, model: Path, device: str) -> Classifier:
        """Load once per model and device (called on the worker thread)."""
        from sorter.model.classifier import Classifier

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
        self.results.add_event(event)

    def _on_done(self, summary: SortSummary) -> None:
        self.last_summary = summary
        self.output = summary.output
        per = ", ".join(f"{k} {v}" for k, v in sorted(summary.per_label.items()))
        self.summary.setText(f"{summary.sentence()} {per}")
        notes = " ".join(f"Note: {n[0].upper()}{n[1:]}." for n in summary.notes)
        self.status.setText(f"Done. {notes}".strip())
        self.refresh_folder_actions()
        shifted = bool(summary.shift and summary.shift.get("shifted"))
        # photos unlike the model's: the review is the next step, so it is offered at once
        self.review_button.setText("Review 20 of them now…" if shifted else "Review…")
        self.review_button.setDefault(shifted)
        if shifted:
            self.review_button.setFocus()
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
            self.source_edit.setText(str(self.queue.pop(0)))
            self.start()

    # -- after a run ------------------------------------------------------------------------------
    def refresh_folder_actions(self) -> None:
        """Review, Undo and Open as the folder now allows (a review needs photos in it, an undo
        a run that is still in it)."""
        state = folder_state(self.output) if self.output is not None else None
        self.open_button.setEnabled(state is not None)
        self.review_button.setEnabled(state is not None and state.photos > 0)
        self.undo_button.setEnabled(state is not None and state.undoable)

    def open_output(self) -> None:
        if self.output is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.output)))

    def review(self) -> None:
        if self.output is None:
            return
        from sorter.gui.review_dialog import ReviewDialog

        model = self.model_path()
        classifier = self._classifiers.get((str(model), str(self.device_combo.currentData())))
        dialog = ReviewDialog(self.output, self.corrections_db, self.pool, classifier, self)
        dialog.moved.connect(self.results.moved)
        dialog.changed.connect(self._folder_changed)
        dialog.show()
        self.review_dialog = dialog

    def _folder_changed(self) -> None:
        self.refresh_folder_actions()
        self.folder_changed.emit()

    def open_train_dialog(self) -> None:
        from sorter.gui.train_dialog import TrainDialog, retrain_plan

        model = self.model_path()
        try:
            plan = retrain_plan(model, self.corrections_db)
        except Exception as exc:
            messages.show_error(self, exc)
            return
        dialog = TrainDialog(
            model,
            plan,
            self.corrections_db,
            self.model_dirs[0],
            self.pool,
            self,
            feature_cache=self.feature_cache,
            reviewed_folder=self.output,
        )
        dialog.trained.connect(lambda path: self.form.add_model(path, select=False))
        dialog.model_accepted.connect(self.form.use_model)
        dialog.discarded.connect(lambda path: self.status.setText(f"Kept the current model; {path.name} was deleted."))
        dialog.show()
        self.train_dialog = dialog

    def undo(self) -> None:
        if self.output is not None:
            ask_and_undo(self, self.output, self.corrections_db, self.pool, self.workers, self._undone)

    def _undone(self, report: UndoReport, placements: list[Any]) -> None:
        self.summary.setText(undone_sentence(report))
        self.results.show_placements(placements)
        self._folder_changed()

    def closeEvent(self, event: Any) -> None:
        if self.worker is not None:
            self.worker.quit()
        self.pool.waitForDone(30_000)
        self.save_settings(self.settings)
        super().closeEvent(event)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"
