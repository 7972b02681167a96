"""The `sorter` command end to end, in a child process as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import GENERAL_MODEL, REPO, SAMPLES, content_counts
from tests.conftest import run_sorter as sorter


def test_sort_json_then_undo(photo_folder: Path, tmp_path: Path) -> None:
    good = next(photo_folder.glob("*.jpg"))
    (photo_folder / "broken.jpg").write_bytes(good.read_bytes()[:500])
    out = tmp_path / "out"
    result = sorter("sort", str(photo_folder), "--out", str(out), "--device", "cpu", "--json")
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    for key in (
        "run_id",
        "total",
        "sorted",
        "unsure",
        "skipped",
        "failed",
        "per_label",
        "seconds",
        "images_per_second",
        "device",
        "backend",
        "failures",
    ):
        assert key in report
    assert report["total"] == 22 and report["failed"] == 1 and report["device"] == "cpu"
    assert report["backend"] == "onnx"
    assert report["sorted"] + report["unsure"] == 21
    assert report["failures"][0]["path"].endswith("broken.jpg")
    assert "broken.jpg" in result.stderr
    assert sum(report["per_label"].values()) == 21
    assert report["images_per_second"] > 0
    # the embedded general model has no photos to measure: one sentence, once a run, says what it
    # knows and does not, not "retrain it"
    (note,) = report["notes"]
    assert "knows everyday subjects" in note and "people" in note and "cannot tell a photo of something else" in note
    assert note.count(". ") == 0 and "earlier version" not in note

    undo = sorter("undo", str(out), "--json")
    assert undo.returncode == 0, undo.stderr
    assert json.loads(undo.stdout)["removed"] == 21
    assert content_counts(out) == {}


def test_default_output_is_a_sibling_and_plain_output_reads_well(tmp_path: Path) -> None:
    src = tmp_path / "samples"
    src.mkdir()
    for p in SAMPLES.glob("*.jpg"):
        (src / p.name).write_bytes(p.read_bytes())
    result = sorter("sort", str(src), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "samples (sorted)"
    assert "Of 8 photos in samples: 5 went into folders, 3 to _unsure (not sure enough); " in result.stdout
    assert (out / "Animals" / "chelsea.jpg").exists()
    assert (out / "Food & drink" / "coffee.jpg").exists()
    assert (out / "Electronics" / "camera.jpg").exists()
    assert content_counts(out) == content_counts(src)


def test_usage_and_fatal_errors_are_one_sentence(tmp_path: Path) -> None:
    missing = sorter("sort", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("sorter: error: The folder")
    assert len(missing.stderr.strip().splitlines()) == 1

    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x80\x04\x95not a bundle at all, a pickle")
    bad = sorter("sort", str(tmp_path), "--model", str(fake))
    assert bad.returncode == 1
    assert "Cannot use the model 'fake.safetensors'" in bad.stderr
    assert "Traceback" not in bad.stderr

    unknown = sorter("sort", str(tmp_path), "--model", "no-such-model")
    assert unknown.returncode == 2 and "No model named 'no-such-model'" in unknown.stderr


def test_models_and_info(tmp_path: Path) -> None:
    models = sorter("models", "--json")
    assert models.returncode == 0
    rows = json.loads(models.stdout)["models"]
    assert any(r["name"] == "general" and r["bundled"] and r["classes"] == 12 for r in rows)
    info = sorter("info", str(GENERAL_MODEL), "--json")
    assert info.returncode == 0
    data = json.loads(info.stdout)
    assert data["architecture"] == "efficientnet_lite0" and "Animals" in data["classes"]
    assert data["grouped_outputs"] == 1000


def test_sorting_path_never_imports_fastai_qt_or_ray(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "cat.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    code = (
        "import sys\n"
        "from sorter.cli import main\n"
        f"rc = main(['sort', {str(src)!r}, '--out', {str(tmp_path / 'out')!r}, '--device', 'cpu'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastai', 'fastcore', 'PySide6', 'ray'))\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken" in result.stdout


def test_torch_and_onnx_backends_sort_every_photo_alike(photo_folder: Path, tmp_path: Path) -> None:
    """The same folder through both backends: the same file lands in the same folder."""
    trees = {}
    for backend in ("onnx", "torch"):
        out = tmp_path / backend
        result = sorter("sort", str(photo_folder), "--out", str(out), "--device", "cpu", "--backend", backend, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["backend"] == backend
        placed = [p.relative_to(out) for p in out.rglob("*") if p.is_file()]
        trees[backend] = sorted(str(p) for p in placed if not p.parts[0].startswith("."))
    assert len(trees["onnx"]) == 21
    assert trees["onnx"] == trees["torch"]
    assert list((Path(os.environ["SORTER_DATA_DIR"]) / "cache").glob("*.onnx")), "the export is cached"


def test_output_is_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """On Windows a pipe gets the ANSI code page: a photo named with an emoji used to stop
    ``--json`` with UnicodeEncodeError, after sorting."""
    src = tmp_path / "写真"
    src.mkdir()
    (src / "chat 🐱.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    result = subprocess.run(
        [sys.executable, "-m", "sorter", "sort", str(src), "--out", str(tmp_path / "out"), "--device", "cpu", "--json"],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    report = json.loads(result.stdout.decode("utf-8"))
    assert report["source"].endswith("写真") and report["sorted"] + report["unsure"] == 1
