"""A corpus of hostile and unusual inputs, built at test time: nothing is lost or overwritten,
every good photo is sorted exactly once, every bad one is reported in one sentence."""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from tests.conftest import SAMPLES, content_counts, sha256, snapshot


def _png_with_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width × height`` pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame header (SOF0/SOF2) of a real JPEG to declare another size."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC2):
            data[i + 5 : i + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        i += 2 + length
    raise AssertionError("no frame header")


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, set[str], dict[str, str]]:
    """(folder, names that must be sorted, names that must fail → expected reason fragment)."""
    src = tmp_path / "photos"
    src.mkdir()
    cat = Image.open(SAMPLES / "chelsea.jpg").convert("RGB")
    jpeg = (SAMPLES / "coffee.jpg").read_bytes()
    good: set[str] = set()

    def save(name: str, img: Image.Image, **kw: object) -> None:
        img.save(src / name, **kw)
        good.add(name)

    save("cmyk.jpg", cat.convert("CMYK"))
    deep = Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257)
    save("deep-16bit.png", deep)
    palette = cat.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    save("palette-transparent.png", palette)
    frames = [cat, cat.rotate(90), cat.rotate(180)]
    frames[0].save(src / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    good.add("animated.gif")
    save("grey.jpg", cat.convert("L"))
    exif = Image.Exif()
    exif[0x0112] = 6
    save("rotated.jpg", cat, exif=exif)
    save("really-a-png.jpg", cat, format="PNG")
    save("emoji 🐱 cat.jpg", cat)
    save("spaces   in   name .jpg", cat)
    save("x" * 200 + ".jpg", cat)
    save("Case.jpg", cat.rotate(5))
    save("case.jpg", cat.rotate(10))
    save("CON.jpg", cat)
    (src / "same photo.jpg").write_bytes(jpeg)
    (src / "same photo again.jpg").write_bytes(jpeg)
    good |= {"same photo.jpg", "same photo again.jpg"}

    bad = {
        "zero.jpg": "empty",
        "text.jpg": "not an image",
        "truncated.jpg": "truncated or corrupt",
        "bad-crc.png": "truncated or corrupt",
        "bomb.png": "too large to open safely",
        "huge-declared.jpg": "too large to open safely",
    }
    (src / "zero.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("hello, I am not a photo")
    (src / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    png = io.BytesIO()
    cat.save(png, "PNG")
    broken = bytearray(png.getvalue())
    broken[40] ^= 0xFF  # inside the image data: its CRC no longer matches
    (src / "bad-crc.png").write_bytes(bytes(broken))
    (src / "bomb.png").write_bytes(_png_with_size(30000, 30000))
    (src / "huge-declared.jpg").write_bytes(_jpeg_with_size(jpeg, 30000, 30000))
    if sys.platform != "win32":
        os.symlink(src, src / "loop")  # a folder that contains itself
    return src, good, bad


def test_corpus_sorts_every_good_photo_once_and_reports_the_rest(corpus, tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    src, good, bad = corpus
    before = snapshot(src)
    out = src / "sorted"  # the output folder inside the source, as a careless user would choose
    summary = drive(sort_folder(SortOptions(src, out), general_classifier), lambda e: None)

    assert {k: v for k, v in snapshot(src).items() if not k.startswith("sorted")} == before, "originals untouched"
    failures = {p.name: reason for p, reason in summary.failures}
    assert set(failures) == set(bad)
    for name, fragment in bad.items():
        assert fragment in failures[name], (name, failures[name])
        assert "\n" not in failures[name]
    assert summary.sorted + summary.unsure == len(good)
    placed = [p for p in out.rglob("*") if p.is_file() and ".sorter" not in p.parts]
    assert sorted(sha256(p) for p in placed) == sorted(sha256(src / n) for n in good), "each good photo once"
    names = {p.name for p in placed}
    assert {"Case.jpg", "case.jpg", "CON.jpg", "emoji 🐱 cat.jpg", "x" * 200 + ".jpg"} <= names
    # the same photo under two names is kept twice (two names, two files), never merged or lost
    assert content_counts(out)[sha256(src / "same photo.jpg")] == 2

    again = drive(sort_folder(SortOptions(src, out), general_classifier), lambda e: None)
    assert again.sorted == again.unsure == 0 and again.skipped == len(good)
    assert len([p for p in out.rglob("*") if p.is_file() and ".sorter" not in p.parts]) == len(placed)
