"""The loop that makes corrections count, on real photos with the real tiny model.

A user "corrects" a photo to a label the model did not choose; a mirrored copy of that photo (a
near-duplicate the model has never seen) must then follow the correction: at once in the re-score
from cached features, in ``resort``, and in the retrained bundle.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image, ImageOps

from sorter.files.corrections import CONFIRMATION, CorrectionStore, confirm, correct
from sorter.files.journal import FEATURES_NAME, STATE_DIR, Journal
from sorter.jobs.rescore import rescore
from sorter.jobs.resort import resort
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from tests.conftest import TINY_CLASSES, snapshot, undo


@pytest.fixture(scope="module")
def user_photos(tmp_path_factory: pytest.TempPathFactory, furniture: Path) -> tuple[Path, Path, Path]:
    """Photos the tiny model never saw, and a mirrored twin of the first chair."""
    root = tmp_path_factory.mktemp("loop") / "photos"
    root.mkdir()
    for cls in TINY_CLASSES:
        for photo in sorted((furniture / cls).iterdir())[40:46]:
            shutil.copy2(photo, root / f"{cls}_{photo.name}")
    original = root / f"chair_{sorted((furniture / 'chair').iterdir())[40].name}"
    twin = root / "zz_twin.jpg"
    with Image.open(original) as img:
        ImageOps.mirror(img.convert("RGB")).save(twin, quality=92)
    return root, original, twin


def _sort(source: Path, out: Path, bundle_path: Path) -> dict[Path, Path]:
    classifier = Classifier(load_bundle(bundle_path), torch.device("cpu"), backend="torch")
    job = sort_folder(SortOptions(source, out), classifier)
    return {ev.source: ev.destinations[0] for ev in job}


def _wrong_label(folder: str) -> str:
    return next(c for c in TINY_CLASSES if c != folder)


def test_a_correction_moves_its_near_duplicate_at_once_and_resort_is_undone_exactly(
    tiny_model: Any, user_photos: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    source, original, twin = user_photos
    out = tmp_path / "out"
    placed = _sort(source, out, tiny_model.path)
    assert (out / STATE_DIR / FEATURES_NAME).is_file()
    label = _wrong_label(placed[original].parent.name)
    assert placed[twin].parent.name != label
    bundle = load_bundle(tiny_model.path)
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        found = rescore(out, bundle, store)
        before, missing = found.photos, found.missing
        assert missing == 0 and len(before) == len(placed)
        twin_before = next(r for r in before if r.path == placed[twin])
        assert twin_before.suggested == placed[twin].parent.name  # no correction yet: what it sorted

        moved = correct(out, placed[original], label, store).path
        confirmed = next(p for s, p in placed.items() if s not in (original, twin) and p.parent.name != "_unsure")
        confirm(out, confirmed, store)
        after = rescore(out, bundle, store).photos
        twin_after = next(r for r in after if r.path == placed[twin])
        assert twin_after.suggested == label, "the twin of a corrected photo must follow the correction"
        assert sum(r.reviewed for r in after) == 2

        state = snapshot(out)
        report = resort(out, bundle, store)
    assert (placed[twin], out / label / placed[twin].name) in report.moved
    assert report.reviewed == 2 and moved.is_file() and confirmed.is_file()
    assert all(old not in (moved, confirmed) for old, _ in report.moved)

    undone = undo(out, tmp_path / "data" / "corrections.sqlite")
    assert undone.restored == len(report.moved) and not undone.kept
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".sorter")} == {
        k: v for k, v in state.items() if not k.startswith(".sorter")
    }
    with Journal.open(out, create=False, lock=False) as journal:  # the journal points at the files again
        assert {p.path for p in journal.placements()} == {p for p in placed.values() if p != placed[original]} | {moved}


def test_retrain_learns_the_correction_and_reuses_cached_features(
    tiny_model: Any, user_photos: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from sorter.train.retrain import retrain

    source, original, twin = user_photos
    out = tmp_path / "out"
    placed = _sort(source, out, tiny_model.path)
    label = _wrong_label(placed[original].parent.name)
    cache = tmp_path / "cache" / "features.sqlite"
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        correct(out, placed[original], label, store)
        right = [p for s, p in placed.items() if s not in (original, twin) and p.parent.name != "_unsure"][:3]
        for path in right:
            confirm(out, path, store)
        assert store.count(CONFIRMATION) == 3
        first = retrain(tiny_model.path, tmp_path / "v2.safetensors", store, feature_cache=cache)
        second = retrain(tiny_model.path, tmp_path / "v3.safetensors", store, feature_cache=cache)
    new = load_bundle(first.new_path)
    assert new.memory is not None and len(new.memory) == 4
    assert new.config.training["confirmations"] == 3 and new.config.training["corrections"] == 1
    assert new.config.training["features_computed"] > 0
    assert load_bundle(second.new_path).config.training["features_computed"] == 0  # all from the cache
    classifier = Classifier(new, torch.device("cpu"))  # the ONNX path carries the memory too
    pred = next(iter(classifier.classify([twin], lambda p: p)))
    assert pred.probs is not None
    assert new.config.classes[int(pred.probs.argmax())] == label
    assert first.same_validation and first.new_valid_accuracy >= first.old_valid_accuracy - 0.05


def test_confirm_and_resort_from_the_command_line(
    tiny_model: Any, user_photos: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    import json

    from tests.conftest import run_sorter

    source, original, twin = user_photos
    out = tmp_path / "out"
    sorted_ = run_sorter("sort", str(source), "--out", str(out), "--model", str(tiny_model.path), "--json")
    assert sorted_.returncode == 0, sorted_.stderr
    placed = {p.name: p for p in out.rglob("*.jp*g") if ".sorter" not in p.parts}
    first = placed[original.name]
    label = _wrong_label(first.parent.name)
    other = next(p for n, p in placed.items() if n not in (original.name, twin.name) and p.parent.name in TINY_CLASSES)
    assert run_sorter("correct", str(first), label).returncode == 0
    confirmed = run_sorter("confirm", str(other))
    assert confirmed.returncode == 0 and "Confirmed 1 photo" in confirmed.stdout
    refused = run_sorter("confirm", str(out / label / first.name).replace(label, "_unsure"))
    assert refused.returncode == 2 and "does not exist" in refused.stderr

    report = run_sorter("resort", str(out), "--json")
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    moved = {Path(m["from"]).name: Path(m["to"]) for m in data["moved"]}
    assert moved[twin.name].parent.name == label and data["reviewed_kept"] == 2
    assert other.exists() and (out / label / first.name).exists()
    undo = run_sorter("undo", str(out), "--json")
    assert undo.returncode == 0 and json.loads(undo.stdout)["restored"] == len(moved)
    assert placed[twin.name].exists()
