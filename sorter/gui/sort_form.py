"""The form the user fills in before *Start*: photos, output folder, copy or move, model, device,
how sure the model must be, and where photos that fit no category go. It reads its initial
values from the settings; the window reads the choices back when a run starts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
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
from sorter.settings import Settings

if TYPE_CHECKING:
    from sorter.jobs.sorting import SortOptions

OPEN_MODEL = "Open model file…"


class SortForm(QWidget):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        source_row = QHBoxLayout()
        self.source_edit = QLineEdit(self.settings.last_source)
        self.source_edit.setPlaceholderText("Folder of photos")
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

    def fill_models(self, models: list[tuple[Path, str]], has_cuda: bool) -> None:
        """The model list (path and one line each) and whether the GPU entry can be chosen."""
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
        self._show_model_info(index)

    def _show_model_info(self, index: int) -> None:
        tip = self.model_combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
        self.model_info.setText(str(tip or ""))

    def model_path(self) -> Path | None:
        data = self.model_combo.currentData()
        return Path(data) if data else None

    def _precision_changed(self, value: int) -> None:
        self.precision_label.setText(f"at least {value}% sure")

    def fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.settings.recent_folders:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.source_edit.setText(f))
        if not self.settings.recent_folders:
            self.recent_menu.addAction("No recent folders").setEnabled(False)

    def use_model(self, path: Path) -> None:
        """Add a (new) bundle to the picker and select it; the old one stays listed."""
        index = self.model_combo.findData(str(path))
        if index < 0:
            self.model_combo.insertItem(0, path.stem, str(path))
            index = 0
        self.model_combo.setCurrentIndex(index)
        self.model_info.setText(f"New model: {path.name}")

    def remember(self, source: Path, model: Path, device: str, options: SortOptions) -> None:
        """Keep this run's choices in the settings, for the next start of the app."""
        s = self.settings
        s.last_source, s.last_output, s.model = str(source), self.output_edit.text().strip(), model.stem
        s.precision = options.precision if options.precision is not None else s.precision
        s.other_folder = options.other_folder
        s.device = "cuda" if device == "cuda" else "cpu" if device == "cpu" else "auto"
        s.mode = "move" if self.mode_combo.currentData() == "move" else "copy"
        s.recent_folders = [str(source), *[f for f in s.recent_folders if f != str(source)]][:10]
