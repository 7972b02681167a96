"""Training fixtures: real table photos the tiny model (tests/conftest.py) cannot know."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def tables(tmp_path: Path, furniture: Path) -> Path:
    """30 real table photos: a category the tiny bed/chair/sofa model cannot know."""
    folder = tmp_path / "new photos"
    folder.mkdir()
    for photo in sorted((furniture / "table").iterdir())[:30]:
        shutil.copy2(photo, folder / photo.name)
    return folder


def sort_and_correct_tables(model: Path, tables: Path, tmp_path: Path, count: int = 10) -> Path:
    """Sort the table photos with ``model`` (every one sorted), then tell Sorter that ``count``
    of them are tables: the corrections store (its path) a retrain learns the new class from."""
    from typing import Any

    from sorter.files.corrections import CorrectionStore, correct
    from sorter.jobs.events import drive
    from sorter.jobs.sorting import SortOptions, sort_folder
    from sorter.model.classifier import Classifier

    out = tmp_path / "out"
    events: list[Any] = []
    drive(sort_folder(SortOptions(tables, out, threshold=0.0), Classifier.load(model, "cpu")), events.append)
    db = tmp_path / "store" / "corrections.sqlite"
    with CorrectionStore(db) as store:
        for e in events[:count]:
            correct(out, e.destinations[0], "table", store)
    return db
