"""What the last re-sort stated, kept beside its folders (:mod:`sorter.jobs.stated`), read back by
a model whose categories may have changed since: a retrain can add a category the reviews named,
and the categories are kept in name order, so the others shift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sorter.files.journal import STATE_DIR, Journal
from sorter.jobs.stated import STATED_NAME, keep_stated, stated
from sorter.learn.estimate import PrecisionEstimate

STATED = PrecisionEstimate(0.95, 30, 1.2, 1.5, 0.9, 0.97, 0.95, 10, 100, None, 0.8, (1.1, 1.3, 2.0))
CLASSES = ("bed", "chair", "sofa")


def test_each_category_keeps_its_temperature_by_name_after_a_retrain_adds_one(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        keep_stated(tmp_path, journal, STATED, CLASSES)
        same = stated(tmp_path, journal, CLASSES)
        grown = stated(tmp_path, journal, (*CLASSES, "stool"))
        shifted = stated(tmp_path, journal, ("armchair", *CLASSES))
    assert same == STATED
    assert grown is not None and shifted is not None
    assert grown.class_bounds == (1.1, 1.3, 2.0, 1.5), "a new category is read at the folder's temperature"
    assert shifted.class_bounds == (1.5, 1.1, 1.3, 2.0)
    stool = np.array([[0.01, 0.01, 0.01, 0.97]])
    assert grown.sorts(stool).shape == (1,)  # was an IndexError: three temperatures, four categories
    sofa = np.array([[0.02, 0.03, 0.95]])
    sofa_after = np.array([[0.0, 0.02, 0.03, 0.95]])
    assert np.allclose(same.confidence(sofa), shifted.confidence(sofa_after)), "sofa keeps sofa's"


def test_a_note_without_its_categories_reads_at_the_folders_temperature(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        keep_stated(tmp_path, journal, STATED, CLASSES)
        note = tmp_path / STATE_DIR / STATED_NAME
        record = json.loads(note.read_text(encoding="utf-8"))
        del record["classes"]  # written before the categories were kept
        note.write_text(json.dumps(record), encoding="utf-8")
        older = stated(tmp_path, journal, CLASSES)
    assert older is not None and older.class_bounds is None and older.cut == STATED.cut
