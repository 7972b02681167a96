"""The review's near-duplicate groups hold copies of one photo, never look-alike hashes of others.

A group is shown as one thumbnail and corrected as one: whatever label the user gives it goes to
every photo in it, and each is logged as a correction. Sketches (thin lines on white) have
difference hashes a few bits apart however different they are, so a hash alone once folded 51
sketches of giraffes, guitars and people under one person sketch: one click would have labelled
them all "person" (docs/PERFORMANCE.md, the review's near-duplicates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sorter.files.corrections import CorrectionStore
from sorter.files.images import NEAR_DUPLICATE_BITS, dhash
from sorter.jobs.events import drive
from sorter.jobs.review_queue import QueueItem, build_queue, group_near_duplicates
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.classifier import Classifier
from tests.conftest import DATASETS

SKETCHES = DATASETS / "pacs_sketch" / "images"


def _look_alike_sketches(per_class: int = 4) -> list[Path]:
    """Sketches of two classes whose hashes are within two bits of one sketch's: the largest such
    cluster in the set (38 sketches of three classes), ``per_class`` of each of its two largest classes."""
    if not SKETCHES.is_dir():
        pytest.fail(f"real test photos are missing: {SKETCHES} (set SORTER_DATASETS)")
    paths = sorted(SKETCHES.rglob("*.png"))
    hashes = np.array([dhash(p) or 0 for p in paths], dtype=np.uint64)
    near = np.bitwise_count(hashes[:, None] ^ hashes[None, :]) <= 2
    hub = int(np.argmax(near.sum(axis=1)))
    members = [paths[i] for i in np.flatnonzero(near[hub])]
    by_class: dict[str, list[Path]] = {}
    for p in members:
        by_class.setdefault(p.parent.name, []).append(p)
    two = sorted(by_class.values(), key=len, reverse=True)[:2]
    assert len(two) == 2 and all(len(c) >= per_class for c in two), "the set has look-alike hashes across classes"
    return [p for c in two for p in c[:per_class]]


def test_sketches_with_look_alike_hashes_are_not_one_group(general_classifier: Classifier, tmp_path: Path) -> None:
    chosen = _look_alike_sketches()
    src = tmp_path / "src"
    src.mkdir()
    truth: dict[str, str] = {}
    for i, p in enumerate(chosen):
        name = f"{i:02d}.png"
        (src / name).write_bytes(p.read_bytes())
        truth[name] = p.parent.name
    # and one true near-duplicate: the first sketch again, recompressed as a JPEG
    Image.open(chosen[0]).convert("RGB").save(src / "copy.jpg", quality=90)
    truth["copy.jpg"] = truth["00.png"]
    hashes = {name: dhash(src / name) for name in truth}
    assert all((hashes["00.png"] ^ h).bit_count() <= NEAR_DUPLICATE_BITS for h in hashes.values() if h is not None)
    out = tmp_path / "out"
    # every photo in _unsure: one folder, so any of them could be grouped with any other
    drive(sort_folder(SortOptions(src, out, threshold=1.0), general_classifier), lambda e: None)
    with CorrectionStore(tmp_path / "corrections.sqlite") as store:
        queue = build_queue(out, general_classifier.bundle, store)
    sources = {item.path.parent.name for item in queue.items}
    assert sources == {"_unsure"}, "the test needs every photo in one folder"
    for item in queue.items:
        labels = {truth[p.name] for p in item.paths}
        assert len(labels) == 1, f"one group holds {sorted(p.name for p in item.paths)}: {sorted(labels)}"
    copy_group = next(item for item in queue.items if "copy.jpg" in {p.name for p in item.paths})
    assert {p.name for p in copy_group.paths} == {"00.png", "copy.jpg"}, "a recompressed copy is still one group"


def test_without_features_nothing_is_grouped(tmp_path: Path) -> None:
    """A hash is not enough evidence on its own: with no features to confirm it, no group."""
    items = [QueueItem(tmp_path / "_unsure" / f"{i}.jpg", "_unsure", 0.5) for i in range(3)]
    looks = {item.path: 0x0F0F0F0F0F0F0F0F for item in items}
    assert all(not item.similar for item in group_near_duplicates(items, looks, {}))
