"""Photos of none of the categories are set apart, with their reason; thresholds come from the bundle."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sorter.jobs.policy import NONE_OF_THESE, policy_for
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.bundle import load_bundle, save_bundle
from sorter.model.calibration import GRID, Calibration
from sorter.model.classifier import Classifier
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER
from tests.conftest import DATASETS, run_sorter


def test_trained_bundle_carries_fit_and_calibration(tiny_model: Any) -> None:
    bundle = load_bundle(tiny_model.path)
    assert bundle.config.ood is not None and bundle.config.ood.anchors == "means"
    assert bundle.ood_anchors is not None and tuple(bundle.ood_anchors.shape) == (3, 1280)
    table = bundle.config.calibration_table()
    assert table is not None and 0.25 <= table.temperature <= 8.0
    assert bundle.lacks_statistics is None


def test_insects_go_to_unsure_with_their_reason_and_furniture_is_sorted(
    tiny_model: Any, furniture: Path, tmp_path: Path
) -> None:
    src = tmp_path / "photos"
    src.mkdir()
    ants = sorted((DATASETS / "hymenoptera" / "images" / "ants").iterdir())[:4]
    for p in ants:
        shutil.copy2(p, src / f"ant_{p.name}")
    chairs = sorted((furniture / "chair").iterdir())[60:64]
    for p in chairs:
        shutil.copy2(p, src / f"chair_{p.name}")
    classifier = Classifier(load_bundle(tiny_model.path), torch.device("cpu"))
    events = {
        ev.source.name: ev for ev in sort_folder(SortOptions(src, tmp_path / "out", other_folder=True), classifier)
    }
    for p in ants:
        ev = events[f"ant_{p.name}"]
        assert ev.labels == (OTHER_FOLDER,) and ev.reason == NONE_OF_THESE, (ev.labels, ev.reason)
    sorted_chairs = [events[f"chair_{p.name}"] for p in chairs]
    assert sum(ev.labels == ("chair",) for ev in sorted_chairs) >= 2, [(ev.labels, ev.reason) for ev in sorted_chairs]
    # a model of 24 photos a class has a rough idea of "chair": one in four may be set apart
    assert sum(ev.reason == NONE_OF_THESE for ev in sorted_chairs) <= 1, [
        (ev.labels, ev.reason) for ev in sorted_chairs
    ]

    fresh = {**os.environ, "SORTER_DATA_DIR": str(tmp_path / "data")}  # no corrections from other tests
    result = run_sorter(
        "sort", str(src), "--out", str(tmp_path / "out2"), "--model", str(tiny_model.path), "--json", env=fresh
    )
    summary = json.loads(result.stdout)
    reasons = {Path(r["path"]).name: r["reason"] for r in summary["not_sorted"]}
    assert all(reasons.get(f"ant_{p.name}") == NONE_OF_THESE for p in ants)
    assert all((tmp_path / "out2" / UNSURE_FOLDER / f"ant_{p.name}").exists() for p in ants)
    assert summary["notes"] == []


def test_a_bundle_without_the_statistics_still_sorts_with_a_note(
    tiny_model: Any, photo_folder: Path, tmp_path: Path
) -> None:
    bundle = load_bundle(tiny_model.path)
    old_config = replace(bundle.config, ood=None, calibration=None)
    old = save_bundle(tmp_path / "old.safetensors", bundle.build_model(), old_config)
    assert load_bundle(old).lacks_statistics is not None
    result = run_sorter("sort", str(photo_folder), "--out", str(tmp_path / "out"), "--model", str(old), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 21 and summary["failed"] == 0
    assert len(summary["notes"]) == 1 and "earlier version" in summary["notes"][0]
    assert not any(r["reason"] == NONE_OF_THESE for r in summary["not_sorted"])


def test_thresholds_come_from_the_bundle_calibration(tiny_model: Any) -> None:
    config = load_bundle(tiny_model.path).config
    # class 0 reaches 95 % only from confidence 0.90; the others from 0.50; overall from 0.60
    row0 = [0.9 if t < 0.9 else 0.96 for t in GRID]
    row = [0.9 if t < 0.5 else 0.99 for t in GRID]
    overall = [0.9 if t < 0.6 else 0.97 for t in GRID]
    table = Calibration(1.0, (tuple(row0), tuple(row), tuple(row)), tuple(overall))
    policy = policy_for(replace(config, calibration=table.to_json()), precision=0.95)
    assert np.allclose(policy.thresholds, [0.9, 0.5, 0.5])
    strict = policy_for(replace(config, calibration=table.to_json()), precision=0.98)
    assert np.allclose(strict.thresholds, [0.99, 0.5, 0.5])  # class 0 never reaches 98 %: the highest
    assert np.allclose(policy_for(config, threshold=0.7).thresholds, 0.7)
