"""Settings persisted with QSettings (INI), in the config folder ``sorter.paths`` resolves."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from sorter.settings import Settings


def open_qsettings(config_dir: Path) -> QSettings:
    config_dir.mkdir(parents=True, exist_ok=True)
    return QSettings(str(config_dir / "sorter.ini"), QSettings.Format.IniFormat)


def load(qs: QSettings) -> Settings:
    values = {key: qs.value(key) for key in qs.allKeys()}
    return Settings.from_mapping(values)


def save(qs: QSettings, settings: Settings) -> None:
    for key, value in settings.to_mapping().items():
        qs.setValue(key, "" if value is None else value)
    qs.sync()
