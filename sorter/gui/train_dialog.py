"""Train a new model from a labelled folder, or retrain the current one with the corrections.

Training runs on a pool worker (fastai is imported there, never at start-up); each epoch, and
each sentence on what the time budget tried and kept, reaches the dialog as a signal, and the
dialog counts the budget down. Before it starts it lists what a retrain would use; a model that
keeps no record of its training photos (the embedded general one) says so and offers the folder
the user sorted and reviewed as the photos to train a new model from. At the end it shows the
accuracy (old against new when retraining), which recipe won, and the confusion matrix, and
offers *Use new model* or *Keep current* (which deletes the new model's files).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QPixmap, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sorter.gui import messages
from sorter.gui.widgets import FolderField
from sorter.gui.worker import FunctionWorker

if TYPE_CHECKING:
    from sorter.jobs.reviews import RetrainPlan


def retrain_plan(model: Path | None, corrections_db: Path) -> RetrainPlan | None:
    """What retraining ``model`` would learn from (None without a model)."""
    from sorter.files.corrections import CorrectionStore
    from sorter.jobs.reviews import plan_retrain

    if model is None:
        return None
    with CorrectionStore(corrections_db) as store:
        return plan_retrain(store, model)


class _Relay(QObject):
    progressed = Signal(object)


class TrainDialog(QDialog):
    """Args:
        current_model: the model the main window uses (retraining starts from it).
        plan: what a retrain of it would learn from (its family's reviews), listed before Start.
        corrections_db: the corrections store.
        models_dir: where new models are saved by default (the user's models folder).
        pool: where training runs.

        reviewed_folder: the folder the user sorted (and perhaps reviewed): its category folders
            are labelled photos to train a new model from.

    Signals:
        trained(object): training finished; the new bundle's Path.
        model_accepted(object): the user chose *Use new model*; the new bundle's Path.
        discarded(object): the user chose *Keep current*; the new bundle's Path (its files are gone).
    """

    trained = Signal(object)
    model_accepted = Signal(object)
    discarded = Signal(object)

    def __init__(
        self,
        current_model: Path | None,
        plan: RetrainPlan | None,
        corrections_db: Path,
        models_dir: Path,
        pool: QThreadPool,
        parent: QWidget | None = None,
        feature_cache: Path | None = None,
        reviewed_folder: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.feature_cache = feature_cache
        self.current_model = current_model
        self.corrections_db = corrections_db
        self.models_dir = models_dir
        self.pool = pool
        self.new_model: Path | None = None
        self._worker: FunctionWorker | None = None
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)
        self._started: float | None = None
        self._budget_s: float | None = None
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._tick)

        layout = QVBoxLayout(self)
        self.new_radio = QRadioButton("Train a new model from a folder with one sub-folder per category")
        reviews = len(plan.reviews) if plan is not None else 0
        self.retrain_radio = QRadioButton(
            f"Retrain '{current_model.stem if current_model else '—'}' with {reviews} reviewed "
            f"{'photo' if reviews == 1 else 'photos'}"
        )
        self.retrain_radio.setEnabled(
            current_model is not None and plan is not None and plan.trained_here and reviews > 0
        )
        self.plan_label = QLabel("\n".join(plan.sentences()) if plan is not None else "")
        self.plan_label.setWordWrap(True)
        self.plan_label.setContentsMargins(24, 0, 0, 0)
        self.new_radio.setChecked(True)
        layout.addWidget(self.new_radio)
        layout.addWidget(self.retrain_radio)
        layout.addWidget(self.plan_label)
        form = QFormLayout()
        offered = reviewed_folder if reviewed_folder is not None and (plan is None or not plan.trained_here) else None
        data_field = FolderField(
            str(offered or ""), "Labelled photos: a folder of category folders", "Folder of category folders"
        )
        self.data_edit = data_field.edit
        form.addRow("Photos:", data_field)
        self.name_edit = QLineEdit("my-model")
        form.addRow("New model name:", self.name_edit)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 100)
        self.epochs.setValue(12)
        form.addRow("Epochs:", self.epochs)
        self.budget = QSpinBox()
        self.budget.setRange(0, 120)
        self.budget.setValue(5)
        self.budget.setSuffix(" min")
        self.budget.setSpecialValueText("none: the default network alone")
        self.budget.setToolTip(
            "After the default network, a stronger one trains if the time left allows, then the whole network is "
            "fine-tuned for the time still left; each is kept unless it sorts the validation photos worse beyond "
            "chance. A GPU trains the stronger one at once."
        )
        form.addRow("Time budget:", self.budget)
        layout.addLayout(form)
        self.time_label = QLabel("")
        self.progress = QProgressBar()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(500)
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.confusion = QLabel()
        self.confusion.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.progress)
        layout.addWidget(self.time_label)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.result_label)
        layout.addWidget(self.confusion)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.clicked.connect(self.start)
        self.use_button = QPushButton("Use new model")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        self.keep_button = QPushButton("Keep current")
        self.keep_button.clicked.connect(self._keep)
        buttons.addWidget(self.start_button)
        buttons.addStretch()
        buttons.addWidget(self.use_button)
        buttons.addWidget(self.keep_button)
        layout.addLayout(buttons)
        self.resize(640, 620)

    def start(self) -> None:
        from sorter.names import folder_name_problem

        name = self.name_edit.text().strip()
        problem = folder_name_problem(name)
        if problem:
            messages.show_error(self, f"'{name}' cannot be a model name: {problem}.")
            return
        out = self.models_dir / f"{name}.safetensors"
        if out.exists():
            messages.show_error(self, f"A model named '{name}' already exists; choose another name.")
            return
        relay, epochs, cache = self._relay, self.epochs.value(), self.feature_cache
        budget_s = 60.0 * self.budget.value()
        if self.retrain_radio.isChecked():
            assert self.current_model is not None
            model, db = self.current_model, self.corrections_db

            def work() -> dict[str, Any]:
                from sorter.files.corrections import CorrectionStore
                from sorter.train.retrain import retrain

                with CorrectionStore(db) as store:
                    result = retrain(model, out, store, progress=relay.progressed.emit, feature_cache=cache)
                return {"path": result.new_path, "retrain": result.to_json()}
        else:
            data = Path(self.data_edit.text().strip())
            if not data.is_dir():
                messages.show_error(self, "Choose a folder of labelled photos first.")
                return

            def work() -> dict[str, Any]:
                from sorter.learn.datasets import load_data
                from sorter.model.classifier import resolve_device
                from sorter.train.ladder import STRONGER
                from sorter.train.recipe import TrainSettings
                from sorter.train.train import fit_and_export

                device = resolve_device("auto")
                on_cpu = device.type == "cpu"
                # the CLI's recipe: the default body then the stronger one within the budget on a
                # CPU, the stronger one at once on a GPU, then the fine-tune; the default body
                # alone without a budget
                strong = not on_cpu and budget_s > 0
                settings = TrainSettings(
                    epochs=epochs,
                    device=str(device),
                    architecture=STRONGER[0] if strong else "efficientnet_lite0",
                    size=STRONGER[1] if strong else 224,
                    ladder=on_cpu and budget_s > 0,
                    fine_tune_budget=budget_s > 0,
                    budget_s=budget_s if on_cpu and budget_s > 0 else None,
                )
                trained = fit_and_export(
                    load_data(data),
                    out,
                    settings,
                    progress=relay.progressed.emit,
                    feature_cache=cache,
                )
                return {"path": trained.path, "report": trained.report}

        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._worker = FunctionWorker(work)
        self._worker.signals.returned.connect(self._on_done)
        self._worker.signals.errored.connect(self._on_error)
        self.start_button.setEnabled(False)
        self.log.appendPlainText("Preparing the photos and the network…")
        self.progress.setRange(0, 0)
        self._started = time.monotonic()
        self._budget_s = budget_s if self.new_radio.isChecked() and budget_s > 0 else None
        self._tick()
        self._clock.start()
        self.pool.start(self._worker)

    def _tick(self) -> None:
        """The time left of the budget (or the time spent, without one), once a second."""
        if self._started is None:
            return
        spent = time.monotonic() - self._started
        if self._budget_s is None:
            self.time_label.setText(f"{_clock(spent)} so far")
        else:
            left = max(0.0, self._budget_s - spent)
            self.time_label.setText(f"{_clock(left)} left of the {_clock(self._budget_s)} budget")

    def _stop_clock(self) -> None:
        self._clock.stop()
        if self._started is not None:
            self.time_label.setText(f"Took {_clock(time.monotonic() - self._started)}.")
        self._started = None

    def _on_progress(self, p: Any) -> None:
        if p.note is not None:  # a step of the time budget: tried, skipped or kept
            self.log.appendPlainText(p.note)
            self._show_last_line()
            return
        self.progress.setRange(0, p.total)
        self.progress.setValue(p.step)
        if p.phase == "features":
            self.progress.setFormat("Reading the photos: %v / %m")
            return
        self.progress.setFormat(f"{PHASE_NAMES.get(p.phase, p.phase)}: epoch %v / %m")
        if p.step == 0:
            return
        metric = f", accuracy {p.metric:.1%}" if p.metric is not None else ""
        loss = f"loss {p.train_loss:.3f}" if p.train_loss is not None else ""
        self.log.appendPlainText(f"{p.phase} epoch {p.step}/{p.total}: {loss}{metric}")
        self._show_last_line()

    def _show_last_line(self) -> None:
        self.log.moveCursor(QTextCursor.MoveOperation.End)
        self.log.ensureCursorVisible()

    def _on_done(self, result: dict[str, Any]) -> None:
        self._stop_clock()
        self.new_model = Path(result["path"])
        if "retrain" in result:
            r = result["retrain"]
            self.result_label.setText(
                f"Validation accuracy: old {r['validation_accuracy']['old']:.1%} → new "
                f"{r['validation_accuracy']['new']:.1%}. Corrected photos: old {r['corrected_accuracy']['old']:.1%} "
                f"→ new {r['corrected_accuracy']['new']:.1%}."
                + (
                    " Trained in seconds on the features the model keeps of its training photos."
                    if r.get("training_data") == "replay"
                    else ""
                )
            )
        else:
            report = result["report"]
            self.result_label.setText(
                f"Validation accuracy {report['accuracy']:.1%} on {report['n']} photos. {_recipe_sentence(report)}"
            )
        png = self.new_model.with_suffix(".confusion.png")
        if png.exists():
            self.confusion.setPixmap(QPixmap(str(png)).scaledToHeight(260, Qt.TransformationMode.SmoothTransformation))
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("Done")
        # the confusion matrix shrinks the log: show its last lines (the verdict) once laid out
        QTimer.singleShot(0, self._show_last_line)
        self.use_button.setEnabled(True)
        self.trained.emit(self.new_model)

    def _on_error(self, exc: BaseException) -> None:
        self._stop_clock()
        self.start_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setFormat("Stopped")
        messages.show_error(self, exc)

    def _use(self) -> None:
        if self.new_model is not None:
            self.model_accepted.emit(self.new_model)
        self.accept()

    def _keep(self) -> None:
        """Keep the current model: a new one trained here is not wanted, so its files go."""
        if self.new_model is not None:
            for path in (self.new_model, *(self.new_model.with_suffix(s) for s in (".report.json", ".confusion.png"))):
                path.unlink(missing_ok=True)
            self.discarded.emit(self.new_model)
        self.reject()


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


PHASE_NAMES = {
    "head": "Training the last layer",
    "tail": "Training its last blocks",
    "fine-tune": "Fine-tuning the whole network",
}
STEP_NAMES = {
    "head": "the default network (EfficientNet-Lite0)",
    "tail": "its last blocks trained too",
    "lite1@240": "the stronger network (EfficientNet-Lite1)",
    "fine-tune": "the network fine-tuned on your photos",
}


def _recipe_sentence(report: dict[str, Any]) -> str:
    """Which step won, in the user's words, from the report's ``tried`` list."""
    tried = report.get("tried", [])
    if len(tried) < 2:
        return ""
    kept = next((a for a in reversed(tried) if a["kept"]), tried[0])
    parts = [f"Kept: {STEP_NAMES.get(kept['recipe'], kept['recipe'])} ({kept['valid_accuracy']:.1%})."]
    for step in tried:
        if step is kept:
            continue
        name = STEP_NAMES.get(step["recipe"], step["recipe"])
        if step["valid_accuracy"] is None:
            parts.append(f"{name[0].upper()}{name[1:]} was {step.get('note', 'not tried')}.")
        else:
            parts.append(f"{name[0].upper()}{name[1:]}: {step['valid_accuracy']:.1%}.")
    return " ".join(parts)
