"""A trained bundle can opt into the face detector: photos with a prominent face go to one of its
categories (seed 002's "one person in the photo" rule), and a retrain keeps the rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sorter.errors import UsageError
from sorter.files.corrections import CorrectionStore, correct
from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.learn.datasets import load_data
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.model.people import PeopleRule
from sorter.train.recipe import TrainSettings
from sorter.train.retrain import retrain
from sorter.train.train import fit_and_export
from tests.conftest import SAMPLES


def test_a_trained_model_sends_people_to_the_category_it_names(tiny_data: Path, tmp_path: Path) -> None:
    settings = TrainSettings(epochs=2, views=1, seed=4, people_folder="chair")
    trained = fit_and_export(load_data(tiny_data), tmp_path / "people.safetensors", settings)
    bundle = load_bundle(trained.path)
    assert bundle.config.people == PeopleRule("chair")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("astronaut", "chelsea", "brick"):
        shutil.copy2(SAMPLES / f"{name}.jpg", photos / f"{name}.jpg")
    out = tmp_path / "out"
    drive(
        sort_folder(SortOptions(photos, out), Classifier(bundle, Classifier.load(trained.path).device)), lambda _: None
    )
    assert (out / "chair" / "astronaut.jpg").exists()
    assert not (out / "chair" / "chelsea.jpg").exists() or not (out / "chair" / "brick.jpg").exists()

    # a retrain after a correction keeps the rule
    with CorrectionStore(tmp_path / "corrections.sqlite") as store:
        correct(out, out / "_unsure" / "brick.jpg", "bed", store)
        result = retrain(trained.path, tmp_path / "people-v2.safetensors", store)
    assert load_bundle(result.new_path).config.people == PeopleRule("chair")

    with pytest.raises(UsageError, match="Photos of people can go only to one of the categories"):
        fit_and_export(load_data(tiny_data), tmp_path / "bad.safetensors", TrainSettings(people_folder="People"))
