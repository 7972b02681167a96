"""Small widgets shared by the window and the dialogs."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget


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
