"""Small widgets shared by the window and the dialogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget


class FolderField(QWidget):
    """A folder path the user can type or pick with *Browse…*.

    Args:
        text: initial path.
        placeholder: hint shown while empty.
        dialog_title: title of the folder chooser.
    """

    def __init__(self, text: str, placeholder: str, dialog_title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.dialog_title = dialog_title
        self.edit = QLineEdit(text)
        self.edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.browse)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.edit)
        row.addWidget(browse)

    def browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.dialog_title)
        if folder:
            self.edit.setText(folder)


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
