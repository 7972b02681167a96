"""Faults during a run: a full disk stops it cleanly and a second run finishes the job."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sorter.cli import drive
from sorter.core import fileops
from sorter.core.journal import Journal
from sorter.core.sorting import SortOptions, sort_folder
from sorter.errors import DestinationError
from tests.conftest import content_counts, snapshot


def test_disk_full_stops_cleanly_then_resume_finishes(
    photo_folder: Path,
    tmp_path: Path,
    general_classifier,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    before = snapshot(photo_folder)
    real_copy = fileops._copy_to_temp
    calls = {"n": 0}

    def filling_disk(source: Path, folder: Path) -> tuple[Path, str, int]:
        calls["n"] += 1
        if calls["n"] > 8:
            # what a full disk does: a partial temporary file, then ENOSPC
            (folder / f"{fileops.TEMP_PREFIX}partial").write_bytes(b"half a photo")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "x.part"))
        return real_copy(source, folder)

    monkeypatch.setattr(fileops, "_copy_to_temp", filling_disk)
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

    monkeypatch.setattr(fileops, "_copy_to_temp", real_copy)  # space freed
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
