"""Put a photo into a folder without ever overwriting or half-writing anything.

The copy goes to a temporary file in the destination folder, keeps the original's timestamps, and
only then receives its final name through an exclusive, atomic rename. A name that is taken by the
same content means the work is already done; by other content, the next free ``name (N).ext``.
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
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sorter.fsutil import TEMP_PREFIX, rename_no_clobber

CHUNK = 1024 * 1024
MAX_COLLISIONS = 10_000
_FATAL_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}
"""A destination fault that stops the whole run, whichever file met it."""

Outcome = Literal["copied", "moved", "duplicate"]


@dataclass(frozen=True)
class Placed:
    """Where a photo ended up, and whether this call wrote it (``duplicate``: already there)."""

    destination: Path
    outcome: Outcome
    sha256: str
    size: int


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


def _same_content(path: Path, size: int, sha: str) -> bool:
    try:
        return path.stat().st_size == size and sha256_of(path) == sha
    except OSError:
        return False


def _copy_to_temp(source: Path, folder: Path) -> tuple[Path, str, int]:
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
        _unlink_quietly(tmp)
        raise
    return tmp, digest.hexdigest(), size


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _with_retry(action: object, *args: object) -> None:
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
    tmp, sha, size = _copy_to_temp(source, folder)
    return Staged(folder, tmp, sha, size)


def discard(staged: Staged) -> None:
    """Remove a staged copy that will not be placed."""
    _unlink_quietly(staged.temporary)


def place(
    source: Path,
    folder: Path,
    name: str | None = None,
    *,
    move: bool = False,
    staged: Staged | None = None,
) -> Placed:
    """Copy (or move) ``source`` into ``folder``, never replacing an existing file.

    Args:
        source: the photo.
        folder: destination folder, created if missing.
        name: file name to use; defaults to the source's.
        move: remove the source once its copy is safely in place (or the same content is
            already there).
        staged: a copy of ``source`` already staged in ``folder``; it is renamed into place (or
            removed, when the same content is already there) instead of copying again.

    Returns:
        Where it is now and whether this call wrote it.

    Raises:
        OSError: reading, writing or renaming failed; nothing partial is left behind.
    """
    name = name or source.name
    if staged is not None and staged.folder != folder:
        discard(staged)
        raise ValueError(f"{staged.temporary} was staged for another folder than {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    if move and staged is None:
        fast = _try_link_move(source, folder, name)
        if fast is not None:
            return fast
    tmp: Path | None = staged.temporary if staged else None
    sha = staged.sha256 if staged else ""
    size = staged.size if staged else 0
    try:
        for candidate in candidate_names(name):
            target = folder / candidate
            if os.path.lexists(target):
                if tmp is None:
                    sha, size = sha256_of(source), source.stat().st_size
                if _same_content(target, size, sha):
                    if move:
                        _with_retry(os.unlink, source)
                    return Placed(target, "duplicate", sha, size)
                continue
            if tmp is None:
                tmp, sha, size = _copy_to_temp(source, folder)
            try:
                _with_retry(rename_no_clobber, tmp, target)
            except FileExistsError:
                continue  # someone took the name between our check and the rename
            tmp = None
            if move:
                _with_retry(os.unlink, source)
            return Placed(target, "moved" if move else "copied", sha, size)
        raise OSError(errno.EEXIST, f"more than {MAX_COLLISIONS} files are named like this", str(folder / name))
    finally:
        if tmp is not None:
            _unlink_quietly(tmp)


def _try_link_move(source: Path, folder: Path, name: str) -> Placed | None:
    """On one file system a move is a hard link plus unlink: instant and still never clobbering."""
    try:
        if source.stat().st_dev != folder.stat().st_dev:
            return None
    except OSError:
        return None
    sha = sha256_of(source)
    size = source.stat().st_size
    for candidate in candidate_names(name):
        target = folder / candidate
        if os.path.lexists(target):
            if _same_content(target, size, sha):
                _with_retry(os.unlink, source)
                return Placed(target, "duplicate", sha, size)
            continue
        try:
            os.link(source, target)
        except FileExistsError:
            continue
        except OSError:
            return None  # no hard links here: fall back to copy-then-delete
        _with_retry(os.unlink, source)
        return Placed(target, "moved", sha, size)
    return None


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
            _unlink_quietly(leftover)
            removed += 1
    return removed


# -- placing one photo into several label folders (the sorting job's writers) ---------------------
def place_all(source: Path, output: Path, labels: tuple[str, ...], *, move: bool) -> list[Placed]:
    """Copy into every label's folder; when moving, the last placement is the move."""
    placed = []
    for i, label in enumerate(labels):
        last = i == len(labels) - 1
        placed.append(place(source, output / label, move=move and last))
    return placed


def name_all(source: Path, output: Path, labels: tuple[str, ...], staged: list[Future[Staged]]) -> list[Placed]:
    """Give each staged copy its final name, in order; copies not placed are removed."""
    placed: list[Placed] = []
    try:
        for label, future in zip(labels, staged, strict=True):
            placed.append(place(source, output / label, staged=future.result()))
    finally:
        for future in staged[len(placed) + 1 :]:
            try:
                discard(future.result())
            except OSError:
                continue
    return placed


def planned_destination(folder: Path, name: str) -> Path:
    """Where :func:`place` would put ``name`` now (a dry run's answer)."""
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
