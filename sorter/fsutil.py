"""Small file-system primitives that never overwrite: used by sorting and by bundle export."""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
from pathlib import Path

TEMP_PREFIX = ".sorter-part-"
"""Every temporary file Sorter writes starts with this, so a resumed run can sweep leftovers."""

_NO_HARDLINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def _read_umask() -> int:
    # Reading the umask means setting it; done once at import, before any worker thread exists.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def default_file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (``mkstemp`` uses 0600)."""
    return 0o666 & ~_UMASK


def replace_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so readers never see
    half a file; for Sorter's own outputs (reports, plots), which a newer version may replace."""
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, default_file_mode())
        replace_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


REPLACE_ATTEMPTS = 10


def replace_file(tmp: Path | str, path: Path | str) -> None:
    """``os.replace``, which Windows refuses while ``path`` is open or mapped (a model Sorter or
    another program has loaded, a file a virus scanner holds): tried again for about two seconds,
    then one sentence. The old file is never half replaced.

    Raises:
        FileInUseError: ``path`` stayed in use.
    """
    for attempt in range(REPLACE_ATTEMPTS):
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            if attempt == REPLACE_ATTEMPTS - 1:
                raise FileInUseError(
                    f"'{Path(path).name}' is in use (open in Sorter or another program): close it, then try again."
                ) from None
            time.sleep(0.05 * (attempt + 1))


class FileInUseError(PermissionError):
    """A file could not be replaced because it is open elsewhere (see :func:`replace_file`)."""


def rename_no_clobber(src: Path | str, dst: Path | str) -> None:
    """Atomically give ``src`` the name ``dst``; raise FileExistsError rather than replace it.

    POSIX ``rename`` silently replaces the target, so there we hard-link then unlink (atomic and
    exclusive). Windows ``rename`` already refuses an existing target.
    """
    if sys.platform == "win32":
        os.rename(src, dst)
        return
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARDLINKS:
            raise
        # A file system without hard links (FAT, some network shares): the output lock keeps
        # other Sorter runs away, so check-then-rename is the best that is possible here.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "File exists", str(dst)) from exc
        os.rename(src, dst)
        return
    os.unlink(src)


def same_file(a: Path | str, b: Path | str) -> bool:
    """Whether two paths name one file: the same device and inode (``os.path.samefile``), which
    also catches two spellings of one name on a volume that ignores case, and a folder reached
    through a link. A path that does not exist is no file at all."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def fsync_folder(folder: Path | str) -> None:
    """Make a new name in ``folder`` durable before the old one is removed (a move's link, then
    its unlink): after a power cut the photo has at least one name. Windows has no directory
    handles to sync; its file system journals names itself."""
    if sys.platform == "win32":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_CASE_PROBES: dict[str, bool] = {}


def ignores_case(folder: Path) -> bool:
    """Whether names in ``folder``'s volume are compared ignoring case (Windows and macOS by
    default), probed once per folder by creating a file and asking for it under another case.
    A folder that cannot be probed is taken as case-sensitive only on Linux."""
    key = os.path.normcase(os.path.abspath(folder))
    if key in _CASE_PROBES:
        return _CASE_PROBES[key]
    answer = sys.platform in ("win32", "darwin")
    try:
        fd, probe = tempfile.mkstemp(prefix=TEMP_PREFIX + "case-", dir=folder)
    except OSError:
        return answer
    os.close(fd)
    try:
        name = os.path.basename(probe)
        answer = os.path.exists(os.path.join(os.path.dirname(probe), name.swapcase()))
    finally:
        os.unlink(probe)
    _CASE_PROBES[key] = answer
    return answer


def name_key(name: str, folder: Path) -> str:
    """How the volume holding ``folder`` compares the name ``name``: folded where it ignores case."""
    return name.casefold() if ignores_case(folder) else name


NETWORK_FILE_SYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ncpfs", "fuse.sshfs", "ceph", "glusterfs", "davfs"}
)


def on_network_share(folder: Path) -> bool:
    """Whether ``folder`` lies on a network share, where SQLite's WAL does not work (its shared
    memory needs one machine): a mapped drive or a UNC path on Windows, an NFS or SMB mount
    elsewhere (read from ``/proc/self/mounts``; where that cannot be read, assumed local)."""
    if sys.platform == "win32":
        text = os.path.abspath(folder)
        if text.startswith(("\\\\", "//")):
            return True
        import ctypes

        drive_remote = 4
        root = os.path.splitdrive(text)[0] + "\\"
        return bool(ctypes.windll.kernel32.GetDriveTypeW(root) == drive_remote)  # type: ignore[attr-defined]
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    return mount_type(mounts, Path(os.path.realpath(folder))) in NETWORK_FILE_SYSTEMS


def mount_type(mounts: str, path: Path) -> str:
    """The file system type of the mount (``/proc/mounts`` lines) holding ``path``."""
    best, kind = -1, ""
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = Path(parts[1].replace("\\040", " "))
        if (path == point or point in path.parents) and len(point.parts) > best:
            best, kind = len(point.parts), parts[2]
    return kind


def sqlite_journal_mode(folder: Path) -> str:
    """WAL on a local disk; the rollback journal on a network share (WAL would corrupt there)."""
    return "DELETE" if on_network_share(folder) else "WAL"
