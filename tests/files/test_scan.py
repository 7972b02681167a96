"""Scanning finds photos by content, skips hidden files, survives link loops."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from sorter.files.images import scan
from tests.conftest import SAMPLES


def test_formats_are_recognised_by_content(tmp_path: Path) -> None:
    img = Image.open(SAMPLES / "chelsea.jpg").convert("RGB").resize((64, 48))
    for fmt, name in [
        ("PNG", "a.png"),
        ("WEBP", "b.webp"),
        ("BMP", "c.bmp"),
        ("TIFF", "d.tif"),
        ("GIF", "e.gif"),
        ("PNG", "no_extension"),
        ("JPEG", "camera.dat"),
    ]:
        img.save(tmp_path / name, fmt)
    (tmp_path / "notes.txt").write_text("not a photo and not named like one")
    (tmp_path / ".hidden.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    found = {c.path.name: c for c in scan(tmp_path)}
    assert set(found) == {"a.png", "b.webp", "c.bmp", "d.tif", "e.gif", "no_extension", "camera.dat"}
    assert found["no_extension"].format == "PNG" and found["camera.dat"].format == "JPEG"
    assert all(c.problem is None for c in found.values())


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_link_loops_and_excluded_output(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "cat.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    os.symlink(src / "a", src / "a" / "b" / "loop")  # a folder that contains itself
    out = src / "sorted"
    out.mkdir()
    (out / "old.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    found = [c.path.name for c in scan(src, exclude=(out,))]
    assert found == ["cat.jpg"]


def test_heic_from_a_phone_is_found_and_sorted(tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.open(SAMPLES / "chelsea.jpg").convert("RGB").save(tmp_path / "IMG_0001.HEIC", format="HEIF", quality=80)
    (found,) = list(scan(tmp_path))
    assert found.format == "HEIF" and found.problem is None
    (pred,) = list(general_classifier.classify([found.path], lambda p: p))
    assert pred.error is None
    assert general_classifier.classes[int(pred.probs.argmax())] == "Animals"
