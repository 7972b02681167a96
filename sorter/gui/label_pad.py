"""The review's category chooser: a button per category (with its key), and a box to type any name.

Keys 1–9 and 0 stand for the first ten categories (the dialog's actions trigger them); every
category, however many, can be typed in the box (``/`` puts the cursor there), with completion
that ignores case and matches anywhere in the name, and a new name is allowed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QCompleter, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

KEYS = "1234567890"
"""The keys that move the selection to the first ten categories, in order."""


class LabelPad(QWidget):
    """Signals:
    chosen(str): the user picked a category (a button, or a typed name and Enter).
    """

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Move the selected photos to (or press its key; / to type a name):"))
        self.buttons = QGridLayout()
        layout.addLayout(self.buttons)
        row = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setEditable(True)
        self.combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.combo.setToolTip("Pick a folder, or type a category's name (a new one is allowed), then Enter")
        completer = self.combo.completer()
        if completer is not None:
            completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
            completer.setFilterMode(Qt.MatchFlag.MatchContains)
            completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        line = self.combo.lineEdit()
        if line is not None:
            line.returnPressed.connect(self._typed)
        self.move_button = QPushButton("Move")
        self.move_button.clicked.connect(self._typed)
        row.addWidget(self.combo, 1)
        row.addWidget(self.move_button)
        layout.addLayout(row)

    def set_labels(self, labels: list[str]) -> None:
        while self.buttons.count():
            taken = self.buttons.takeAt(0)
            widget = taken.widget() if taken is not None else None
            if widget is not None:
                widget.deleteLater()
        self.combo.clear()
        for n, label in enumerate(labels):
            text = label.replace("&", "&&")  # a lone & would become a keyboard mnemonic
            key = KEYS[n] if n < len(KEYS) else None
            button = QPushButton(f"{key}. {text}" if key else text)
            button.setToolTip(f"Move the selected photos to {label}" + (f" (key {key})" if key else ""))
            button.clicked.connect(lambda _=False, lab=label: self.chosen.emit(lab))
            self.buttons.addWidget(button, n // 3, n % 3)
            self.combo.addItem(label)
        self.combo.setCurrentIndex(-1)

    def focus_typing(self) -> None:
        self.combo.setFocus()
        line = self.combo.lineEdit()
        if line is not None:
            line.selectAll()

    def _typed(self) -> None:
        text = self.combo.currentText().strip()
        if text:
            self.chosen.emit(text)
