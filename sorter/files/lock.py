"""The exclusive lock on an output folder, so two runs never sort into it at once."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from sorter.errors import DestinationError

LOCK_NAME = "lock"


class OutputLock:
    """An exclusive lock on an output folder, so two runs never sort into it at once."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fh: IO[bytes] | None = None

    def acquire(self) -> None:
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open as the lock
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise DestinationError("Another Sorter run is using this output folder; wait for it to finish.") from None
        self._fh = fh

    def release(self) -> None:
        """Unlock, then close: Windows may release a lock that is only closed some time later."""
        if self._fh is None:
            return
        fh, self._fh = self._fh, None
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except OSError:
            pass  # closing releases it all the same
        finally:
            fh.close()
