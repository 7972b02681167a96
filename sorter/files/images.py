"""Find the photos in a folder tree, recognised by their first bytes rather than their names.

A photo called ``IMG_0001`` with no extension is still a photo; a text file called ``x.jpg`` is
not, and is reported rather than silently ignored because its name promises a photo.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sorter.files.journal import is_output_folder

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".gif",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    }
)


@dataclass(frozen=True)
class Candidate:
    """A file found by the scan.

    ``problem`` is set when the name says "photo" but the content cannot be one (or cannot be
    read); such files are reported as failures, never dropped silently.
    """

    path: Path
    size: int
    mtime_ns: int
    format: str | None
    problem: str | None = None


def _is_hidden(entry: os.DirEntry[str]) -> bool:
    if entry.name.startswith("."):
        return True
    if sys.platform == "win32":
        try:
            attrs = entry.stat(follow_symlinks=False).st_file_attributes  # type: ignore[attr-defined]
        except OSError:
            return False
        return bool(attrs & (stat.FILE_ATTRIBUTE_HIDDEN | stat.FILE_ATTRIBUTE_SYSTEM))  # type: ignore[attr-defined]
    return False


def scan(source: Path, *, exclude: tuple[Path, ...] = ()) -> Iterator[Candidate]:
    """Walk ``source`` depth-first in name order; yield photos and photo-named non-photos.

    Args:
        source: the folder to sort.
        exclude: folders never entered (the output folder when it lies inside the source).

    Symbolic links to folders are followed once: a folder already visited (by its device and
    inode) is skipped, which breaks link loops. Hidden and system files are skipped, and so is
    another folder Sorter sorted into (its photos are that folder's own, recorded in its journal).
    """
    excluded = {_identity(p) for p in exclude if p.exists()}
    seen: set[tuple[int, int]] = set()
    root_id = _identity(source)
    if root_id is not None:
        seen.add(root_id)
    stack = [source]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subfolders: list[Path] = []
        for entry in entries:
            if _is_hidden(entry):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                ident = _identity(path)
                if ident is None or ident in seen or ident in excluded or is_output_folder(path):
                    continue
                seen.add(ident)
                subfolders.append(path)
                continue
            candidate = _examine(entry, path)
            if candidate is not None:
                yield candidate
        stack.extend(reversed(subfolders))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _examine(entry: os.DirEntry[str], path: Path) -> Candidate | None:
    named_like_image = path.suffix.lower() in IMAGE_EXTENSIONS
    try:
        st = entry.stat(follow_symlinks=True)
    except OSError:
        if named_like_image:
            return Candidate(path, 0, 0, None, "the file cannot be read (broken link?)")
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as exc:
        if not named_like_image:
            return None
        from sorter.errors import describe_os_error

        return Candidate(path, st.st_size, st.st_mtime_ns, None, describe_os_error(exc))
    fmt = sniff_format(head)
    if fmt is not None:
        return Candidate(path, st.st_size, st.st_mtime_ns, fmt)
    if named_like_image:
        reason = "the file is empty" if st.st_size == 0 else "not an image, or an unsupported format"
        return Candidate(path, st.st_size, st.st_mtime_ns, None, reason)
    return None


SNIFF_BYTES = 32


def sniff_format(head: bytes) -> str | None:
    """The image format these leading bytes announce, or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[4:8] == b"ftyp" and head[8:12] in (
        b"heic",
        b"heix",
        b"hevc",
        b"hevx",
        b"heim",
        b"heis",
        b"mif1",
        b"msf1",
        b"avif",
        b"avis",
    ):
        return "HEIF"
    return None


NEAR_DUPLICATE_BITS = 6
"""Two photos whose difference hashes differ in at most this many bits are near-duplicates."""


def dhash(path: Path) -> int | None:
    """64-bit difference hash of a photo file, robust to resizing and recompression (for photos
    whose hash was not kept when they were sorted: see :func:`dhash_array`)."""
    try:
        with Image.open(path) as img:
            img.draft("L", (64, 64))
            return _dhash_of(img.convert("L"))
    except Exception:
        return None


def dhash_array(photo: np.ndarray) -> int:
    """The same hash of a decoded ``H×W×3`` photo: sorting computes it from the very array the
    network sees, so the review never decodes a photo again to group near-duplicates."""
    return _dhash_of(Image.fromarray(photo).convert("L"))


def _dhash_of(grey: Image.Image) -> int:
    small = np.asarray(grey.resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")
