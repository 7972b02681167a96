"""One exception family for failures a user must read: each carries one plain sentence.

The CLI prints ``str(error)`` on stderr and exits non-zero; the GUI shows the same sentence in a
dialog. Anything that is *not* a :class:`SorterError` is a bug and gets a traceback.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from sorter.usertypes import ExitCode


class SorterError(Exception):
    """A failure the user can understand and act on; ``str()`` is the sentence to show."""

    exit_code = ExitCode.FATAL


class UsageError(SorterError):
    """The request itself is wrong (bad option, missing folder)."""

    exit_code = ExitCode.USAGE


class ModelLoadError(SorterError):
    """A model bundle cannot be used: unreadable, malformed, or not a Sorter bundle."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot use the model '{self.path.name}': {reason}")


class UnsupportedImageError(SorterError):
    """One file cannot be read as a photo; the run goes on without it."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}")


class DestinationError(SorterError):
    """The output folder cannot be written (read-only, full, locked by another run)."""


class DeviceError(SorterError):
    """The requested compute device is not available; we never switch silently."""


def describe_os_error(error: OSError) -> str:
    """Turn an OSError into a plain sentence, the one place such wording lives."""
    name = error.filename if error.filename is not None else ""
    where = f" ({Path(os.fsdecode(name)).name})" if name else ""
    code = error.errno
    if code == errno.ENOSPC:
        return f"The disk is full{where}."
    if code in (errno.EACCES, errno.EPERM):
        return f"Permission denied{where}."
    if code == errno.EROFS:
        return f"The destination is on a read-only disk{where}."
    if code == errno.ENOENT:
        return f"The file or folder no longer exists{where}."
    if code == errno.ENAMETOOLONG:
        return f"The file name is too long for this disk{where}."
    if code == errno.ELOOP:
        return f"Too many levels of symbolic links{where}."
    if code == errno.EIO:
        return f"The disk reported a read or write error{where}."
    text = error.strerror or str(error)
    return f"{text}{where}."
