"""The models Sorter knows: every bundle in the model folders, read only as far as its config.

The CLI's ``sorter models`` and the GUI's model picker list the same entries, in the same order
(user models first, so a retrained model of the same name is found before the bundled one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import SorterError
from sorter.model.bundle import describe, read_config
from sorter.model.config import BundleConfig
from sorter.paths import MODEL_SUFFIX


@dataclass(frozen=True)
class ModelEntry:
    path: Path
    bundled: bool
    config: BundleConfig | None
    error: str | None = None
    """Why the file cannot be used (it is listed all the same, so the user sees it)."""

    @property
    def name(self) -> str:
        return self.path.stem

    def summary(self) -> str:
        """One line for a picker: its classes and validation accuracy, or why it is unusable."""
        if self.config is None:
            return f"unusable: {self.error}"
        info = describe(self.config)
        classes = info["classes"]
        text = f"{len(classes)} classes: {', '.join(classes[:6])}" + ("…" if len(classes) > 6 else "")
        if info["accuracy"] is not None:
            text += f" — validation accuracy {info['accuracy']:.0%}"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "classes": len(self.config.classes) if self.config is not None else 0,
            "bundled": self.bundled and self.config is not None,
            "error": self.error,
        }


def catalogue(folders: Sequence[Path], bundled: Path | None = None) -> list[ModelEntry]:
    """Every bundle in ``folders``, in their order (``bundled``: the folder of shipped models)."""
    entries = []
    for folder in folders:
        for path in sorted(folder.glob(f"*{MODEL_SUFFIX}")) if folder.is_dir() else []:
            try:
                entries.append(ModelEntry(path, folder == bundled, read_config(path)))
            except SorterError as exc:
                entries.append(ModelEntry(path, folder == bundled, None, str(exc)))
    return entries
