"""Shared fixtures: real photos from ../shared/datasets, the real embedded model, isolated dirs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("SORTER_DATASETS", REPO.parent / "shared" / "datasets"))
GENERAL_MODEL = REPO / "models" / "general.safetensors"
SAMPLES = REPO / "assets" / "samples"
FURNITURE = DATASETS / "furniture7" / "images"


@pytest.fixture(scope="session", autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test ever reads or writes the real user's settings, corrections or models."""
    root = tmp_path_factory.mktemp("user")
    saved = {k: os.environ.get(k) for k in ("SORTER_DATA_DIR", "SORTER_CONFIG_DIR")}
    os.environ["SORTER_DATA_DIR"] = str(root / "data")
    os.environ["SORTER_CONFIG_DIR"] = str(root / "config")
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def test_device() -> str:
    return os.environ.get("SORTER_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def furniture() -> Path:
    if not FURNITURE.is_dir():
        pytest.fail(f"real test photos are missing: {FURNITURE} (set SORTER_DATASETS)")
    return FURNITURE


@pytest.fixture(scope="session")
def general_classifier(test_device: str):  # type: ignore[no-untyped-def]
    from sorter.model.classifier import Classifier

    return Classifier.load(GENERAL_MODEL, test_device, batch_size=8)


TINY_CLASSES = ("bed", "chair", "sofa")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, furniture: Path) -> Path:
    """24 real photos of each of three furniture classes: the tiny model's training data."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    for cls in TINY_CLASSES:
        (root / cls).mkdir(parents=True)
        for photo in sorted((furniture / cls).iterdir())[:24]:
            shutil.copy2(photo, root / cls / photo.name)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_data: Path, test_device: str):  # type: ignore[no-untyped-def]
    """One tiny real model (bed, chair, sofa), trained once per test session on real photos."""
    from sorter.learn.datasets import load_data
    from sorter.train.recipe import TrainSettings
    from sorter.train.train import fit_and_export

    progress: list[object] = []
    trained = fit_and_export(
        load_data(tiny_data),
        tiny_data.parent / "tiny.safetensors",
        TrainSettings(epochs=6, views=2, device=test_device, seed=1),
        progress=progress.append,
    )
    trained.progress = progress  # type: ignore[attr-defined]
    return trained


def pick_photos(furniture: Path, per_class: int, offset: int = 0) -> list[Path]:
    """A deterministic handful of real photos from every furniture7 class."""
    chosen: list[Path] = []
    for cls in sorted(p for p in furniture.iterdir() if p.is_dir()):
        files = sorted(cls.iterdir())[offset : offset + per_class]
        chosen.extend(files)
    return chosen


def make_photo_folder(root: Path, photos: list[Path]) -> Path:
    """Copy photos into ``root``, half of them one folder down, as a user's folder would be."""
    root.mkdir(parents=True, exist_ok=True)
    for i, photo in enumerate(photos):
        folder = root if i % 2 == 0 else root / "holiday" / photo.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, folder / f"{photo.parent.name}_{photo.name}")
    return root


@pytest.fixture
def photo_folder(tmp_path: Path, furniture: Path) -> Path:
    """21 real photos (3 per class), some in sub-folders."""
    return make_photo_folder(tmp_path / "photos", pick_photos(furniture, 3))


def run_sorter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `sorter` command in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "sorter", *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_counts(folder: Path) -> Counter[str]:
    """How many files of each content lie under ``folder`` (Sorter's state folder excluded)."""
    counts: Counter[str] = Counter()
    for path in folder.rglob("*"):
        if path.is_file() and ".sorter" not in path.relative_to(folder).parts:
            counts[sha256(path)] += 1
    return counts


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Relative path → (sha256, mtime_ns) for every file."""
    return {
        str(p.relative_to(folder)): (sha256(p), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def undo(output: Path, db: Path | None = None):  # type: ignore[no-untyped-def]
    """Undo the newest run on ``output``, withdrawing reviews from the store at ``db`` (a fresh
    one beside the output when the test made none)."""
    from sorter.files.corrections import CorrectionStore
    from sorter.files.undo import undo_last_run

    with CorrectionStore(db or output.parent / "undo-store" / "corrections.sqlite") as store:
        return undo_last_run(output, store)
