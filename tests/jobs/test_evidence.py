"""One set of evidence for every decision: a folder with faces, in a folder unlike the training
photos, is decided the same when it is sorted and when it is re-scored from the kept features, so
re-sorting it straight after the sort moves nothing (issue 25, item 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sorter.files.corrections import CorrectionStore
from sorter.jobs.events import drive
from sorter.jobs.rescore import rescore
from sorter.jobs.resort import resort
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.learn.datasets import load_data
from sorter.learn.evidence import gather
from sorter.learn.shift import TypicalityIndex
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.model.people import PeopleRule
from sorter.train.recipe import TrainSettings
from sorter.train.train import fit_and_export
from tests.conftest import DATASETS, SAMPLES

CLASSES = ("dog", "guitar", "house", "person")


def _photos(source: str, cls: str, count: int, offset: int = 0) -> list[Path]:
    folder = DATASETS / source / "images" / cls
    if not folder.is_dir():
        pytest.fail(f"real test photos are missing: {folder} (set SORTER_DATASETS)")
    return sorted(folder.iterdir())[offset : offset + count]


@pytest.fixture(scope="module")
def people_model(tmp_path_factory: pytest.TempPathFactory, test_device: str) -> Path:
    """A small real model of photos (four PACS classes) that sends a prominent face to person."""
    root = tmp_path_factory.mktemp("pacs") / "data"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for photo in _photos("pacs_photo", cls, 30):
            shutil.copy2(photo, root / cls / photo.name)
    settings = TrainSettings(epochs=4, views=1, seed=3, device=test_device, people_folder="person")
    return fit_and_export(load_data(root), root.parent / "people.safetensors", settings).path


def test_sorting_and_rescoring_build_the_same_evidence_and_nothing_moves(
    people_model: Path, tmp_path: Path, test_device: str
) -> None:
    bundle = load_bundle(people_model)
    assert bundle.config.people == PeopleRule("person") and bundle.config.replay is not None
    src = tmp_path / "photos"
    src.mkdir()
    # photos like the training ones (people among them), then paintings and sketches: a shifted
    # folder of fewer than the probe's 64 photos, so sorting's one verdict is over all of them
    chosen = [
        *(("photo", p) for cls in CLASSES for p in _photos("pacs_photo", cls, 3, offset=100)),
        *(("art", p) for cls in CLASSES for p in _photos("pacs_art", cls, 4)),
        *(("sketch", p) for cls in CLASSES for p in _photos("pacs_sketch", cls, 3)),
    ]
    for source, p in chosen:
        shutil.copy2(p, src / f"{source}_{p.parent.name}_{p.name}")
    shutil.copy2(SAMPLES / "astronaut.jpg", src / "astronaut.jpg")
    out = tmp_path / "sorted"
    classifier = Classifier(bundle, Classifier.load(people_model, test_device).device, batch_size=8)
    events = []
    summary = drive(sort_folder(SortOptions(src, out), classifier), events.append)
    assert summary.failed == 0 and summary.total == len(chosen) + 1
    assert summary.shift is not None and summary.shift["shifted"], summary.shift
    # the astronaut is like no training photo; the face vouches for it and sends it to person
    assert (out / "person" / "astronaut.jpg").exists()
    at_sort = {ev.destinations[0].name: (ev.destinations[0].parent.name, ev.reason, ev.confidence) for ev in events}
    assert len(at_sort) == summary.total

    with CorrectionStore(tmp_path / "corrections.sqlite") as store:
        again = rescore(out, bundle, store)
        assert again.shift is not None and again.shift.shifted
        assert again.shift.atypical == summary.shift["atypical"]
        assert len(again.photos) == summary.total and again.missing == 0
        for r in again.photos:  # the same folder, for the same reason, from the same confidence
            folder, reason, confidence = at_sort[r.path.name]
            assert (r.current, r.suggested, r.reason) == (folder, folder, reason), r.path.name
            assert r.confidence == pytest.approx(confidence, abs=1e-3), r.path.name
        assert any(r.reason is not None for r in again.photos) and any(r.reason is None for r in again.photos)
        assert resort(out, bundle, store).moved == []


def test_a_face_acts_on_the_probabilities_the_fit_and_the_typicality_in_one_place(people_model: Path) -> None:
    bundle = load_bundle(people_model)
    replay = bundle.read_replay()
    assert replay is not None
    index = TypicalityIndex.from_replay(replay)
    assert index is not None
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, replay.features.shape[1])).astype(np.float32)  # like no photo
    k = len(bundle.config.classes)
    probs = np.full((3, k), 1.0 / k, dtype=np.float32)
    probs[:, 0] = 0.7
    probs /= probs.sum(axis=1, keepdims=True)
    fit = np.array([0.1, 0.1, 0.1], dtype=np.float32)
    faces = np.array([0.0, 0.3, 0.05], dtype=np.float32)  # only the second face is prominent
    ev = gather(bundle.config, probs, fit, features, faces, index)
    person = bundle.config.classes.index("person")
    assert ev.probs[1, person] >= 0.95 and ev.fit[1] == 1.0 and ev.typical[1] == 1.0
    for row in (0, 2):
        assert ev.probs[row, person] == pytest.approx(probs[row, person]) and ev.fit[row] == pytest.approx(0.1)
        assert ev.typical[row] < 0.05
    # the folder's verdict counts the photos against the training photos alone, face or not
    assert ev.untaught is not None and float(ev.untaught[1]) < 0.05
    # a reviewed photo teaches the typicality; the folder's verdict was taken before any review
    taught = gather(bundle.config, probs, fit, features, faces, index, [(features[0], bundle.config.classes[0])])
    assert taught.untaught is None and taught.typical[1] == 1.0 and float(taught.typical[2]) < 0.05
    # without the rule's detector answer, nothing is vouched for
    plain = gather(bundle.config, probs, fit, features, None, index)
    assert np.array_equal(plain.probs, probs) and float(plain.typical.max()) < 0.05
