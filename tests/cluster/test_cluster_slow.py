"""`sorter sort --cluster local` on a real local Ray (2 CPUs) against a local run, and a worker
killed mid-run. Slow (Ray starts in about ten seconds): ``python -m pytest -m slow tests/cluster``
after ``pip install -e '.[cluster]'``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sorter.files.journal import Journal
from sorter.model.bundle import load_bundle
from tests.conftest import REPO, content_counts, make_photo_folder, pick_photos, run_sorter

# find_spec, not importorskip: collecting this module must not import Ray into the test process.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None or importlib.util.find_spec("psutil") is None,
        reason="needs pip install -e '.[cluster]'",
    ),
]


def _placements(out: Path) -> list[tuple[str, str, str]]:
    with Journal.open(out, create=False, lock=False) as journal:
        return sorted((p.source.name, str(p.path.relative_to(out)), p.label) for p in journal.placements())


def _files(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and ".sorter" not in p.parts)


def test_cluster_sort_matches_a_local_run_and_undoes_the_same(furniture: Path, tmp_path: Path) -> None:
    src = make_photo_folder(tmp_path / "photos", pick_photos(furniture, 6))
    (src / "fake.jpg").write_bytes(b"not a photo at all")
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    a = run_sorter("sort", str(src), "--out", str(local), "--model", "furniture", "--json")
    b = run_sorter("sort", str(src), "--out", str(cluster), "--model", "furniture", "--json", "--cluster", "local")
    assert a.returncode == b.returncode == 3, (a.stderr, b.stderr)  # partial: the fake photo
    sa, sb = json.loads(a.stdout), json.loads(b.stdout)
    for key in ("total", "sorted", "unsure", "skipped", "failed", "per_label", "failures", "not_sorted"):
        assert json.dumps(sa[key]).replace(str(local), "OUT") == json.dumps(sb[key]).replace(str(cluster), "OUT"), key
    assert sb["backend"].startswith("ray (")
    assert _files(local) == _files(cluster)
    assert content_counts(local) == content_counts(cluster)
    assert _placements(local) == _placements(cluster)
    # Sorting again is a no-op in both; undo empties both the same way.
    again = run_sorter("sort", str(src), "--out", str(cluster), "--model", "furniture", "--json", "--cluster", "local")
    assert json.loads(again.stdout)["skipped"] == sb["total"] - sb["failed"]
    for out in (local, cluster):
        assert run_sorter("undo", str(out)).returncode == 0
    assert _files(local) == _files(cluster) == []


def _predictor_workers() -> list[Any]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "MapWorker" in cmd and "SorterPredictor" in cmd:
            found.append(proc)
    return found


def test_a_worker_killed_mid_run_loses_nothing_and_places_nothing_twice(furniture: Path, tmp_path: Path) -> None:
    src = make_photo_folder(tmp_path / "photos", pick_photos(furniture, 40))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "sorter", "sort", str(src), "--out", str(out), "--model", "furniture"]
    run = subprocess.Popen(
        [*args, "--cluster", "local", "--json"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 240
    while run.poll() is None and time.monotonic() < deadline:
        placed = len(_files(out)) if out.exists() else 0
        workers = _predictor_workers()
        if placed >= 20 and workers:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.2)
    stdout, stderr = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    if run.returncode == 0:  # Ray restarted the actor and ran its batch again
        assert json.loads(stdout)["total"] == 280, "Ray's messages about the lost worker stay out of --json"
    else:  # Ray gave up on the batch: one sentence, then a second run finishes
        assert stderr.strip().splitlines()[-1].startswith("sorter: error:"), stderr
        finish = run_sorter("sort", str(src), "--out", str(out), "--model", "furniture", "--cluster", "local")
        assert finish.returncode == 0, finish.stderr
    photos = [p for p in src.rglob("*") if p.is_file()]
    assert content_counts(out) == content_counts(src), "every photo placed exactly once"
    assert len(_placements(out)) == len(photos)
    assert not [name for name in _files(out) if " (1)" in name]


def test_training_features_come_from_the_cluster_and_key_the_local_cache(furniture: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for cls in ("bed", "chair", "sofa"):
        (data / cls).mkdir(parents=True)
        for photo in sorted((furniture / cls).iterdir())[:12]:
            (data / cls / photo.name).write_bytes(photo.read_bytes())
    env = {**os.environ, "SORTER_DATA_DIR": str(tmp_path / "user-data")}
    first = run_sorter(
        "train", str(data), "--out", str(tmp_path / "a.safetensors"), "--cluster", "local", "--quick", "--json", env=env
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["training"]["views"] == 0
    assert report["training"]["features_computed"] == 0, "every feature was computed on the cluster"
    assert report["accuracy"] >= 0.6
    anchors = load_bundle(tmp_path / "a.safetensors").ood_anchors
    assert anchors is not None and np.allclose(anchors.norm(dim=1), 1.0, atol=1e-3), "class means for none-of-these"
    # Training here on the clean view finds every feature the cluster made: same cache keys.
    again = run_sorter("train", str(data), "--out", str(tmp_path / "b.safetensors"), "--views", "0", "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["training"]["features_computed"] == 0
    refused = run_sorter(
        "train", str(data), "--out", str(tmp_path / "c"), "--cluster", "local", "--views", "3", env=env
    )
    assert refused.returncode != 0 and "clean view" in refused.stderr
