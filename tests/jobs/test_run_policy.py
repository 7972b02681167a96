"""The review and re-sorting decide with the choices the folder was sorted with, not the defaults.

Before the journal kept them, `sorter resort` and the review re-scored at 95 % with `_other` off:
ants that the furniture model had put in `_other` at 80 % were all moved to `_unsure`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sorter.cli import main
from sorter.files.corrections import CorrectionStore
from sorter.files.journal import Journal
from sorter.jobs.policy import Choices
from sorter.jobs.review_queue import build_queue
from sorter.model.bundle import load_bundle
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER
from tests.conftest import DATASETS, REPO

FURNITURE_MODEL = REPO / "models" / "furniture.safetensors"


@pytest.fixture
def ants_and_chairs(furniture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path / "data"))  # no other test's corrections
    src = tmp_path / "photos"
    src.mkdir()
    for photo in sorted((DATASETS / "hymenoptera" / "images" / "ants").iterdir())[:15]:
        shutil.copy2(photo, src / f"ant-{photo.name}")
    for photo in sorted((furniture / "chair").iterdir())[:15]:
        shutil.copy2(photo, src / f"chair-{photo.name}")
    return src


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    assert main([*args, "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_resort_and_review_keep_the_runs_precision_and_other_folder(
    ants_and_chairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    model = str(FURNITURE_MODEL)
    sort_args = ["sort", str(ants_and_chairs), "--out", str(out), "--model", model, "--backend", "torch"]
    sorted_run = _run(capsys, *sort_args, "--precision", "0.8", "--other-folder")
    others = sorted((out / OTHER_FOLDER).iterdir()) if (out / OTHER_FOLDER).is_dir() else []
    assert len(others) >= 10, f"most ants fit no furniture category: {sorted_run['per_label']}"

    with Journal.open(out, create=False, lock=False) as journal:
        run = journal.last_sorting_run()
    assert run is not None and Path(run.model) == FURNITURE_MODEL
    assert Choices.from_json(run.decision) == Choices(precision=0.8, other_folder=True)

    # the review's queue suggests no move for them, and re-sorting keeps them where they are
    bundle = load_bundle(FURNITURE_MODEL)
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        queue = build_queue(out, bundle, store)
    suggested = {i.path: i.suggested for i in queue.items for _ in i.paths}
    assert all(suggested.get(p) is None for p in others), "a photo in _other is not suggested for _unsure"

    report = _run(capsys, "resort", str(out))
    moved = report["moved"]
    assert isinstance(moved, list)
    assert not [m for m in moved if Path(m["from"]).parent.name == OTHER_FOLDER]
    assert not [m for m in moved if Path(m["to"]).parent.name == UNSURE_FOLDER]
    assert all(p.exists() for p in others)
    # ants are unlike the training photos: in that folder no class sorts below the 80 % asked
    shift = report["shift"]
    assert isinstance(shift, dict) and shift["shifted"] is True
    expected = Choices(precision=0.8, other_folder=True).policy(bundle.config).under_shift(True)
    thresholds = report["thresholds"]
    assert isinstance(thresholds, dict)
    assert np.allclose([thresholds[c] for c in bundle.config.classes], np.round(expected.thresholds, 2))

    # the user can still ask for other choices; a new precision replaces the run's
    stricter = _run(capsys, "resort", str(out), "--precision", "0.99", "--no-other-folder")
    assert all(Path(m["to"]).parent.name == UNSURE_FOLDER for m in stricter["moved"])  # type: ignore[union-attr]
    assert not (out / OTHER_FOLDER).is_dir() or not any((out / OTHER_FOLDER).iterdir())


def test_a_fixed_threshold_stays_fixed_when_re_sorting(
    ants_and_chairs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["sort", str(ants_and_chairs), "--out", str(out), "--model", str(FURNITURE_MODEL), "--backend", "torch"]
    _run(capsys, *args, "--threshold", "0.6")
    report = _run(capsys, "resort", str(out))
    assert set(report["thresholds"].values()) == {0.6}  # type: ignore[union-attr]
    assert report["moved"] == [] and report["calibrated_on_reviewed"] == 0


def test_choices_survive_the_journal_and_old_journals_read_as_defaults(tmp_path: Path) -> None:
    choices = Choices(threshold=None, precision=0.9, other_folder=True)
    assert Choices.from_json(choices.to_json()) == choices
    assert Choices.from_json(None) is None and Choices.from_json("not json") is None
    assert choices.overridden(threshold=0.7) == Choices(0.7, 0.9, True)
    assert Choices(threshold=0.7).overridden(precision=0.9) == Choices(None, 0.9, False)

    # a journal written before runs kept their choices gains the column in place
    import sqlite3

    state = tmp_path / ".sorter"
    state.mkdir()
    db = sqlite3.connect(state / "journal.sqlite")
    db.execute(
        "CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, source TEXT NOT NULL, "
        "mode TEXT NOT NULL, model TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL)"
    )
    db.execute("INSERT INTO runs VALUES (1, 'x', 'y', '/src', 'copy', 'general', 'cpu', 'finished')")
    db.commit()
    db.close()
    with Journal.open(tmp_path) as journal:
        run = journal.last_sorting_run()
        assert run is not None and run.decision is None and run.model == "general"
        new = journal.start_run(Path("/src"), "copy", "m", "cpu", decision=choices.to_json())
        assert journal.runs()[-1].id == new and Choices.from_json(journal.runs()[-1].decision) == choices
