"""Where Sorter keeps its files: environment overrides, portable mode, model lookup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sorter import paths
from sorter.errors import UsageError
from tests.conftest import REPO


def test_portable_marker_keeps_everything_beside_the_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SORTER_DATA_DIR", raising=False)
    monkeypatch.delenv("SORTER_CONFIG_DIR", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "Sorter.exe"))
    assert paths.portable_dir() is None
    (tmp_path / "portable").write_text("")
    assert paths.data_dir() == tmp_path / "data"
    assert paths.config_dir() == tmp_path / "data" / "config"
    assert paths.corrections_db() == tmp_path / "data" / "corrections.sqlite"


def test_environment_overrides_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("SORTER_CONFIG_DIR", str(tmp_path / "c"))
    assert paths.data_dir() == tmp_path / "d" and paths.config_dir() == tmp_path / "c"
    assert paths.user_models_dir() == tmp_path / "d" / "models"


def test_models_resolve_by_name_user_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path))
    assert paths.resolve_model("general") == paths.bundled_models_dir() / "general.safetensors"
    mine = tmp_path / "models" / "general.safetensors"
    mine.parent.mkdir()
    mine.write_bytes(b"")
    assert paths.resolve_model("general") == mine
    with pytest.raises(UsageError, match="No model named 'nope'"):
        paths.resolve_model("nope")


def test_the_two_executables_differ_ignoring_case_on_windows() -> None:
    """Issue 27: a CLI named 'sorter' overwrote the app 'Sorter' in a Windows folder."""
    import re

    spec = (REPO / "build.spec").read_text()
    cli = re.search(r"^CLI_NAME = (.+)$", spec, re.M)
    gui = re.search(r'^GUI_NAME = "(.+)"$', spec, re.M)
    assert cli and gui
    names = {windows: eval(cli.group(1), {"WINDOWS": windows}) for windows in (True, False)}
    assert names[True].casefold() != gui.group(1).casefold(), "Windows ignores case in file names"
    assert (gui.group(1), names[False]) == ("Sorter", "sorter"), "the Linux names the README uses"
    assert "name=GUI_NAME" in spec and "name=CLI_NAME" in spec
