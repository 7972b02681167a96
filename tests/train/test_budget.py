"""The training budget: the default body first, then the stronger one for the time that is left,
kept unless validation says it is worse; the last blocks on request, kept only for a gain beyond
chance; a retrain keeps the body and refits the head."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sorter.files.corrections import CorrectionStore
from sorter.learn.datasets import load_data
from sorter.model.architecture import SorterNet, load_body_weights
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.train.ladder import keep_unless_worse
from sorter.train.recipe import CHOICE, TrainProgress, TrainSettings
from sorter.train.retrain import retrain
from sorter.train.tail import TAIL_FROM
from sorter.train.train import fit_and_export, get_args_parser, settings_from_args
from sorter.train_args import DEFAULT_BUDGET_S, parse_budget
from tests.train.conftest import sort_and_correct_tables


def test_a_budget_reads_as_a_person_writes_it() -> None:
    assert [parse_budget(t) for t in ("5m", "90s", "300", "1h", "0", "2.5m")] == [300, 90, 300, 3600, 0, 150]
    with pytest.raises(argparse.ArgumentTypeError, match="is not a time"):
        parse_budget("five minutes")


def test_the_options_choose_the_recipe() -> None:
    parser = get_args_parser()

    def settings(*extra: str) -> TrainSettings:
        return settings_from_args(parser.parse_args(["data", "--out", "m", "--device", "cpu", *extra]))

    default = settings()
    assert default.budget_s == DEFAULT_BUDGET_S and default.ladder, "5 minutes on a CPU, the stronger body within"
    assert (default.architecture, default.size, default.tail_epochs) == ("efficientnet_lite0", 224, 0)
    assert default.fine_tune_budget and default.fine_tune_epochs == 0, "then the fine-tune for the time left"
    asked = settings("--fine-tune-epochs", "2")
    assert (asked.fine_tune_epochs, asked.fine_tune_budget) == (2, False), "epochs asked for are what runs"
    assert settings("--budget", "2m").budget_s == 120
    assert settings("--tail-epochs", "3").tail_epochs == 3
    for plain in (settings("--quick"), settings("--budget", "0"), settings("--views", "0")):
        assert (plain.tail_epochs, plain.budget_s, plain.ladder, plain.fine_tune_budget) == (0, None, False, False)
    chosen = settings("--arch", "efficientnet_lite0", "--size", "260")
    assert (chosen.size, chosen.ladder) == (260, False), "a body the user chose is trained alone"


def _tail_state(path: Path) -> dict[str, torch.Tensor]:
    state = load_bundle(path).state
    return {k: v for k, v in state.items() if k.startswith(f"body.blocks.{TAIL_FROM}.")}


@pytest.fixture(scope="module")
def tail_model(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory, test_device: str) -> Any:
    """The tiny data trained with the tail step, kept whatever validation says."""
    progress: list[TrainProgress] = []
    trained = fit_and_export(
        load_data(tiny_data),
        tmp_path_factory.mktemp("tail") / "tail.safetensors",
        TrainSettings(epochs=4, views=1, device=test_device, seed=1, tail_epochs=2, keep_tail="always"),
        progress=progress.append,
    )
    trained.progress = progress
    return trained


def test_the_last_blocks_train_and_the_bundle_keeps_what_sorting_needs(tail_model: Any, tiny_data: Path) -> None:
    tried = tail_model.report["tried"]
    assert [(a["recipe"], a["kept"]) for a in tried] == [("head", False), ("tail", True)]
    assert tail_model.report["training"]["recipe"] == "tail"
    notes = [p.note for p in tail_model.progress if p.phase == CHOICE]
    assert any("last blocks" in (n or "") for n in notes)
    assert [p.step for p in tail_model.progress if p.phase == "tail"] == [0, 1, 2]

    pretrained = SorterNet("efficientnet_lite0", 3)
    load_body_weights(pretrained, None)
    before = {f"body.{k}": v for k, v in pretrained.body.state_dict().items()}
    after = _tail_state(tail_model.path)
    assert after and any(not torch.equal(before[k], v) for k, v in after.items() if v.is_floating_point())
    stem_key = "body.blocks.0.0.conv_dw.weight"
    assert torch.equal(load_bundle(tail_model.path).state[stem_key], before[stem_key]), "the stem stays frozen"

    # the replay, the fit statistics and the calibration are the tuned body's: sorting the
    # validation photos through the sorting path agrees with the replay's validation rows
    bundle = load_bundle(tail_model.path)
    replay = bundle.read_replay()
    assert replay is not None and bundle.config.calibration is not None and bundle.config.ood is not None
    valid = [Path(p) for p in tail_model.report["valid_files"]]
    predictions = list(Classifier(bundle, torch.device("cpu"), backend="torch").classify(valid, lambda p: p))
    kept = {replay.hex(r): replay.features[r].astype(np.float32) for r in np.flatnonzero(replay.valid)}
    from tests.conftest import sha256

    for p in predictions:
        assert p.features is not None
        cosine = float(np.dot(p.features, kept[sha256(p.item)]))
        cosine /= float(np.linalg.norm(p.features) * np.linalg.norm(kept[sha256(p.item)]))
        assert cosine > 0.99


def test_a_budget_too_short_keeps_the_head_and_says_why(tiny_data: Path, tmp_path: Path, test_device: str) -> None:
    progress: list[TrainProgress] = []
    trained = fit_and_export(
        load_data(tiny_data),
        tmp_path / "short.safetensors",
        TrainSettings(epochs=2, views=1, device=test_device, seed=1, tail_epochs=5, budget_s=1.0),
        progress=progress.append,
    )
    tail = trained.report["tried"][-1]
    assert tail["recipe"] == "tail" and not tail["kept"] and tail["valid_accuracy"] is None
    assert "budget" in tail["note"]
    assert trained.report["recipe"] == "head"
    assert any("was not tried" in (p.note or "") for p in progress)


def test_a_retrain_keeps_the_tuned_body_and_refits_the_head(tail_model: Any, tables: Path, tmp_path: Path) -> None:
    db = sort_and_correct_tables(tail_model.path, tables, tmp_path)
    with CorrectionStore(db) as store:
        result = retrain(tail_model.path, tmp_path / "v2.safetensors", store, feature_cache=tmp_path / "f.sqlite")
    assert result.training_data == "replay" and result.new_classes == ["table"]
    new = load_bundle(result.new_path)
    assert new.config.training["body_recipe"] == "tail"
    assert [a["recipe"] for a in new.config.training["tried"]] == ["head"]
    old_tail, new_tail = _tail_state(tail_model.path), _tail_state(result.new_path)
    assert all(torch.equal(old_tail[k], new_tail[k]) for k in old_tail), "the tuned body is kept as it is"


def test_the_tail_is_kept_only_for_a_gain_beyond_chance() -> None:
    from sorter.learn.significance import wins

    def rights(pattern: str) -> torch.Tensor:
        return torch.tensor([c == "1" for c in pattern])

    # 9 photos gained, 1 lost: P(at least 9 of 10 by chance) = 11/1024
    better, p = wins(rights("0000000001" + "1" * 50), rights("1111111110" + "1" * 50))
    assert better and p == pytest.approx(11 / 1024)
    # 5 gained, 2 lost: three photos better, which chance alone gives 23 % of the time
    better, p = wins(rights("0000011"), rights("1111100"))
    assert not better and p == pytest.approx(29 / 128)
    assert wins(rights("0101"), rights("0101")) == (False, 1.0)


def test_the_cli_says_what_it_tried_and_kept(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sorter.cli import main

    out = tmp_path / "cli.safetensors"
    args = ["train", str(tiny_data), "--out", str(out), "--epochs", "2", "--views", "1", "--budget", "1s"]
    assert main([*args, "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "The stronger network (EfficientNet-Lite1) was not tried" in captured.err
    assert "tried head  validation" in captured.out and "<- kept" in captured.out
    assert "tried lite1@240 not tried:" in captured.out
    assert load_bundle(out).config.training["budget_s"] == 1.0


def _right(pattern: str) -> torch.Tensor:
    return torch.tensor([c == "1" for c in pattern])


def test_one_validation_photo_does_not_decide_between_the_bodies() -> None:
    """Issue 28: 78.0 % against 77.2 % on 120 photos (one photo apart) kept the default body,
    and cost 5.4 points on the user's test photos. A lead that chance explains goes to the
    stronger body; a lead beyond chance keeps the default one, and the sentence says which."""
    both = "1" * 90
    default = _right(both + "1" * 4 + "0" * 3 + "0" * 23)  # 94 of 120
    stronger = _right(both + "0" * 4 + "1" * 3 + "0" * 23)  # 93 of 120, they disagree on 7
    keep, why = keep_unless_worse(default, stronger)
    assert keep, why
    assert why.startswith("validation accuracy 77.5% against 78.3%, 1 photo apart of 120 (they disagree on 7)")
    assert why.endswith("not a difference beyond chance (p = 0.50); kept the stronger")
    # the default body right on 12 of the 13 photos where they disagree: worse beyond chance
    default = _right(both + "1" * 12 + "0" + "0" * 17)
    stronger = _right(both + "0" * 12 + "1" + "0" * 17)
    keep, why = keep_unless_worse(default, stronger)
    assert not keep and "11 photos apart of 120" in why and "worse beyond chance (p = 0.002); not kept" in why
    keep, why = keep_unless_worse(stronger, default)
    assert keep and why.endswith("; kept") and "beyond chance" not in why


def test_the_stronger_body_is_tried_within_the_budget_and_kept_unless_worse(tiny_data: Path, tmp_path: Path) -> None:
    progress: list[TrainProgress] = []
    trained = fit_and_export(
        load_data(tiny_data),
        tmp_path / "ladder.safetensors",
        TrainSettings(epochs=3, views=1, seed=1, ladder=True, budget_s=600.0),
        progress=progress.append,
    )
    tried = trained.report["tried"]
    assert [a["recipe"] for a in tried] == ["head", "lite1@240"]
    head, stronger = tried
    assert stronger["valid_accuracy"] is not None and head["kept"] != stronger["kept"]
    assert stronger["note"].startswith(
        f"validation accuracy {stronger['valid_accuracy']:.1%} against {head['valid_accuracy']:.1%}"
    )
    assert stronger["kept"] == ("worse beyond chance" not in stronger["note"])
    assert stronger["kept"] or stronger["valid_accuracy"] < head["valid_accuracy"]
    bundle = load_bundle(trained.path)
    kept_arch = "efficientnet_lite1" if stronger["kept"] else "efficientnet_lite0"
    assert bundle.config.architecture == kept_arch and trained.report["recipe"] == (
        "lite1@240" if stronger["kept"] else "head"
    )
    assert any("Training the stronger network" in (p.note or "") for p in progress)
    # what sorting does with it is what the report says
    assert bundle.config.input_size == ((240, 240) if stronger["kept"] else (224, 224))


@pytest.mark.gpu
def test_on_a_gpu_the_last_blocks_train_at_once(tiny_data: Path, tmp_path: Path) -> None:
    """A GPU gets the strong recipe with no budget, and every tail epoch asked for runs
    (SORTER_TEST_DEVICE=cuda)."""
    parser = get_args_parser()
    settings = settings_from_args(parser.parse_args([str(tiny_data), "--out", "m", "--device", "cuda"]))
    assert settings.budget_s is None and not settings.ladder
    assert (settings.architecture, settings.size) == ("efficientnet_lite1", 240), "the stronger body at once"
    progress: list[TrainProgress] = []
    fit_and_export(
        load_data(tiny_data),
        tmp_path / "gpu.safetensors",
        TrainSettings(epochs=2, views=1, device="cuda", tail_epochs=2, keep_tail="always"),
        progress=progress.append,
    )
    assert [p.step for p in progress if p.phase == "tail"] == [1, 2]
