"""Every user-facing option, declared once with its type and default.

The GUI persists these through QSettings; the CLI takes them from flags. Core code receives the
values it needs as arguments and never reads settings itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Device = Literal["auto", "cpu", "cuda"]
Mode = Literal["copy", "move"]


@dataclass
class Settings:
    model: str = "general"
    device: Device = "auto"
    mode: Mode = "copy"
    threshold: float | None = None
    """The score a model without calibration must give a category (the desktop slider for such a
    model); None uses the model's own default."""
    precision: float = 0.95
    """Sort a photo only when a model is this sure, as measured on its validation photos."""
    other_folder: bool = False
    """Photos that fit none of the categories go to ``_other`` instead of ``_unsure``."""
    last_source: str = ""
    last_output: str = ""
    recent_folders: list[str] = field(default_factory=list)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Settings:
        """Build from stored values, ignoring unknown keys and ill-typed values."""
        settings = cls()
        for f in fields(cls):
            if f.name not in values:
                continue
            value = values[f.name]
            default = getattr(settings, f.name)
            if f.name == "threshold":
                try:
                    value = None if value in (None, "", "None") else float(value)
                except (TypeError, ValueError):
                    continue
            elif f.name == "precision":
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                if not 0.5 <= value < 1.0:
                    continue
            elif isinstance(default, bool):
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes")
                value = bool(value)
            elif (f.name == "device" and value not in ("auto", "cpu", "cuda")) or (
                f.name == "mode" and value not in ("copy", "move")
            ):
                continue
            elif isinstance(default, list):
                if isinstance(value, str):
                    value = [value] if value else []
                if not isinstance(value, list):
                    continue
                value = [str(v) for v in value]
            elif isinstance(default, str):
                value = str(value)
            setattr(settings, f.name, value)
        return settings

    def to_mapping(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
