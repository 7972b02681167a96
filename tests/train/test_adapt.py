"""Instant head adaptation: reviewed photos refit the head in the re-score, with the real tiny model."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sorter.files.corrections import CorrectionStore, confirm, correct
from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.jobs.rescore import rescore
from sorter.jobs.resort import resort
from sorter.jobs.review_queue import build_queue
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.knobs import overridden
from sorter.learn.adapt import adapt_head
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.model.scoring import score
from tests.conftest import DATASETS
from tests.train.test_replay import rewrite

EXTRA = DATASETS / "furniture7_extra" / "images"


@pytest.fixture
def reviewed(tiny_model: Any, tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Photos from another source (search-engine chairs, beds and sofas) sorted by the tiny
    model, and the first twelve of the review queue corrected or confirmed as a user would."""
    src = tmp_path / "photos"
    src.mkdir()
    truth: dict[str, str] = {}
    chairs = sorted(p for p in (EXTRA / "chair").iterdir() if p.name.startswith("image_"))[:24]
    picks = [("chair", p) for p in chairs]
    picks += [(c, p) for c in ("bed", "sofa") for p in sorted((EXTRA / c).iterdir())[100:108]]
    for label, photo in picks:
        name = f"{label[0]}{photo.name}"
        shutil.copy2(photo, src / name)
        truth[name] = label
    bundle = load_bundle(tiny_model.path)
    out = tmp_path / "out"
    for _ in sort_folder(SortOptions(src, out), Classifier(bundle, torch.device("cpu"))):
        pass
    store_path = tmp_path / "corrections.sqlite"
    with CorrectionStore(store_path) as store:
        queue = build_queue(out, bundle, store)  # the review dialog's queue, near-duplicates in place
        for path in [p for item in queue.items for p in item.paths][:12]:
            right = truth[path.name]
            if path.parent.name != right:
                correct(out, path, right, store)
            else:
                confirm(out, path, store)
    return out, store_path, truth


def test_reviewed_photos_refit_the_head_without_costing_validation(tiny_model: Any, reviewed: Any) -> None:
    out, store_path, truth = reviewed
    bundle = load_bundle(tiny_model.path)
    with CorrectionStore(store_path) as store:
        found = rescore(out, bundle, store)
        with overridden(adapt=False):  # the memory alone, as the benchmarks measure it
            plain = rescore(out, bundle, store)
        labelled = store.latest_per_photo()
        report = resort(out, bundle, store)
    assert found.adapted is not None and found.adapted.user_rows == 12
    assert found.adapted.valid_after >= found.adapted.valid_before - 0.01
    assert plain.adapted is None and report.adapted_on == 12

    # the adapted head alone (no memory) has learned the reviewed photos: surer of the user's
    # label on average, and no photo it had right is now wrong
    with FeatureCache.open(out / ".sorter" / "features.sqlite") as cache:
        feats = cache.get_many(bundle.feature_recipe, [(c.sha256, CLEAN_VIEW) for c in labelled])
    x = np.stack([feats[(c.sha256, CLEAN_VIEW)] for c in labelled])
    want = np.array([bundle.config.classes.index(c.label) for c in labelled])
    old = score(bundle, x, None).probs
    new = score(bundle, x, None, found.adapted).probs
    rows = np.arange(len(want))
    assert new[rows, want].mean() > old[rows, want].mean()
    was_right = old.argmax(1) == want
    assert (new.argmax(1)[was_right] == want[was_right]).all()

    # on the photos not reviewed it does no worse than the memory alone (one photo of slack)
    def right(scoring: Any) -> int:
        return sum(
            not r.reviewed and bundle.config.classes[int(np.argmax(r.probs))] == truth[r.placement.source.name]
            for r in scoring.photos
        )

    assert right(found) >= right(plain) - 1


def test_no_adaptation_without_a_replay_or_when_it_would_cost_validation(
    tiny_model: Any, reviewed: Any, tmp_path: Path
) -> None:
    out, store_path, _ = reviewed

    def drop(cfg: dict[str, Any]) -> None:
        del cfg["replay"]

    def drop_tensors(state: dict[str, torch.Tensor]) -> None:
        for key in [k for k in state if k.startswith("replay.")]:
            del state[key]

    bare = load_bundle(rewrite(tiny_model.path, tmp_path / "bare.safetensors", config=drop, tensors=drop_tensors))
    with CorrectionStore(store_path) as store:
        found = rescore(out, bare, store)
        with overridden(adapt=False):
            plain = rescore(out, bare, store)
    assert found.adapted is None
    assert [(r.path, r.suggested) for r in found.photos] == [(r.path, r.suggested) for r in plain.photos]

    # "reviewed photos" that contradict the model's own validation photos: refused
    bundle = load_bundle(tiny_model.path)
    replay = bundle.read_replay()
    assert replay is not None
    k = len(bundle.config.classes)
    wrong = (replay.labels[replay.valid] + 1) % k
    assert adapt_head(bundle.head, replay, replay.features[replay.valid].astype(np.float32), wrong) is None


def test_a_refit_is_refused_only_for_a_cost_beyond_chance(tiny_model: Any) -> None:
    """Three validation rows taught the wrong class cost three photos, over the one-point budget
    of a small validation set but within chance (p = 1/8 when the heads disagree on only those):
    the user's reviews are kept. A dozen cost more than chance explains: refused."""
    bundle = load_bundle(tiny_model.path)
    replay = bundle.read_replay()
    assert replay is not None
    valid = np.flatnonzero(replay.valid)
    k = len(bundle.config.classes)
    x = replay.features.astype(np.float32)

    def taught_wrong(n: int) -> Any:
        rows = valid[:n]
        wrong = (replay.labels[rows] + 1) % k
        # each row several times over, as a user who reviewed near-duplicates would
        return adapt_head(bundle.head, replay, np.repeat(x[rows], 4, axis=0), np.repeat(wrong, 4))

    few = taught_wrong(3)
    assert few is not None, "a cost that chance explains keeps the reviews"
    lost = round((few.valid_before - few.valid_after) * len(valid))
    assert 0 < lost <= 3 and few.valid_after < few.valid_before - 0.01
    assert taught_wrong(12) is None
