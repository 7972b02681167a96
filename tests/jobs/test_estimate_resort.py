"""The precision a re-sort states, on real photos: line drawings made from real furniture photos,
sorted by the shipped model (a folder unlike its training photos), then reviewed in the review's
own order. With too few reviews no estimate is stated and the validation rule decides; with
enough, ``sorter resort --json`` and the review state the same estimate, and what the re-sort
leaves in the category folders is exactly what the estimate said it would sort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.cli import main
from sorter.files.corrections import CorrectionStore, confirm, correct
from sorter.files.journal import STATE_DIR, Journal
from sorter.jobs.rescore import WAIT_REASON, rescore
from sorter.jobs.review_queue import build_queue, folder_note, photos_in_order
from sorter.jobs.stated import STATED_NAME
from sorter.knobs import DEFAULT
from sorter.learn.shift import UNLIKE_REASON
from sorter.model.bundle import load_bundle
from sorter.names import HOLDING_FOLDERS, UNSURE_FOLDER
from sorter.paths import corrections_db
from sorter.train.retrain import retrain
from tests.jobs.test_shift import MODEL, _photos, make_sketches


@pytest.fixture(scope="module")
def drawings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("drawings") / "drawings"
    folder.mkdir()
    return folder, make_sketches(_photos(300), folder)


def _sorted(
    drawings: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[Path, dict[str, str]]:
    """The drawings sorted by the shipped model into a fresh folder, with this test's own
    corrections store: the output folder and each photo's true label."""
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path / "data"))
    folder, truth = drawings
    out = tmp_path / "out"
    assert main(["sort", str(folder), "--out", str(out), "--model", str(MODEL), "--backend", "torch", "--json"]) == 0
    capsys.readouterr()
    return out, truth


def _review(out: Path, truth: dict[str, str], count: int) -> None:
    """Review ``count`` photos in the review's order, as a user would: fix the wrong, confirm the right."""
    bundle = load_bundle(MODEL)
    with CorrectionStore(corrections_db()) as store:
        queue = build_queue(out, bundle, store)
        with Journal.open(out, create=False, lock=False) as journal:
            source_of = {p.path: p.source.name for p in journal.placements()}
        for path in photos_in_order(queue)[:count]:
            if path.parent.name in HOLDING_FOLDERS or path.parent.name != truth[source_of[path]]:
                correct(out, path, truth[source_of[path]], store)
            else:
                confirm(out, path, store)


