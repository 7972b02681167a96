"""A run killed with SIGKILL mid-way, then run again, ends with every photo exactly once."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from tests.conftest import REPO, content_counts, make_photo_folder, pick_photos


def _sources_done(journal: Path) -> int:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=0.2) as db:
            return int(db.execute("SELECT COUNT(*) FROM sources").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_mid_run_then_resume(tmp_path: Path, furniture: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    photos = make_photo_folder(tmp_path / "photos", pick_photos(furniture, 8))  # 56 photos
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sorter",
                "sort",
                str(photos),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--batch-size",
                "4",
                "--json",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    journal = out / ".sorter" / "journal.sqlite"
    deadline = time.monotonic() + 240
    while _sources_done(journal) < 10:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the sort never got going"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = _sources_done(journal)
    assert 10 <= done_before < 56, "the kill must land mid-run"

    summary = drive(sort_folder(SortOptions(photos, out), general_classifier), lambda e: None)
    assert summary.failed == 0
    assert summary.skipped >= done_before
    assert content_counts(out) == content_counts(photos), "every photo exactly once"
    assert not list(out.rglob(".sorter-part-*")), "no half-written file survives"
