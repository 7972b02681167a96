"""The correction loop on real photos: correct 30 wrong predictions, retrain, compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sorter.errors import UsageError
from sorter.files.corrections import CorrectionStore, correct, undo_correction
from sorter.files.journal import Journal
from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.classifier import Classifier
from sorter.train.retrain import retrain
from tests.conftest import run_sorter, sha256


def test_correct_moves_the_copy_logs_it_and_can_be_undone(tiny_model, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    classifier = Classifier.load(tiny_model.path, "cpu")
    out = tmp_path / "out"
    events = []
    drive(sort_folder(SortOptions(tables, out, threshold=0.0), classifier), events.append)
    photo = events[0].destinations[0]
    predicted = events[0].labels[0]
    with CorrectionStore(tmp_path / "store" / "corrections.sqlite") as store:
        done = correct(out, photo, "table", store)
        assert done.path == out.resolve() / "table" / photo.name
        assert not photo.exists() and sha256(done.path) == sha256(events[0].source)
        c = done.correction
        assert (c.predicted, c.corrected, c.original) == (predicted, "table", events[0].source)
        assert c.stored.exists() and sha256(c.stored) == c.sha256, "the store keeps its own copy"
        assert c.model == str(tiny_model.path), "the journal names the bundle that sorted"
        with Journal.open(out) as journal:
            assert journal.placement_at(done.path) is not None
        with pytest.raises(UsageError):
            correct(out, done.path, "../evil", store)
        with pytest.raises(UsageError):
            correct(out, events[1].source, "table", store)  # not inside the sorted folder
        back = undo_correction(out, store)
        assert back == photo and photo.exists() and not done.path.exists()
        assert store.all() == []


def test_retrain_fixes_most_corrected_photos_without_losing_accuracy(tiny_model, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old_bytes = tiny_model.path.read_bytes()
    classifier = Classifier.load(tiny_model.path, "cpu")
    out = tmp_path / "out"
    events = []
    drive(sort_folder(SortOptions(tables, out, threshold=0.0), classifier), events.append)
    assert all(e.labels[0] != "table" for e in events), "30 deliberately wrong predictions"
    store = CorrectionStore(tmp_path / "store" / "corrections.sqlite")
    for e in events:
        correct(out, e.destinations[0], "table", store)
    assert len(store) == 30 and len(list((out / "table").iterdir())) == 30

    result = retrain(tiny_model.path, tmp_path / "tiny-v2.safetensors", store)
    store.close()
    assert tiny_model.path.read_bytes() == old_bytes, "the old bundle is kept untouched"
    assert result.same_validation
    assert result.new_classes == ["table"]
    assert result.old_corrected_accuracy == 0.0
    assert result.new_corrected_accuracy >= 0.8, "most corrections are learned"
    assert result.new_valid_accuracy >= result.old_valid_accuracy - 0.07, "no loss elsewhere"

    new = Classifier.load(result.new_path, "cpu")
    assert new.classes == ("bed", "chair", "sofa", "table")
    probs = np.stack([p.probs for p in new.classify([e.source for e in events[:5]], lambda p: p)])
    assert (probs.argmax(1) == 3).sum() >= 4


def test_correct_cli(tiny_model, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    first = run_sorter(
        "sort", str(tables), "--out", str(out), "--model", str(tiny_model.path), "--threshold", "0", "--device", "cpu"
    )
    assert first.returncode == 0, first.stderr
    photo = next(p for p in out.rglob("*.jpeg"))
    result = run_sorter("correct", str(photo), "table")
    assert result.returncode == 0, result.stderr
    assert (out / "table" / photo.name).exists() and not photo.exists()
    assert "1 corrections are saved" in result.stdout


def test_a_retrain_learns_only_from_what_its_own_model_sorted(  # type: ignore[no-untyped-def]
    tiny_model, tables: Path, tmp_path: Path, general_classifier
) -> None:
    """Issue 29: a fix in a folder the general model sorted (the cat put into a new folder
    'doggo') used to give the furniture model a class 'doggo'; the plan lists what is used."""
    from sorter.jobs.reviews import plan_retrain
    from tests.conftest import SAMPLES

    tiny = Classifier.load(tiny_model.path, "cpu")
    furniture_out, general_out = tmp_path / "furniture-sorted", tmp_path / "samples-sorted"
    events = []
    drive(sort_folder(SortOptions(tables, furniture_out, threshold=0.0), tiny), events.append)
    drive(sort_folder(SortOptions(SAMPLES, general_out), general_classifier), lambda e: None)
    with CorrectionStore(tmp_path / "store" / "corrections.sqlite") as store:
        correct(furniture_out, events[0].destinations[0], "table", store)
        correct(general_out, general_out / "Animals" / "chelsea.jpg", "doggo", store)
        plan = plan_retrain(store, tiny_model.path)
        assert (plan.corrections, plan.new_classes, plan.left_out) == (1, ("table",), 1)
        assert list(plan.folders) == [str(furniture_out.resolve())]
        assert any("left out" in line for line in plan.sentences())
        result = retrain(tiny_model.path, tmp_path / "tiny-v2.safetensors", store)
    assert result.new_classes == ["table"], "the general model's folder teaches the furniture model nothing"
    assert result.corrections == 1


def test_a_retrain_never_learns_from_a_run_that_was_undone(tiny_model, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 29: corrections of photos whose run was undone used to give the retrained model
    their classes all the same."""
    from sorter.files.undo import undo_last_run

    out = tmp_path / "out"
    events = []
    drive(sort_folder(SortOptions(tables, out, threshold=0.0), Classifier.load(tiny_model.path, "cpu")), events.append)
    with CorrectionStore(tmp_path / "store" / "corrections.sqlite") as store:
        for e in events[:3]:
            correct(out, e.destinations[0], "table", store)
        report = undo_last_run(out, store)
        assert report.removed == 30 and report.reviews_withdrawn == 3
        assert store.all() == [] and len(store.history()) == 3, "withdrawn, kept in the history"
        with pytest.raises(UsageError, match="corrected or confirmed"):
            retrain(tiny_model.path, tmp_path / "tiny-v2.safetensors", store)


def test_retrain_cli_lists_what_it_uses_before_it_trains(tiny_model, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    import os

    env = {**os.environ, "SORTER_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "out"
    first = run_sorter(
        "sort",
        str(tables),
        "--out",
        str(out),
        "--model",
        str(tiny_model.path),
        "--threshold",
        "0",
        "--device",
        "cpu",
        env=env,
    )
    assert first.returncode == 0, first.stderr
    photo = next(out.rglob("*.jpeg"))
    assert run_sorter("correct", str(photo), "table", env=env).returncode == 0
    result = run_sorter("retrain", str(tiny_model.path), "--out", str(tmp_path / "v2.safetensors"), env=env)
    assert result.returncode == 0, result.stderr
    assert (
        f"A retrain of 'tiny' learns from 1 correction and 0 confirmations:\n  {out.resolve()}: 1 corrected"
        in result.stderr
    )
    assert "New categories: table." in result.stderr
    again = run_sorter("retrain", str(tiny_model.path), "--out", str(tmp_path / "v3.safetensors"), "--json", env=env)
    assert json.loads(again.stdout)["plan"]["new_classes"] == ["table"]
