"""The app starts fast (no torch before the window), self-checks offscreen, and keeps settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sorter.settings import Settings
from tests.conftest import REPO


def test_window_code_does_not_import_torch() -> None:
    code = "import sys, sorter.gui.app; print(sorted(m for m in ('torch', 'timm', 'fastai') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_self_check_starts_loads_models_and_closes(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "SORTER_CONFIG_DIR": str(tmp_path / "config"),
        "SORTER_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sorter.gui", "--self-check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "config" / "sorter.ini").exists(), "settings are saved on exit"
    assert "self-check: window shown, model general.safetensors listed" in result.stderr
    assert "self-check passed" in result.stderr


def test_settings_round_trip(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sorter.gui import config

    qs = config.open_qsettings(tmp_path)
    wanted = Settings(
        model="furniture",
        device="cpu",
        mode="move",
        threshold=0.7,
        precision=0.9,
        other_folder=True,
        last_source="/photos",
        recent_folders=["/photos", "/more"],
    )
    config.save(qs, wanted)
    again = config.load(config.open_qsettings(tmp_path))
    assert again == wanted
    default = config.load(config.open_qsettings(tmp_path / "fresh"))
    assert default == Settings()


def test_self_check_sorts_a_dropped_folder_with_an_awkward_name(tmp_path: Path) -> None:
    """What the Windows smoke test asks of the frozen app: a folder dropped on the window (with
    a name Windows treats specially: a short-name form and non-ASCII letters) is sorted."""
    folder = tmp_path / "PHOTOS~1 Zoë (été) 写真"
    folder.mkdir()
    for name in ("chelsea.jpg", "coffee.jpg"):
        (folder / name).write_bytes((REPO / "assets" / "samples" / name).read_bytes())
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "SORTER_CONFIG_DIR": str(tmp_path / "config"),
        "SORTER_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "sorter.gui", "--self-check", "--drop", str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "self-check: Of 2 photos in PHOTOS~1 Zoë (été) 写真: 2 went into folders" in result.stderr
    assert (tmp_path / "PHOTOS~1 Zoë (été) 写真 (sorted)" / "Animals" / "chelsea.jpg").is_file()
