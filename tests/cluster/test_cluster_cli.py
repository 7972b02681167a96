"""`sorter sort --cluster` without a cluster: clear errors before anything is written, and the
actor's work. These run in the default test run and never import Ray (an address is checked before
Ray is imported; sorter.cluster imports it only inside functions)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sorter.cluster import NOT_SHARED, _Predictor
from tests.conftest import REPO, run_sorter


def _fails_in_one_line(result: object, *words: str) -> None:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode != 0  # type: ignore[attr-defined]
    assert len(stderr.splitlines()) == 1, stderr
    assert all(w in stderr for w in words), stderr


def test_an_unreachable_cluster_is_one_sentence_before_anything_is_written(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_sorter(
        "sort", str(photo_folder), "--out", str(out), "--model", "furniture", "--cluster", "127.0.0.1:9"
    )
    _fails_in_one_line(result, "Cannot reach the Ray cluster", "127.0.0.1:9")
    assert not out.exists()


def test_a_malformed_cluster_address_is_a_usage_error(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_sorter("sort", str(photo_folder), "--out", str(out), "--cluster", "not an address")
    _fails_in_one_line(result, "not a cluster address")
    assert not out.exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="Ray is installed here")
def test_without_ray_installed_the_cluster_asks_for_the_extra(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_sorter("sort", str(photo_folder), "--out", str(out), "--cluster", "local")
    _fails_in_one_line(result, "pip install 'sorter[cluster]'")
    assert not out.exists()


def test_the_cluster_actor_reports_photos_it_cannot_read_like_a_local_run(tmp_path: Path) -> None:
    """The actor's work without Ray: real photo → probabilities and features; fake → its reason;
    a path the worker cannot see → says the photos must be on shared storage."""
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"not a photo")
    real = REPO / "assets" / "samples" / "chelsea.jpg"
    actor = _Predictor(str(REPO / "models" / "general.safetensors"), "cpu", 1)
    paths = [str(real), str(fake), str(tmp_path / "elsewhere" / "cat.jpg")]
    out = actor({"index": np.arange(3), "path": np.array(paths, dtype=object)})
    assert list(out["error"]) == ["", "not an image, or an unsupported format", NOT_SHARED]
    classes = actor.classifier.classes
    assert classes[int(np.argmax(out["probs"][0]))] == "Animals"
    assert np.isnan(out["probs"][1:]).all()
    assert out["features"].shape == (3, 1280) and np.abs(out["features"][0]).sum() > 0


def test_the_test_process_never_imported_ray() -> None:
    """Everything above (and the slow tests, which run Ray in child processes) leaves this
    process without Ray: the default test run never imports it."""
    assert not [m for m in sys.modules if m == "ray" or m.startswith("ray.")]
