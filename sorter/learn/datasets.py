"""Labelled photos for training and evaluation: folders or CSV files, and a leak-free split.

The split keeps near-duplicates (perceptual hash) and series of one object (``sofa_01.jpg``,
``sofa_02.jpg``) on the same side: a validation photo that is a resized twin of a training photo
measures memory, not skill.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sorter.errors import UsageError
from sorter.files.images import NEAR_DUPLICATE_BITS, dhash, scan
from sorter.names import class_names_problem, is_category

SPLIT_FOLDERS = {"train": False, "valid": True, "val": True, "validation": True}
"""dHash Hamming distance (of 64 bits) at or below which two photos count as the same shot."""


@dataclass(frozen=True)
class Sample:
    path: Path
    labels: tuple[str, ...]
    is_valid: bool | None = None
    """Fixed by the data (a ``valid/`` folder or an is_valid column); None lets the split decide."""
    sha256: str | None = None
    """The photo's content hash when known without reading it: a row of a bundle's feature
    replay, whose photo is not at hand but whose features are (see :mod:`sorter.learn.replay`)."""


@dataclass(frozen=True)
class LabelledData:
    samples: tuple[Sample, ...]
    classes: tuple[str, ...]
    multi_label: bool
    origin: str
    """How to find this data again (recorded in the bundle so retraining can reuse it)."""


def load_folder(root: Path) -> LabelledData:
    """ImageNet-style: ``root/<class>/*`` or ``root/{train,valid}/<class>/*``; a folder Sorter
    sorted works too (its ``_unsure`` and ``_other`` are no categories)."""
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"The training folder '{root}' does not exist.")
    split_roots = [(root / name, fixed) for name, fixed in SPLIT_FOLDERS.items() if (root / name).is_dir()]
    roots: list[tuple[Path, bool | None]] = list(split_roots) or [(root, None)]
    samples: list[Sample] = []
    for base, fixed in roots:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and is_category(p.name)):
            for c in scan(class_dir):
                if c.problem is None:
                    samples.append(Sample(c.path, (class_dir.name,), fixed))
    return _finish(samples, multi_label=False, origin=f"folder:{root}")


def load_csv(csv_path: Path, *, root: Path | None = None, label_delim: str | None = None) -> LabelledData:
    """CSV with a path column, a label column and an optional ``is_valid`` column.

    Paths are relative to ``root`` (default: the CSV's folder). With ``label_delim`` the label
    column holds several labels and the data is multi-label.
    """
    csv_path = csv_path.expanduser().resolve()
    base = (root or csv_path.parent).expanduser().resolve()
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"The label file '{csv_path.name}' cannot be read ({exc}).") from exc
    if not rows:
        raise UsageError(f"The label file '{csv_path.name}' has no rows.")
    columns = list(rows[0].keys())
    path_col = next((c for c in columns if c.lower() in ("path", "filename", "file", "image", "fname")), columns[0])
    label_col = next((c for c in columns if c.lower() in ("label", "labels", "tags", "class")), columns[1])
    valid_col = next((c for c in columns if c.lower() in ("is_valid", "valid")), None)
    samples = []
    for row in rows:
        raw = (row.get(label_col) or "").strip()
        labels = tuple(x for x in raw.split(label_delim) if x) if label_delim else ((raw,) if raw else ())
        if not labels:
            continue
        fixed = None
        if valid_col is not None:
            fixed = (row.get(valid_col) or "").strip().lower() in ("1", "true", "yes")
        samples.append(Sample(base / (row.get(path_col) or ""), labels, fixed))
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise UsageError(f"{len(missing)} photos listed in '{csv_path.name}' are missing (first: {missing[0]}).")
    return _finish(samples, multi_label=label_delim is not None, origin=f"csv:{csv_path}")


ORIGIN_SEPARATOR = "|"


def load_data(
    spec: str | Path | Sequence[str | Path], *, csv_file: Path | None = None, label_delim: str | None = None
) -> LabelledData:
    """One or several data sources (folders or CSV files) merged into one labelled set."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not specs:
        raise UsageError("No training data was given.")
    parts = [_load_one(s, csv_file, label_delim) for s in specs]
    if len(parts) == 1:
        return parts[0]
    if len({p.multi_label for p in parts}) > 1:
        raise UsageError("Single-label and multi-label data cannot be mixed.")
    samples = [s for p in parts for s in p.samples]
    return _finish(samples, multi_label=parts[0].multi_label, origin=ORIGIN_SEPARATOR.join(p.origin for p in parts))


def load_origin(origin: str) -> LabelledData:
    """Reload the data a bundle records as its origin (``folder:/a|csv:/b.csv``)."""
    specs: list[str | Path] = []
    for part in origin.split(ORIGIN_SEPARATOR):
        kind, _, where = part.partition(":")
        if kind not in ("folder", "csv") or not where:
            raise UsageError("The model does not say what data it was trained on; pass --data.")
        if not Path(where).exists():
            raise UsageError(f"The model's training data '{where}' is gone; pass --data.")
        specs.append(Path(where))
    return load_data(specs)


def _load_one(spec: str | Path, csv_file: Path | None, label_delim: str | None) -> LabelledData:
    if csv_file is not None:
        return load_csv(csv_file, root=Path(spec), label_delim=label_delim)
    path = Path(spec)
    if path.suffix.lower() == ".csv":
        return load_csv(path, label_delim=label_delim)
    return load_folder(path)


def _finish(samples: list[Sample], *, multi_label: bool, origin: str) -> LabelledData:
    if not samples:
        raise UsageError("No labelled photos were found.")
    classes = tuple(sorted({label for s in samples for label in s.labels}))
    problem = class_names_problem(classes)
    if problem:
        raise UsageError(f"The data cannot be used: {problem}.")
    if len(classes) < 2:
        raise UsageError("At least two classes are needed to train a classifier.")
    return LabelledData(tuple(samples), classes, multi_label, origin)


_SERIES = re.compile(r"^(?P<stem>.*?[A-Za-z][^0-9]*?)[ _\-()]*\d{1,4}\)?$")


def series_key(path: Path) -> str | None:
    """``sofa_03.jpg`` → ``sofa``: photos named as one series; None for bare numbers."""
    match = _SERIES.match(path.stem)
    return match.group("stem").lower() if match else None


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def leak_groups(samples: Sequence[Sample], *, max_series: int = 12) -> list[int]:
    """A group id per sample: near-duplicates and short series share one.

    A "series" that is very long (``image_1`` … ``image_900`` from a download tool) says nothing
    about the photos, so series larger than ``max_series`` are ignored.
    """
    n = len(samples)
    uf = _UnionFind(n)
    by_series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        key = series_key(s.path)
        if key is not None:
            by_series[(str(s.path.parent), key)].append(i)
    for members in by_series.values():
        if 1 < len(members) <= max_series:
            for j in members[1:]:
                uf.union(members[0], j)
    hashes = [dhash(s.path) for s in samples]
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        # A nearly blank hash (a plain backdrop) matches everything and would chain unrelated photos.
        if h is not None and 8 <= h.bit_count() <= 56:
            by_class[samples[i].labels[0]].append(i)
    for known in by_class.values():
        values = np.array([hashes[i] for i in known], dtype=np.uint64)
        for a in range(len(known) - 1):
            xor = np.bitwise_xor(values[a], values[a + 1 :])
            dist = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
            for b in np.flatnonzero(dist <= NEAR_DUPLICATE_BITS):
                uf.union(known[a], known[a + 1 + int(b)])
    return [uf.find(i) for i in range(n)]


def split(data: LabelledData, valid_pct: float = 0.2, seed: int = 42) -> tuple[list[int], list[int]]:
    """Train and validation indices: stratified by (first) class, leak groups kept together."""
    if any(s.is_valid is not None for s in data.samples):
        valid = [i for i, s in enumerate(data.samples) if s.is_valid]
        train = [i for i, s in enumerate(data.samples) if not s.is_valid]
        if not valid:
            raise UsageError("The data marks no photo for validation.")
        return train, valid
    if not 0.0 < valid_pct < 1.0:
        raise UsageError("The validation share must be between 0 and 1.")
    groups = leak_groups(data.samples)
    rng = random.Random(seed)
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    by_class: dict[str, list[int]] = defaultdict(list)
    for g, idx in members.items():
        by_class[data.samples[idx[0]].labels[0]].append(g)
    valid_set: set[int] = set()
    for cls in sorted(by_class):
        gs = sorted(by_class[cls])
        rng.shuffle(gs)
        total = sum(len(members[g]) for g in gs)
        target = max(1, round(total * valid_pct))
        taken = 0
        for g in gs:
            if taken >= target:
                break
            valid_set.update(members[g])
            taken += len(members[g])
    train = [i for i in range(len(data.samples)) if i not in valid_set]
    valid = sorted(valid_set)
    return train, valid


def fingerprint(samples: Iterable[Sample]) -> str:
    """Identifies a validation set, so two models' accuracies are compared on the same photos."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: (s.path.name, s.labels)):
        digest.update(f"{s.path.name}\t{'|'.join(s.labels)}\n".encode())
    return digest.hexdigest()[:16]
