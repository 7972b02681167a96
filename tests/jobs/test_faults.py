"""Faults during a run: a full disk stops it cleanly and a second run finishes the job."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sorter.errors import DestinationError
from sorter.files import fileops
from sorter.files.journal import Journal
from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from tests.conftest import content_counts, run_sorter, snapshot


def test_disk_full_stops_cleanly_then_resume_finishes(
    photo_folder: Path,
    tmp_path: Path,
    general_classifier,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    before = snapshot(photo_folder)
    real_copy = fileops.copy_to_temp
    calls = {"n": 0}

    def filling_disk(source: Path, folder: Path) -> tuple[Path, str, int]:
        calls["n"] += 1
        if calls["n"] > 8:
            # what a full disk does: a partial temporary file, then ENOSPC
            (folder / f"{fileops.TEMP_PREFIX}partial").write_bytes(b"half a photo")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "x.part"))
        return real_copy(source, folder)

    monkeypatch.setattr(fileops, "copy_to_temp", filling_disk)
    out = tmp_path / "out"
    events: list[object] = []
    with pytest.raises(DestinationError, match="The disk is full") as err:
        drive(sort_folder(SortOptions(photo_folder, out), general_classifier), events.append)
    assert "\n" not in str(err.value) and "run again" in str(err.value)
    assert snapshot(photo_folder) == before, "originals untouched"
    placed = sum(content_counts(out).values())
    assert 8 <= placed < 21
    with Journal.open(out) as journal:
        assert [r.status for r in journal.runs()] == ["cancelled"]

    monkeypatch.setattr(fileops, "copy_to_temp", real_copy)  # space freed
    summary = drive(sort_folder(SortOptions(photo_folder, out), general_classifier), lambda e: None)
    assert summary.failed == 0 and summary.skipped >= 8
    assert content_counts(out) == content_counts(photo_folder), "every photo exactly once"
    assert not list(out.rglob(f"{fileops.TEMP_PREFIX}*")), "the half-written file was swept"


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_destination_is_one_sentence(photo_folder: Path, tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(DestinationError, match="Permission denied"):
            drive(sort_folder(SortOptions(photo_folder, out), general_classifier), lambda e: None)
    finally:
        out.chmod(0o700)


@pytest.fixture()
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real, tiny file system (tmpfs), where mounting is allowed; resized by calling it."""
    mount = tmp_path / "small"
    mount.mkdir()

    def resize(size: str, *, first: bool = False) -> Path:
        opts = f"size={size}" if first else f"remount,size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(mount)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or done.returncode})")
        return mount

    if os.name == "nt" or shutil.which("mount") is None:
        pytest.skip("no mount command")
    resize("1m", first=True)
    yield resize
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_really_full_disk_stops_cleanly_then_resume_finishes(photo_folder: Path, small_disk) -> None:  # type: ignore[no-untyped-def]
    """No injection: the output lives on a tmpfs smaller than the photos."""
    before = snapshot(photo_folder)
    total = sum(p.stat().st_size for p in photo_folder.rglob("*") if p.is_file())
    mount = small_disk(f"{total // 2 // 1024}k")
    out = mount / "out"
    result = run_sorter("sort", str(photo_folder), "--out", str(out), "--device", "cpu")
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "full" in lines[0], result.stderr
    assert snapshot(photo_folder) == before, "originals untouched"
    placed = content_counts(out)
    assert 0 < sum(placed.values()) < 21 and set(placed) <= set(content_counts(photo_folder))
    assert not list(out.rglob(f"{fileops.TEMP_PREFIX}*")), "nothing half-written is left"

    small_disk(f"{total * 3 // 1024}k")  # the user frees space
    result = run_sorter("sort", str(photo_folder), "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert content_counts(out) == content_counts(photo_folder), "every photo exactly once"
