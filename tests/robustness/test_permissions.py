"""Permission faults, proven even where tests run as root.

Root reads and writes anything, so as root the CLI runs under ``setpriv`` without the two
capabilities that override file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): still uid 0,
but a mode-000 file is unreadable and a mode-500 folder unwritable, as for any user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, content_counts, sha256, snapshot

SETPRIV = shutil.which("setpriv")
IS_ROOT = os.name != "nt" and os.geteuid() == 0

pytestmark = pytest.mark.skipif(
    os.name == "nt" or (IS_ROOT and SETPRIV is None), reason="needs POSIX permissions (and setpriv as root)"
)


OBEYING_PERMISSIONS: list[str] = (
    [str(SETPRIV), "--bounding-set", "-dac_override,-dac_read_search", "--"] if IS_ROOT else []
)
"""Command prefix under which even root is refused what file permissions refuse."""


def sorter_obeying_permissions(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OBEYING_PERMISSIONS, sys.executable, "-m", "sorter", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_permission_check_is_real(tmp_path: Path) -> None:
    """Guards the tests below: under the same prefix, a mode-000 file really cannot be read."""
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    probe = subprocess.run(
        [*OBEYING_PERMISSIONS, sys.executable, "-c", f"open({str(secret)!r}).read()"], capture_output=True
    )
    assert probe.returncode != 0 and b"Permission denied" in probe.stderr


@pytest.mark.parametrize("mode", ["copy", "move"])
def test_an_unreadable_photo_is_reported_and_left_alone(photo_folder: Path, tmp_path: Path, mode: str) -> None:
    source = photo_folder  # a fresh copy for each test
    locked = source / "locked photo.jpg"
    shutil.copyfile(next(photo_folder.glob("*.jpg")), locked)
    digest = sha256(locked)
    locked.chmod(0)
    out = tmp_path / "out"
    try:
        extra = ["--move"] if mode == "move" else []
        result = sorter_obeying_permissions("sort", str(source), "--out", str(out), "--device", "cpu", *extra)
    finally:
        locked.chmod(0o600)
    assert result.returncode == 3, result.stderr  # finished, some photos failed
    assert "locked photo.jpg" in result.stderr and "ermission denied" in result.stderr
    assert sha256(locked) == digest, "the unreadable photo is where it was, unchanged"
    assert sum(content_counts(out).values()) == 21, "every readable photo was sorted"
    assert not [p for p in out.rglob("*") if p.name.startswith(".sorter-part-")]


def test_a_read_only_destination_is_one_sentence_and_nothing_moves(photo_folder: Path, tmp_path: Path) -> None:
    before = snapshot(photo_folder)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        result = sorter_obeying_permissions("sort", str(photo_folder), "--out", str(out), "--device", "cpu", "--move")
    finally:
        out.chmod(0o700)
    assert result.returncode == 1, result.stderr
    message = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(message) == 1 and "ermission denied" in message[0], result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(photo_folder) == before, "a move into a read-only folder leaves every photo in place"
    assert list(out.iterdir()) == []
