"""The one place that decides where Sorter keeps its files.

Core code never calls these functions itself: the CLI and the GUI resolve paths here and pass them
in, so tests can point everything at a temporary folder through the environment.

* ``SORTER_DATA_DIR`` overrides the data folder (corrections, user models).
* ``SORTER_CONFIG_DIR`` overrides the settings folder.
* A file named ``portable`` beside the frozen executable keeps both beside it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sorter import APP_NAME

DEFAULT_MODEL = "general"
MODEL_SUFFIX = ".safetensors"


def _frozen_root() -> Path | None:
    """The folder of the frozen executable, or None when running from source."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return None


def resource_root() -> Path:
    """Where ``models/`` and ``assets/`` live: inside the frozen bundle, or the source tree."""
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        return Path(meipass)
    return Path(__file__).resolve().parent.parent


def portable_dir() -> Path | None:
    """The portable data folder when a ``portable`` marker sits beside the executable."""
    root = _frozen_root()
    if root is not None and (root / "portable").exists():
        return root / "data"
    return None


def _platform_dir(kind: str) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        # settings roam with the user; models, caches and the corrections' photo copies (hundreds
        # of MB) stay on this machine, or a roaming profile would copy them at every log-on
        if kind == "config":
            base = os.environ.get("APPDATA") or str(home / "AppData" / "Roaming")
        else:
            base = os.environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / APP_NAME / kind
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP_NAME / kind
    xdg = "XDG_CONFIG_HOME" if kind == "config" else "XDG_DATA_HOME"
    default = home / (".config" if kind == "config" else ".local/share")
    return Path(os.environ.get(xdg) or default) / APP_NAME.lower()


def data_dir() -> Path:
    """Corrections store and user models."""
    override = os.environ.get("SORTER_DATA_DIR")
    if override:
        return Path(override)
    portable = portable_dir()
    if portable is not None:
        return portable
    return _platform_dir("data")


FEATURE_CACHE_NAME = "features.sqlite"


def cache_dir() -> Path:
    """Files Sorter can make again (exported ONNX graphs); safe to delete at any time."""
    return data_dir() / "cache"


def feature_cache() -> Path:
    """Body features of training photos, so a retrain never decodes an unchanged photo again."""
    return cache_dir() / FEATURE_CACHE_NAME


def config_dir() -> Path:
    """Settings (INI)."""
    override = os.environ.get("SORTER_CONFIG_DIR")
    if override:
        return Path(override)
    portable = portable_dir()
    if portable is not None:
        return portable / "config"
    return _platform_dir("config")


def default_output(source: Path) -> Path:
    """Where a folder is sorted unless the user says otherwise: a sibling ``<source> (sorted)``,
    never inside the photos being sorted."""
    source = source.expanduser().resolve()
    return source.with_name(f"{source.name} (sorted)")


def bundled_models_dir() -> Path:
    return resource_root() / "models"


def user_models_dir() -> Path:
    return data_dir() / "models"


def assets_dir() -> Path:
    return resource_root() / "assets"


def corrections_db() -> Path:
    return data_dir() / "corrections.sqlite"


def model_search_dirs() -> list[Path]:
    """User models first, so a retrained model of the same name wins over the bundled one."""
    return [user_models_dir(), bundled_models_dir()]


def find_models() -> list[Path]:
    """Every model bundle Sorter knows about, user models first."""
    found: list[Path] = []
    for folder in model_search_dirs():
        if folder.is_dir():
            found.extend(sorted(folder.glob(f"*{MODEL_SUFFIX}")))
    return found


def resolve_model(spec: str | os.PathLike[str] | None) -> Path:
    """A path to an existing bundle from a path or a bare model name (``general``)."""
    from sorter.errors import UsageError

    text = os.fspath(spec) if spec is not None else DEFAULT_MODEL
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate
    if os.sep not in text and "/" not in text:
        name = text if text.endswith(MODEL_SUFFIX) else text + MODEL_SUFFIX
        for folder in model_search_dirs():
            if (folder / name).is_file():
                return folder / name
    known = ", ".join(p.stem for p in find_models()) or "none"
    raise UsageError(f"No model named '{text}' was found (known models: {known}).")
