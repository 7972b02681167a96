"""The main window's list of photos: filled as a sort runs, and kept true to the folder afterwards.

While a run sorts, each photo's event adds a row. Afterwards the list follows the folder: a
correction in the review moves a row to its new folder, and an undo (or any change the window is
told of) refills the list from the journal's placements, the one record of where each photo is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, QThreadPool
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from sorter.gui.thumbnails import ThumbnailCache

if TYPE_CHECKING:
    from sorter.files.journal import Placement
    from sorter.jobs.events import SortEvent


class ResultsTable(QTreeWidget):
    """Args:
    pool: where thumbnails are decoded.
    """

    def __init__(self, pool: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Photo", "Folder", "Confidence"])
        self.setIconSize(QSize(48, 48))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.thumbs = ThumbnailCache(pool, 48, self)
        self.thumbs.ready.connect(self._on_thumbnail)
        self._rows: dict[str, QTreeWidgetItem] = {}

    def start_over(self) -> None:
        self.clear()
        self._rows.clear()

    def add_event(self, event: SortEvent) -> None:
        """One photo of a running sort."""
        folder = event.labels[0] if event.labels else ("failed" if event.status == "failed" else event.status)
        confidence = f"{event.confidence:.0%}" if event.labels else (event.error or "")
        item = QTreeWidgetItem([event.source.name, folder, confidence])
        item.setToolTip(0, str(event.source))
        if event.error:
            item.setToolTip(2, event.error)
        self.addTopLevelItem(item)
        if event.status != "failed":
            shown = event.destinations[0] if event.destinations else event.source
            self._rows[str(shown)] = item
            self.thumbs.request(shown)

    def moved(self, old: Path, new: Path) -> None:
        """A photo moved (a correction, or *Re-sort the rest*): its row follows it."""
        item = self._rows.pop(str(old), None)
        if item is None:
            return
        item.setText(1, new.parent.name)
        item.setText(2, "your choice")
        self._rows[str(new)] = item
        self.thumbs.request(new)

    def show_placements(self, placements: list[Placement]) -> None:
        """The folder as it is now (after an undo): one row a photo."""
        self.start_over()
        for p in placements:
            item = QTreeWidgetItem([p.path.name, p.path.parent.name, f"{p.confidence:.0%}"])
            item.setToolTip(0, str(p.path))
            self.addTopLevelItem(item)
            self._rows[str(p.path)] = item
            self.thumbs.request(p.path)

    def _on_thumbnail(self, key: str, pixmap: QPixmap) -> None:
        item = self._rows.get(key)
        if item is not None and not pixmap.isNull():
            item.setIcon(0, QIcon(pixmap))
