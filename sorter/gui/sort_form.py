"""The form the user fills in before *Start*: photos, output folder, copy or move, model, device,
how sure the model must be, and where photos that fit no category go. It reads its initial
values from the settings, writes them back as they change (:attr:`SortForm.changed`), and the
window reads the choices back when a run starts (:meth:`SortForm.options`).

The slider means what the model can promise: for a calibrated model, how often the photos it
sorts must be right (a precision measured on its validation photos); for a model without
calibration (the embedded general one), the score its top category must reach, said as such."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSlider,
    QWidget,
)

from sorter.gui.widgets import FolderField
from sorter.paths import default_output
from sorter.settings import Settings

if TYPE_CHECKING:
    from sorter.jobs.sorting import SortOptions

OPEN_MODEL = "Open model file…"
CALIBRATION_ROLE = Qt.ItemDataRole.UserRole + 1
"""Per model in the picker: (calibrated, its default threshold)."""


@dataclass(frozen=True)
class ModelChoice:
    """A model the picker lists: its file, one line about it, and whether it is calibrated."""

    path: Path
    summary: str
    calibrated: bool = True
    threshold: float = 0.5


class SortForm(QWidget):
    """Signals:
    changed: a choice changed (the window writes the settings at once).
    """

    changed = Signal()

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self._ready = False
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        source_row = QHBoxLayout()
        self.source_edit = QLineEdit(self.settings.last_source)
        self.source_edit.setPlaceholderText("Drop a folder above, or choose one")
        self.source_edit.textChanged.connect(self._source_changed)
        self.recent_button = QPushButton("Recent")
        self.recent_menu = QMenu(self.recent_button)
        self.recent_button.setMenu(self.recent_menu)
        self.recent_menu.aboutToShow.connect(self.fill_recent)
        source_row.addWidget(self.source_edit)
        source_row.addWidget(self.recent_button)
        form.addRow("Photos:", source_row)
        output_field = FolderField(
            self.settings.last_output, "Default: a folder beside it named '… (sorted)'", "Sort into which folder?"
        )
        self.output_edit = output_field.edit
        self.output_edit.editingFinished.connect(self._remember_fields)
        form.addRow("Sorted into:", output_field)

        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Copy photos (originals stay)", "copy")
        self.mode_combo.addItem("Move photos", "move")
        self.mode_combo.setCurrentIndex(1 if self.settings.mode == "move" else 0)
        self.mode_combo.currentIndexChanged.connect(self._remember_fields)
        form.addRow("Mode:", self.mode_combo)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.addItem("Loading models…")
        self.model_combo.setEnabled(False)
        self.model_combo.activated.connect(self._model_chosen)
        # the line beside the picker follows it however it changes (a click, a new model, a script)
        self.model_combo.currentIndexChanged.connect(self._show_model_info)
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
        self.device_combo.currentIndexChanged.connect(self._remember_fields)
        form.addRow("Device:", self.device_combo)

        precision_row = QHBoxLayout()
        self.calibrated = True
        self.precision_slider = QSlider(Qt.Orientation.Horizontal)
        self.precision_label = QLabel()
        self.precision_slider.valueChanged.connect(self._precision_changed)
        self._slider_for(calibrated=True, threshold=0.5)
        precision_row.addWidget(self.precision_slider, 2)
        precision_row.addWidget(self.precision_label, 3)
        form.addRow("Sort only when:", precision_row)
        self.other_check = QCheckBox("Put photos that fit no category in _other (not _unsure)")
        self.other_check.setChecked(self.settings.other_folder)
        self.other_check.toggled.connect(self._remember_fields)
        form.addRow("", self.other_check)
        self._source_changed(self.source_edit.text())
        self._ready = True

    def fill_models(self, models: list[ModelChoice], has_cuda: bool) -> None:
        """The model list and whether the GPU entry can be chosen."""
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for choice in models:
            self._add_model(choice, self.model_combo.count())
        self.model_combo.blockSignals(False)
        self.model_combo.addItem(OPEN_MODEL, None)
        self.model_combo.setEnabled(True)
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count() - 1)]
        want = Path(self.settings.model).stem
        self.model_combo.setCurrentIndex(names.index(want) if want in names else 0)
        if models:
            self._show_model_info(self.model_combo.currentIndex())
        else:  # never a file dialog the user did not ask for (it would block a self-check, too)
            self.model_info.setText("No model was found: open a model file, or train one with Train….")
        gpu = self.device_combo.model().item(2)  # type: ignore[attr-defined]
        if not has_cuda:
            gpu.setEnabled(False)
            gpu.setToolTip("No CUDA GPU was found on this computer.")
            if self.device_combo.currentIndex() == 2:
                self.device_combo.setCurrentIndex(0)

    def _add_model(self, choice: ModelChoice, at: int) -> None:
        self.model_combo.insertItem(at, choice.path.stem, str(choice.path))
        self.model_combo.setItemData(at, choice.summary, Qt.ItemDataRole.ToolTipRole)
        self.model_combo.setItemData(at, (choice.calibrated, choice.threshold), CALIBRATION_ROLE)

    def _model_chosen(self, index: int) -> None:
        if self.model_combo.itemData(index) is None and self.model_combo.itemText(index) == OPEN_MODEL:
            path, _ = QFileDialog.getOpenFileName(self, "Open a Sorter model", "", "Sorter models (*.safetensors)")
            if path:
                self.use_model(Path(path))
                index = self.model_combo.currentIndex()
            else:
                self.model_combo.setCurrentIndex(0)
                index = 0
        self._show_model_info(index)
        self._remember_fields()

    def _show_model_info(self, index: int) -> None:
        tip = self.model_combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
        self.model_info.setText(str(tip or ""))
        calibrated, threshold = self.model_combo.itemData(index, CALIBRATION_ROLE) or (True, 0.5)
        self._slider_for(calibrated=bool(calibrated), threshold=float(threshold))

    def _slider_for(self, *, calibrated: bool, threshold: float) -> None:
        """Make the slider the one number the chosen model really applies."""
        self.calibrated = calibrated
        self.precision_slider.blockSignals(True)
        if calibrated:
            self.precision_slider.setRange(80, 99)
            self.precision_slider.setValue(round(self.settings.precision * 100))
            self.precision_slider.setToolTip(
                "A photo goes into a category only where the model is right at least this often, as measured "
                "on its own validation photos; the rest go to _unsure."
            )
        else:
            self.precision_slider.setRange(5, 99)
            chosen = self.settings.threshold if self.settings.threshold is not None else threshold
            self.precision_slider.setValue(round(chosen * 100))
            self.precision_slider.setToolTip(
                "This model has no calibration: nobody measured how often it is right on photos like yours. "
                "A photo goes into a category when the model gives that category at least this score; "
                "the rest go to _unsure."
            )
        self.precision_slider.blockSignals(False)
        self._precision_changed(self.precision_slider.value())

    def model_path(self) -> Path | None:
        data = self.model_combo.currentData()
        return Path(data) if data else None

    def _precision_changed(self, value: int) -> None:
        if self.calibrated:
            self.precision_label.setText(f"at least {value}% sure")
        else:
            self.precision_label.setText(f"its score is at least {value}% (not calibrated)")
        self._remember_fields()

    def _source_changed(self, text: str) -> None:
        """The output's hint names the folder that a blank output means, for this source."""
        folder = Path(text.strip()) if text.strip() else None
        hint = f"Default: {default_output(folder)}" if folder is not None else "Default: a folder beside it"
        self.output_edit.setPlaceholderText(hint)

    def options(self, source: Path) -> SortOptions:
        """The choices for sorting ``source`` (the slider as a precision or a fixed threshold,
        whichever the model applies)."""
        from sorter.jobs.sorting import SortOptions

        output_text = self.output_edit.text().strip()
        value = self.precision_slider.value() / 100
        return SortOptions(
            source=source,
            output=Path(output_text) if output_text else default_output(source),
            move=self.mode_combo.currentData() == "move",
            precision=value if self.calibrated else None,
            threshold=None if self.calibrated else value,
            other_folder=self.other_check.isChecked(),
        )

    def _remember_fields(self, *_: object) -> None:
        """Every choice is kept the moment it is made (a crash loses none)."""
        if not self._ready:
            return
        s = self.settings
        s.last_output = self.output_edit.text().strip()
        s.mode = "move" if self.mode_combo.currentData() == "move" else "copy"
        device = str(self.device_combo.currentData())
        s.device = "cuda" if device == "cuda" else "cpu" if device == "cpu" else "auto"
        s.other_folder = self.other_check.isChecked()
        if self.calibrated:
            s.precision = self.precision_slider.value() / 100
        else:
            s.threshold = self.precision_slider.value() / 100
        path = self.model_path()
        if path is not None:
            s.model = path.stem
        self.changed.emit()

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.source_edit.setText(f))
        if not self.settings.recent_folders:
            self.recent_menu.addAction("No recent folders").setEnabled(False)

    def add_model(self, path: Path, *, select: bool = True) -> None:
        """List a (new) bundle in the picker, first; the others stay listed."""
        index = self.model_combo.findData(str(path))
        if index < 0:
            self._add_model(_describe(path), 0)
            index = 0
        if select:
            self.model_combo.setCurrentIndex(index)
            self._remember_fields()

    def use_model(self, path: Path) -> None:
        """Add a (new) bundle to the picker and select it."""
        self.add_model(path, select=True)

    def remember_source(self, source: Path) -> None:
        """This folder was sorted: it is the last and the most recent one."""
        s = self.settings
        s.last_source = str(source)
        s.recent_folders = [str(source), *[f for f in s.recent_folders if f != str(source)]][:10]
        self._remember_fields()


def discover_models(folders: list[Path]) -> tuple[list[ModelChoice], bool]:
    """Every model in ``folders`` for the picker, and whether a CUDA GPU is there (imports torch:
    the window calls it on a worker)."""
    import torch

    from sorter.model.catalogue import catalogue

    found = [
        ModelChoice(
            e.path,
            e.summary(),
            e.config is None or e.config.calibration is not None,
            e.config.threshold if e.config is not None else 0.5,
        )
        for e in catalogue(folders)
    ]
    return found, bool(torch.cuda.is_available())


def _describe(path: Path) -> ModelChoice:
    """A model the user opened or trained, read as far as its config."""
    from sorter.errors import SorterError
    from sorter.model.catalogue import ModelEntry

    try:
        from sorter.model.bundle import read_config

        config = read_config(path)
    except SorterError as exc:
        return ModelChoice(path, f"unusable: {exc}")
    entry = ModelEntry(path, False, config)
    return ModelChoice(path, entry.summary(), config.calibration is not None, config.threshold)
