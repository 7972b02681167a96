"""A multi-label bundle copies a photo into every label that reaches the threshold."""

from __future__ import annotations

from pathlib import Path

import torch

from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.architecture import SorterNet
from sorter.model.bundle import load_bundle, save_bundle
from sorter.model.classifier import Classifier
from sorter.model.config import BundleConfig
from tests.conftest import content_counts


def test_multi_label_copies_into_every_predicted_folder(photo_folder: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = SorterNet("efficientnet_lite0", 3)
    config = BundleConfig(architecture="efficientnet_lite0", classes=("bed", "chair", "sofa"), multi_label=True)
    classifier = Classifier(load_bundle(save_bundle(tmp_path / "multi.safetensors", net, config)), torch.device("cpu"))

    everywhere = tmp_path / "all"
    summary = drive(sort_folder(SortOptions(photo_folder, everywhere, threshold=0.0), classifier), lambda e: None)
    assert summary.sorted == 21
    for label in ("bed", "chair", "sofa"):
        assert content_counts(everywhere / label) == content_counts(photo_folder)

    nowhere = tmp_path / "none"
    summary = drive(sort_folder(SortOptions(photo_folder, nowhere, threshold=1.0), classifier), lambda e: None)
    assert summary.unsure == 21
    assert content_counts(nowhere / "_unsure") == content_counts(photo_folder)

    moved = tmp_path / "moved"
    summary = drive(sort_folder(SortOptions(photo_folder, moved, threshold=0.0, move=True), classifier), lambda e: None)
    assert summary.sorted == 21 and not any(p.is_file() for p in photo_folder.rglob("*"))
    assert sum(content_counts(moved).values()) == 3 * 21
