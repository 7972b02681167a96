"""The review's large preview of the current photo, with an optional Grad-CAM heat map.

The heat map is computed on a pool worker (it runs the network backwards); only its result, an
RGB array, reaches the GUI thread, and it is dropped if the user has moved on to another photo.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from sorter.gui import messages
from sorter.gui.thumbnails import ThumbnailCache
from sorter.gui.worker import FunctionWorker, WorkerSet

if TYPE_CHECKING:
    from sorter.model.classifier import Classifier

SIZE = 480


class PreviewPane(QWidget):
    """Args:
        pool: pool for the preview thumbnails and the heat maps.
        classifier: the model for heat maps; None disables them, with the reason.

    Signals:
        heatmap_shown(str): the preview shows a heat map for this class.
        said(str): a line for the dialog's status bar.
    """

    heatmap_shown = Signal(str)
    said = Signal(str)

    def __init__(self, pool: QThreadPool, classifier: Classifier | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.classifier = classifier
        self.path: Path | None = None
        self.workers = WorkerSet(self)
        self.thumbs = ThumbnailCache(pool, SIZE, self)
        self.thumbs.ready.connect(self._on_thumbnail)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.image = QLabel("Select a photo")
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(300, 300)
        layout.addWidget(self.image, 1)
        row = QHBoxLayout()
        self.heat_check = QCheckBox("Show where the model looked")
        self.heat_check.setEnabled(classifier is not None)
        if classifier is None:
            self.heat_check.setToolTip("Sort with a model in this session to see heat maps.")
        self.heat_check.toggled.connect(self.refresh)
        self.heat_class = QComboBox()
        self.heat_class.addItem("predicted class", None)
        for c in classifier.classes if classifier else ():
            self.heat_class.addItem(c, c)
        self.heat_class.currentIndexChanged.connect(self.refresh)
        row.addWidget(self.heat_check)
        row.addWidget(self.heat_class)
        layout.addLayout(row)

    def show_photo(self, path: Path | None) -> None:
        """Show ``path`` (None: no photo is selected). Until its image has loaded the pane says so,
        rather than keep the photo before it, which the user would take for this one."""
        if path != self.path:
            self.image.setText("Loading…" if path is not None else "Select a photo")
        self.path = path
        self.refresh()

    def refresh(self, *_: object) -> None:
        path = self.path
        if path is None:
            return
        if self.heat_check.isChecked() and self.classifier is not None:
            self._start_heatmap(path, self.heat_class.currentData())
        else:
            self.thumbs.request(path)

    def _on_thumbnail(self, key: str, pixmap: QPixmap) -> None:
        if str(self.path) == key and not self.heat_check.isChecked():
            self.image.setPixmap(pixmap)

    def _start_heatmap(self, path: Path, target: str | None) -> None:
        from sorter.model.explain import grad_cam, overlay

        classifier = self.classifier
        assert classifier is not None

        def compute() -> tuple[str, np.ndarray, str, float]:
            heat, label, p = grad_cam(classifier, path, target)
            return str(path), overlay(classifier.preprocess(path), heat), label, p

        worker = FunctionWorker(compute)
        worker.signals.returned.connect(self._on_heatmap)
        worker.signals.errored.connect(lambda exc: messages.show_error(self, exc))
        self.workers.start(worker, self.pool)

    def _on_heatmap(self, result: tuple[str, np.ndarray, str, float]) -> None:
        key, array, label, p = result
        if str(self.path) != key or not self.heat_check.isChecked():
            return  # the user has moved on
        h, w, _ = array.shape
        image = QImage(array.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        scaled = QPixmap.fromImage(image).scaled(
            SIZE, SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.image.setPixmap(scaled)
        self.image.setToolTip(f"Where the model looked for '{label}' ({p:.0%})")
        self.said.emit(f"Heat map for '{label}' ({p:.0%}).")
        self.heatmap_shown.emit(label)
