"""File primitives that never overwrite or half-write: staged copies, ``name (N)``, content checks.

A copy goes to a temporary file in the destination folder, keeps the original's timestamps, and
is synced; only then does it receive its final name, through an exclusive, atomic rename
(:mod:`sorter.files.ledger` gives names and records them). Nothing here knows the journal.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sorter.fsutil import TEMP_PREFIX, rename_no_clobber

CHUNK = 1024 * 1024
MAX_COLLISIONS = 10_000
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}
"""A destination fault that stops the whole run, whichever file met it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def numbered_name(name: str, n: int) -> str:
    """``photo.jpg`` → ``photo (n).jpg``; dot-files and names without suffix keep working."""
    if n == 0:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return f"{name} ({n})"
    return f"{stem} ({n}).{suffix}"


def candidate_names(name: str) -> Iterator[str]:
    """``name``, then ``name (1)``, ... lazily: building all of them up front cost 23 ms a photo."""
    return (numbered_name(name, n) for n in range(MAX_COLLISIONS))


def same_content(path: Path, size: int, sha: str) -> bool:
    try:
        return path.stat().st_size == size and sha256_of(path) == sha
    except OSError:
        return False


def copy_to_temp(source: Path, folder: Path) -> tuple[Path, str, int]:
    """Stream ``source`` into a temporary file in ``folder``, hashing as it goes."""
    tmp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as src, open(tmp, "xb") as dst:
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                dst.write(chunk)
                size += len(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        shutil.copystat(source, tmp)
    except BaseException:
        unlink_quietly(tmp)
        raise
    return tmp, digest.hexdigest(), size


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def with_retry(action: object, *args: object) -> None:
    """Windows reports a file held by a virus scanner or indexer as PermissionError for a moment."""
    assert callable(action)
    attempts = 5 if sys.platform == "win32" else 1
    for attempt in range(attempts):
        try:
            action(*args)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


@dataclass(frozen=True)
class Staged:
    """A complete, synced copy of a photo under a unique temporary name, waiting for its real name.

    Staging needs no coordination, so several copies can be written and synced at once; only
    :func:`place`, which picks the final name, must run on one thread.
    """

    folder: Path
    temporary: Path
    sha256: str
    size: int


def stage(source: Path, folder: Path) -> Staged:
    """Copy ``source`` into ``folder`` under a temporary name (hashed and synced); see :class:`Staged`.

    Raises:
        OSError: reading or writing failed; nothing partial is left behind.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tmp, sha, size = copy_to_temp(source, folder)
    return Staged(folder, tmp, sha, size)


def discard(staged: Staged) -> None:
    """Remove a staged copy that will not be placed."""
    unlink_quietly(staged.temporary)


def keep_copy(source: Path, target: Path) -> Path:
    """A copy of ``source`` at ``target`` unless ``target`` already holds the same content (a
    content-addressed store's copy); another file there is never replaced.

    Raises:
        FileExistsError: ``target`` holds other content.
    """
    sha, size = sha256_of(source), source.stat().st_size
    if os.path.lexists(target):
        if same_content(target, size, sha):
            return target
        raise FileExistsError(errno.EEXIST, "another file has this name", str(target))
    staged = stage(source, target.parent)
    try:
        rename_no_clobber(staged.temporary, target)
    except FileExistsError:
        if not same_content(target, size, sha):
            raise
    finally:
        discard(staged)
    return target


def sweep_temporaries(root: Path) -> int:
    """Remove temporary files a killed run left in ``root``'s sub-folders; returns the count."""
    removed = 0
    if not root.is_dir():
        return 0
    for folder in [root, *(p for p in root.iterdir() if p.is_dir())]:
        try:
            leftovers = list(folder.glob(f"{TEMP_PREFIX}*"))
        except OSError:
            continue
        for leftover in leftovers:
            unlink_quietly(leftover)
            removed += 1
    return removed


def planned_destination(folder: Path, name: str) -> Path:
    """Where a copy named ``name`` would go now (a dry run's answer)."""
    for candidate in candidate_names(name):
        if not os.path.lexists(folder / candidate):
            return folder / candidate
    return folder / name


def is_destination_fault(exc: OSError, source: Path) -> bool:
    """Disk full or read-only output stops the run; a bad source file only skips that photo."""
    if exc.errno in _FATAL_ERRNOS:
        return True
    name = os.fsdecode(exc.filename) if exc.filename is not None else None
    return name is not None and Path(name) != source
