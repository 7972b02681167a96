"""Feature replay: a bundle retrains where its training photos are not, from the features it keeps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sorter.errors import ModelLoadError, UsageError
from sorter.files.corrections import CorrectionStore, correct
from sorter.jobs.events import drive
from sorter.jobs.rescore import rescore
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.bundle import METADATA_KEY, load_bundle
from sorter.model.classifier import Classifier
from sorter.train.retrain import retrain
from tests.conftest import sha256
from tests.train.conftest import sort_and_correct_tables


def rewrite(
    src: Path,
    dst: Path,
    config: Callable[[dict[str, Any]], None] | None = None,
    tensors: Callable[[dict[str, torch.Tensor]], None] | None = None,
) -> Path:
    """A copy of a bundle with its config or tensors changed, as another machine (or a hostile
    file) would present it."""
    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
        state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (a safe_open handle is no mapping)
    cfg = json.loads(meta[METADATA_KEY])
    if config is not None:
        config(cfg)
    if tensors is not None:
        tensors(state)
    save_file(state, str(dst), metadata={METADATA_KEY: json.dumps(cfg)})
    return dst


def _elsewhere(cfg: dict[str, Any]) -> None:
    cfg["training"]["data"] = "folder:/nowhere/on/this/machine/photos"


def test_training_keeps_one_feature_row_per_original_photo(tiny_model: Any, tiny_data: Path) -> None:
    bundle = load_bundle(tiny_model.path)
    replay = bundle.read_replay()
    assert replay is not None and bundle.config.replay is not None
    n_valid = tiny_model.report["training"]["n_valid"]
    assert len(replay) == tiny_model.report["training"]["n_train"] + n_valid == 72
    assert int(replay.valid.sum()) == n_valid == bundle.config.replay.valid
    assert replay.features.shape == (72, 1280) and replay.features.dtype == np.float16
    # each row names its photo by content and carries its label
    by_sha = {sha256(p): p.parent.name for p in tiny_data.rglob("*.jp*g")}
    assert {replay.hex(r) for r in range(len(replay))} == set(by_sha)
    assert all(by_sha[replay.hex(r)] == bundle.config.classes[int(replay.labels[r])] for r in range(len(replay)))
    valid_files = {sha256(Path(p)) for p in tiny_model.report["valid_files"]}
    assert {replay.hex(r) for r in np.flatnonzero(replay.valid)} == valid_files


def test_retrain_where_the_training_photos_are_not(tiny_model: Any, tables: Path, tmp_path: Path) -> None:
    moved = rewrite(tiny_model.path, tmp_path / "tiny.safetensors", config=_elsewhere)
    classifier = Classifier.load(moved, "cpu")
    out = tmp_path / "out"
    events: list[Any] = []
    drive(sort_folder(SortOptions(tables, out, threshold=0.0), classifier), events.append)
    with CorrectionStore(tmp_path / "store" / "corrections.sqlite") as store:
        for e in events:
            correct(out, e.destinations[0], "table", store)
        result = retrain(moved, tmp_path / "tiny-v2.safetensors", store)
    assert result.training_data == "replay" and result.same_validation
    assert result.new_classes == ["table"]
    # the old model scored on the replay's validation rows is the old model as it was measured
    n_valid = tiny_model.report["training"]["n_valid"]
    assert abs(result.old_valid_accuracy - tiny_model.evaluation.accuracy) <= 1 / n_valid + 1e-9
    assert result.new_corrected_accuracy >= 0.8, "most corrections are learned"
    assert result.new_valid_accuracy >= result.old_valid_accuracy - 0.07, "no loss elsewhere"
    new = load_bundle(result.new_path)
    assert new.config.training["training_data"] == "replay"
    replay = new.read_replay()
    assert replay is not None and len(replay) == 72, "the original rows again, not the user's photos"
    assert new.memory is not None and len(new.memory) == 30, "the user's photos are its memory"
    probs = np.stack(
        [p.probs for p in Classifier(new, torch.device("cpu")).classify([e.source for e in events[:5]], lambda p: p)]
    )
    assert (probs.argmax(1) == new.config.classes.index("table")).sum() >= 4


def test_a_retrain_uses_the_replay_even_where_the_photos_are_and_reads_them_only_when_asked(
    tiny_model: Any, tables: Path, tmp_path: Path
) -> None:
    db = sort_and_correct_tables(tiny_model.path, tables, tmp_path)
    with CorrectionStore(db) as store:
        quick = retrain(tiny_model.path, tmp_path / "quick.safetensors", store, feature_cache=tmp_path / "f.sqlite")
        slow = retrain(
            tiny_model.path, tmp_path / "slow.safetensors", store, feature_cache=tmp_path / "f.sqlite", from_photos=True
        )
    assert quick.training_data == "replay" and slow.training_data == "photos"
    assert quick.same_validation and slow.same_validation
    assert quick.new_classes == slow.new_classes == ["table"]


def test_without_replay_or_photos_the_retrain_says_so(tiny_model: Any, tmp_path: Path) -> None:
    def drop_replay(cfg: dict[str, Any]) -> None:
        _elsewhere(cfg)
        del cfg["replay"]

    def drop_tensors(state: dict[str, torch.Tensor]) -> None:
        for key in [k for k in state if k.startswith("replay.")]:
            del state[key]

    bare = rewrite(tiny_model.path, tmp_path / "bare.safetensors", config=drop_replay, tensors=drop_tensors)
    with CorrectionStore(tmp_path / "corrections.sqlite") as store, pytest.raises(UsageError, match="is gone"):
        retrain(bare, tmp_path / "v2.safetensors", store)


def test_a_damaged_replay_is_refused_with_one_sentence(tiny_model: Any, tmp_path: Path) -> None:
    def bad_label(state: dict[str, torch.Tensor]) -> None:
        state["replay.labels"][0] = 99

    def nan_row(state: dict[str, torch.Tensor]) -> None:
        state["replay.features"][3, 5] = float("nan")

    def short(state: dict[str, torch.Tensor]) -> None:
        state["replay.sha256"] = state["replay.sha256"][:-1].contiguous()

    def wrong_count(cfg: dict[str, Any]) -> None:
        cfg["replay"]["valid"] = cfg["replay"]["valid"] - 1

    for name, change in (("label", bad_label), ("nan", nan_row)):
        hostile = load_bundle(rewrite(tiny_model.path, tmp_path / f"{name}.safetensors", tensors=change))
        with pytest.raises(ModelLoadError) as err:
            hostile.read_replay()
        assert "feature replay" in str(err.value)
    with pytest.raises(ModelLoadError, match=r"replay\.sha256 has shape"):
        load_bundle(rewrite(tiny_model.path, tmp_path / "short.safetensors", tensors=short))
    with pytest.raises(ModelLoadError, match="validation rows"):
        load_bundle(rewrite(tiny_model.path, tmp_path / "count.safetensors", config=wrong_count)).read_replay()


def test_a_damaged_replay_costs_sorting_only_the_shift_check(tiny_model: Any, tables: Path, tmp_path: Path) -> None:
    def bad_label(state: dict[str, torch.Tensor]) -> None:
        state["replay.labels"][0] = 99

    hostile = rewrite(tiny_model.path, tmp_path / "hostile.safetensors", tensors=bad_label)
    out = tmp_path / "out"
    events: list[Any] = []
    summary = drive(sort_folder(SortOptions(tables, out), Classifier.load(hostile, "cpu")), events.append)
    assert summary.classified == 30 and summary.failed == 0
    assert summary.shift is None
    assert any("not compared with the model's training photos" in n and "feature replay" in n for n in summary.notes)
    with CorrectionStore(tmp_path / "corrections.sqlite") as store:
        correct(out, events[0].destinations[0], "table", store)
        found = rescore(out, load_bundle(hostile), store)
    assert found.adapted is None and found.shift is None and len(found.photos) == 30
