"""Crash a `sorter` child process at a chosen file operation, as a power cut or kill -9 would.

The child runs the real CLI; only ``os.unlink`` is wrapped so that the process kills itself with
SIGKILL right after the first unlink of a path that matches. Nothing in Sorter knows about it, so
the same crash lands on whatever code unlinks a source (a move) or a temporary (a copy's rename).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

_CHILD = """
import os, signal, sys
marker = sys.argv[1]
_real_unlink = os.unlink
def _unlink(path, *args, **kwargs):
    _real_unlink(path, *args, **kwargs)
    if marker in os.fsdecode(path):
        os.kill(os.getpid(), signal.SIGKILL)
os.unlink = _unlink
from sorter.cli import main
sys.exit(main(sys.argv[2:]))
"""


def sorter_killed_at_unlink(marker: str, *args: str, env: dict[str, str] | None = None) -> int:
    """Run ``sorter ARGS`` and kill it right after it unlinks a path containing ``marker``;
    returns the exit status (``-9`` when the kill landed)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, marker, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env or dict(os.environ),
    )
    return proc.returncode


def files_under(folder: Path) -> list[Path]:
    """Every photo file under ``folder``, Sorter's state folder left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and ".sorter" not in p.relative_to(folder).parts)
