"""Thumbnails decoded off the GUI thread (QImageReader scales while decoding) and cached."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap


class _Signals(QObject):
    loaded = Signal(str, QImage)


class _Load(QRunnable):
    def __init__(self, path: Path, size: int, signals: _Signals) -> None:
        super().__init__()
        self.path, self.size, self.signals = path, size, signals

    def run(self) -> None:
        reader = QImageReader(str(self.path))
        reader.setAutoTransform(True)  # EXIF orientation
        full = reader.size()
        if full.isValid() and full.width() > 0 and full.height() > 0:
            scaled = full.scaled(QSize(self.size, self.size), Qt.AspectRatioMode.KeepAspectRatio)
            reader.setScaledSize(scaled)
        image = reader.read()
        self.signals.loaded.emit(str(self.path), image)


class ThumbnailCache(QObject):
    """Ask with :meth:`request`; ``ready(path, pixmap)`` fires on the GUI thread when loaded.

    Signals:
        ready(str, QPixmap): a thumbnail is available (an empty pixmap for an unreadable file).
    """

    ready = Signal(str, QPixmap)

    def __init__(self, pool: QThreadPool, size: int = 96, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.size = size
        self._cache: dict[str, QPixmap] = {}
        self._pending: set[str] = set()
        self._signals = _Signals()
        self._signals.loaded.connect(self._on_loaded)

    def get(self, path: Path) -> QPixmap | None:
        return self._cache.get(str(path))

    def request(self, path: Path) -> None:
        key = str(path)
        if key in self._cache:
            self.ready.emit(key, self._cache[key])
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self.pool.start(_Load(path, self.size, self._signals))

    def _on_loaded(self, key: str, image: QImage) -> None:
        self._pending.discard(key)
        pixmap = QPixmap.fromImage(image) if not image.isNull() else QPixmap()
        self._cache[key] = pixmap
        self.ready.emit(key, pixmap)
