"""The whole network's fine-tune (issue 28): batch norm keeps the statistics the clean photos of
sorting are normalised with, the bundle keeps what the correction loop needs, and the budget
tries it only when it fits."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from sorter.files.corrections import CorrectionStore
from sorter.learn.datasets import load_data, split
from sorter.model.bundle import load_bundle
from sorter.train.engine import train
from sorter.train.finetune import learner, seconds_per_epoch, tune
from sorter.train.recipe import TrainProgress, TrainSettings
from sorter.train.retrain import retrain
from sorter.train.train import fit_and_export
from tests.train.conftest import sort_and_correct_tables


def _batch_norms(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{stat}": getattr(module, stat).clone()
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for stat in ("running_mean", "running_var")
    }


def test_the_fine_tune_trains_the_body_and_leaves_batch_norm_statistics_alone(tiny_data: Path) -> None:
    """The user's fine-tune fell from 82.5 % to 64.3 %, and on paintings it lost 10.6 points:
    fastai's training mode replaced every batch-norm layer's statistics with those of small
    augmented batches. Frozen, the body learns and the statistics stay."""
    data = load_data(tiny_data)
    train_idx, valid_idx = split(data, 0.2, 1)
    settings = TrainSettings(epochs=3, views=1, seed=1)
    base = train(data, train_idx, valid_idx, settings)
    before = _batch_norms(base.model)
    weights = {k: v.clone() for k, v in base.model.state_dict().items() if k.endswith("weight")}
    with tempfile.TemporaryDirectory() as scratch:
        learn = learner(base, data, train_idx, valid_idx, settings, None, scratch)
        assert seconds_per_epoch(learn, learn.dls) > 0  # the budget's timing batches train nothing
        tuned = tune(learn, 1, base.lr, base.config, data, train_idx, valid_idx, [], settings, None)
    after = _batch_norms(tuned.model)
    assert before.keys() == after.keys() and len(before) > 10
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert not moved, f"batch-norm statistics changed: {moved[:3]}"
    changed = [k for k, v in tuned.model.state_dict().items() if k in weights and not torch.equal(v, weights[k])]
    assert any(k.startswith("body.") for k in changed), "the body itself trained"
    assert _batch_norms(base.model).keys() == before.keys() and all(
        torch.equal(v, before[k]) for k, v in _batch_norms(base.model).items()
    ), "the base model is left as it was (a step not kept costs nothing)"
    # what the bundle keeps is computed through the new body
    assert tuned.features.train.shape[0] == len(train_idx) and set(tuned.features.clean) == set(valid_idx)
    assert tuned.valid_right.shape == (len(valid_idx),) and not tuned.model.training


def test_a_fine_tune_asked_for_is_judged_and_keeps_the_replay(tiny_data: Path, tables: Path, tmp_path: Path) -> None:
    progress: list[TrainProgress] = []
    trained = fit_and_export(
        load_data(tiny_data),
        tmp_path / "tuned.safetensors",
        TrainSettings(epochs=3, views=2, seed=1, fine_tune_epochs=1),
        progress=progress.append,
    )
    head, step = trained.report["tried"]
    assert (head["recipe"], step["recipe"]) == ("head", "fine-tune")
    assert step["note"].startswith(
        f"validation accuracy {step['valid_accuracy']:.1%} against {head['valid_accuracy']:.1%}"
    )
    assert step["kept"] == ("worse beyond chance" not in step["note"]) and head["kept"] != step["kept"]
    assert [p.step for p in progress if p.phase == "fine-tune"] == [0, 1]
    bundle = load_bundle(trained.path)
    assert trained.report["recipe"] == ("fine-tune" if step["kept"] else "head")
    # the correction loop's fast retrain and the shift checks need the replay, fine-tuned or not
    replay = bundle.read_replay()
    assert replay is not None and len(replay.labels) > 0
    assert bundle.config.training["fine_tune_epochs"] == 1
    # a retrain keeps the body it was given and refits the head from that replay
    db = sort_and_correct_tables(trained.path, tables, tmp_path, count=4)
    with CorrectionStore(db) as store:
        again = retrain(trained.path, tmp_path / "again.safetensors", store)
    assert again.training_data == "replay" and again.new_classes == ["table"]
    body = {k: v for k, v in bundle.state.items() if k.startswith("body.")}
    assert all(torch.equal(v, load_bundle(again.new_path).state[k]) for k, v in body.items())
    assert load_bundle(again.new_path).config.training["fine_tune_epochs"] == 0


def test_the_budget_tries_the_fine_tune_only_when_it_fits(tiny_data: Path, tmp_path: Path) -> None:
    trained = fit_and_export(
        load_data(tiny_data),
        tmp_path / "short.safetensors",
        TrainSettings(epochs=2, views=1, seed=1, fine_tune_budget=True, budget_s=1.0),
    )
    step = trained.report["tried"][-1]
    assert step["recipe"] == "fine-tune" and not step["kept"] and step["valid_accuracy"] is None
    assert step["note"].startswith("not tried: 2 epochs take about ") and "of the budget were left" in step["note"]
    assert trained.report["recipe"] == "head"