def _resort(out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["resort", str(out), "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_the_estimate_is_stated_only_with_enough_reviews_and_the_resort_keeps_to_it(
    drawings: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, truth = _sorted(drawings, tmp_path, monkeypatch, capsys)
    _review(out, truth, DEFAULT.min_reviews - 1)
    few = _resort(out, capsys)
    assert few["estimate"] is None, "a rule is not applied on too few reviews"
    assert isinstance(few["shift"], dict) and few["shift"]["shifted"] is True
    moved = few["moved"]
    assert isinstance(moved, list)
    released = [m for m in moved if Path(m["to"]).parent.name not in HOLDING_FOLDERS]
    assert not released, "in a shifted folder, too few reviews release no photo (their votes too)"
    assert few["waiting"], "what their votes suggest waits in _unsure"
    with CorrectionStore(corrections_db()) as store:
        offered = [i for i in build_queue(out, load_bundle(MODEL), store).items if i.waits]
    assert len(offered) == few["waiting"]
    assert all(i.suggested and i.label == UNSURE_FOLDER and i.reason == WAIT_REASON for i in offered)

    _review(out, truth, 6)
    done = DEFAULT.min_reviews - 1 + 6
    data = _resort(out, capsys)
    stated = data["estimate"]
    assert isinstance(stated, dict)
    assert stated["reviews"] == DEFAULT.min_reviews - 1 + 6 and stated["target"] == 0.95
    assert stated["sorted"] + stated["held_back"] == len(truth) - done
    if stated["sorted"]:
        assert 0 < stated["lower_bound"] <= stated["expected_precision"] <= 1  # type: ignore[operator]
    bundle = load_bundle(MODEL)
    with CorrectionStore(corrections_db()) as store:
        found = rescore(out, bundle, store)
        queue = build_queue(out, bundle, store)
    assert found.estimate is not None and found.estimate.to_json() == stated, "the review states the same"
    assert queue.estimate is not None and queue.estimate.to_json() == stated
    assert folder_note(queue).startswith(f"From your {stated['reviews']} reviews")
    rest = [r for r in found.photos if not r.reviewed]
    in_categories = [r for r in rest if r.current not in HOLDING_FOLDERS]
    assert len(in_categories) == stated["sorted"], "the re-sort sorted what the estimate said, no more"
    assert all(r.reason != UNLIKE_REASON for r in rest), "the estimate replaces the guess made before reviews"


def test_the_review_states_what_the_last_resort_stated_until_the_folders_change(
    drawings: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The review rebuilds after every click without estimating again (a second or more): it
    states what the re-sort stated about the folders as they are, and decides as it did; after a
    further review it still does, and once the re-sort is undone, or its note is damaged, the
    review states nothing rather than a precision the folders no longer have."""
    out, truth = _sorted(drawings, tmp_path, monkeypatch, capsys)
    bundle = load_bundle(MODEL)
    with CorrectionStore(corrections_db()) as store:
        assert build_queue(out, bundle, store).estimate is None, "nothing stated before a re-sort"
    _review(out, truth, DEFAULT.min_reviews + 5)
    with CorrectionStore(corrections_db()) as store:
        assert build_queue(out, bundle, store).estimate is None, "the review does not estimate by itself"
    stated = _resort(out, capsys)["estimate"]
    assert isinstance(stated, dict)
    with CorrectionStore(corrections_db()) as store:
        queue = build_queue(out, bundle, store)
        assert queue.estimate is not None and queue.estimate.to_json() == stated
        held = {i.path for i in queue.items if i.label == UNSURE_FOLDER and i.suggested is not None}
        assert not held, "the review suggests no move that the re-sort just refused"
    _review(out, truth, 1)  # one more click: the folders are still the re-sort's
    with CorrectionStore(corrections_db()) as store:
        queue = build_queue(out, bundle, store)
    assert queue.estimate is not None and queue.estimate.to_json() == stated

    note = out / STATE_DIR / STATED_NAME
    kept = note.read_bytes()
    note.write_bytes(b"{not json")
    with CorrectionStore(corrections_db()) as store:
        assert build_queue(out, bundle, store).estimate is None
    note.write_bytes(kept)

    assert main(["undo", str(out)]) == 0
    capsys.readouterr()
    with CorrectionStore(corrections_db()) as store:
        assert build_queue(out, bundle, store).estimate is None, "undone: the folders are no longer the re-sort's"


def test_after_a_retrain_adds_a_category_the_review_reads_the_statement_by_category(
    drawings: tuple[Path, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The statement keeps a temperature per category. A retrain can add a category the review
    named ('armchair', which comes first in name order, so every other category shifts); the
    folders are still the re-sort's, so the review still states and decides by it, each
    category at its own temperature and the new one at the folder's."""
    out, truth = _sorted(drawings, tmp_path, monkeypatch, capsys)
    _review(out, truth, DEFAULT.min_reviews + 5)
    bundle = load_bundle(MODEL)
    with CorrectionStore(corrections_db()) as store:
        named = next(i.path for i in build_queue(out, bundle, store).items if not i.reviewed)
        correct(out, named, "armchair", store)
    assert isinstance(_resort(out, capsys)["estimate"], dict)
    note = json.loads((out / STATE_DIR / STATED_NAME).read_text(encoding="utf-8"))
    bounds = note["estimate"]["class_bounds"]
    assert note["classes"] == list(bundle.config.classes) and len(bounds) == len(bundle.config.classes)

    with CorrectionStore(corrections_db()) as store:
        result = retrain(MODEL, tmp_path / "retrained.safetensors", store)
        assert result.new_classes == ["armchair"]
        grown = load_bundle(result.new_path)
        assert grown.config.classes == ("armchair", *bundle.config.classes)
        queue = build_queue(out, grown, store)
    assert queue.estimate is not None
    assert queue.estimate.class_bounds == (note["estimate"]["ratio_bound"], *bounds)
