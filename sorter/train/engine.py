"""Fine-tune :class:`~sorter.model.architecture.SorterNet` with fastai, fast enough for a CPU.

Phase 1 runs the frozen body once per augmented view of each training photo and caches the
pooled features; the head is then fitted on those features with fastai's one-cycle schedule in
seconds. The whole network's fine-tune is a step of its own (:mod:`sorter.train.finetune`), after
the bodies are chosen. fastai receives our own ``nn.Module`` with a splitter, so the exported ``state_dict`` loads
without fastai. The recipe is :mod:`sorter.train.recipe`, the features :mod:`sorter.train.features`.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle and lr_find onto Learner)
import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
from fastai.metrics import accuracy, accuracy_multi
from torch import nn
from torch.utils.data import TensorDataset

from sorter.files.feature_cache import FeatureCache
from sorter.learn.datasets import LabelledData, Sample
from sorter.model.architecture import SorterNet, load_body_weights
from sorter.model.bundle import save_bundle
from sorter.model.config import BundleConfig
from sorter.train.callbacks import Report
from sorter.train.features import FeatureSet, extract_features
from sorter.train.recipe import Attempt, ProgressFn, TrainSettings
from sorter.train.tail import fit_tail, pooled_set, prepare_tail, right_of

log = logging.getLogger(__name__)


def base_config(data: LabelledData, settings: TrainSettings) -> BundleConfig:
    return BundleConfig(
        architecture=settings.architecture,
        classes=data.classes,
        multi_label=data.multi_label,
        input_size=(settings.size, settings.size),
        resize=settings.resize,
        mean=settings.mean,
        std=settings.std,
        threshold=0.2 if data.multi_label else 0.5,
    )


def initial_bundle(data: LabelledData, settings: TrainSettings, path: Path) -> Path:
    """The network training starts from (pretrained body, new head), written as a bundle so that
    other machines can compute its body features (``sorter train --cluster``)."""
    config = base_config(data, settings)
    model = SorterNet(settings.architecture, len(config.classes))
    load_body_weights(model, settings.weights)
    return save_bundle(path, model, config, overwrite=True)


def targets(samples: Sequence[Sample], idx: list[int], config: BundleConfig) -> torch.Tensor:
    """The labels of ``samples[idx]`` as the loss wants them: class indices, or multi-hot rows."""
    index = {c: i for i, c in enumerate(config.classes)}
    if config.multi_label:
        y = torch.zeros(len(idx), len(config.classes))
        for row, i in enumerate(idx):
            for label in samples[i].labels:
                y[row, index[label]] = 1.0
        return y
    return torch.tensor([index[samples[i].labels[0]] for i in idx], dtype=torch.long)


@dataclass
class TrainResult:
    model: SorterNet
    config: BundleConfig
    seconds: float
    feature_seconds: float
    head_seconds: float
    fine_tune_seconds: float
    """Time the kept fine-tune took (:mod:`sorter.train.finetune`); 0 without one."""
    lr: float
    features: FeatureSet | None = None
    """The clean features of validation and memory photos (None after a fine-tune changed the body)."""
    computed_features: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    """What the run tried, in order, and which one it kept."""
    valid_right: torch.Tensor | None = None
    """Which validation photos the kept step gets right (single-label): the budget compares two
    bodies photo by photo on these (:mod:`sorter.train.ladder`)."""

    @property
    def recipe(self) -> str:
        kept = [a.recipe for a in self.attempts if a.kept]
        return kept[-1] if kept else "head"


def train(
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    settings: TrainSettings,
    progress: ProgressFn | None = None,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    feature_cache: FeatureCache | None = None,
    repeats: dict[int, int] | None = None,
    memory_idx: list[int] | None = None,
) -> TrainResult:
    """Train a SorterNet on ``data``; returns the model (on the CPU) and its bundle config.

    Args:
        init_state: start from these weights (retraining) instead of the pretrained body;
            head rows are reused for classes the old model already had.
        feature_cache: where body features of unchanged photos are kept between trainings.
        repeats: training sample index → how many times its rows count in each head epoch
            (the user's photos, so they are not drowned by a large original data set).
        memory_idx: samples whose clean features the caller needs (the exemplar memory).
    """
    started = time.perf_counter()
    # fastai's DataLoader draws its shuffling from Python's `random`: seed all three, or the
    # same seed gives another model each run (and the tests a flaky tiny model)
    random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    np.random.seed(settings.seed)
    device = torch.device(settings.device)
    config = base_config(data, settings)
    model = SorterNet(settings.architecture, len(config.classes))
    if init_state is not None:
        body = {k.removeprefix("body."): v for k, v in init_state.items() if k.startswith("body.")}
        model.body.load_state_dict(body)
    else:
        load_body_weights(model, settings.weights)
    model = model.to(device).to(memory_format=torch.channels_last)

    # Phase 1: body features (several augmented views of each training photo), cached on disk;
    # for the tail step, the stem's output instead, and the features pooled from it.
    t0 = time.perf_counter()
    attempts: list[Attempt] = []
    clean_idx = list(dict.fromkeys([*valid_idx, *(memory_idx or [])]))
    tail, kept_input = prepare_tail(
        model, data, train_idx, valid_idx, clean_idx, config, settings, device, progress, attempts
    )
    if tail is not None and kept_input is not None:
        feature_set = pooled_set(tail, kept_input, clean_idx, computed=len(kept_input[0]) + len(clean_idx))
    else:
        feature_set = extract_features(
            model, data.samples, train_idx, clean_idx, config, settings, device, feature_cache, progress
        )
    yt_one = targets(data.samples, train_idx, config)
    xt = feature_set.train
    views = max(1, settings.views)  # 0: one clean row per photo
    yt = yt_one.repeat(views, *([1] * (yt_one.dim() - 1)))
    y_views = yt
    if repeats:
        extra = [
            (v * len(train_idx) + row, n - 1)
            for v in range(views)
            for row, i in enumerate(train_idx)
            if (n := repeats.get(i, 1)) > 1
        ]
        if extra:
            rows = torch.tensor([r for r, n in extra for _ in range(n)], dtype=torch.long)
            xt = torch.cat([xt, xt[rows]])
            yt = torch.cat([yt, yt[rows]])
    xv = torch.stack([feature_set.clean[i] for i in valid_idx]).float()
    yv = targets(data.samples, valid_idx, config)
    feature_seconds = time.perf_counter() - t0
    # Phase 2: fit the head on the cached features with fastai.
    t1 = time.perf_counter()
    head = nn.Sequential(model.drop, model.head)
    # About ten optimiser steps per epoch however small the data: one big batch per epoch leaves
    # a fresh head barely trained.
    head_bs = int(min(128, max(8, len(xt) // 10)))
    feat_dls = DataLoaders.from_dsets(
        TensorDataset(xt, yt), TensorDataset(xv, yv), bs=head_bs, device=device, num_workers=0
    )
    if config.multi_label:
        loss: Any = BCEWithLogitsLossFlat(thresh=config.threshold)
        metric: Any = _partial_accuracy_multi(config.threshold)
    else:
        # Balance classes: furniture7 has 900 sofas for 120 fridges once the extra set joins, and
        # the big classes then swallow photos from other sources (measured: benchmarks/cross_source.py).
        counts = torch.bincount(yt.long(), minlength=len(config.classes)).float().clamp(min=1)
        weight = (counts.sum() / counts / len(counts)).to(device)
        loss = CrossEntropyLossFlat(weight=weight)
        metric = accuracy
    scratch = tempfile.TemporaryDirectory(prefix="sorter-train-")  # lr_find saves a checkpoint there
    head_learn = Learner(feat_dls, head, loss_func=loss, metrics=metric, path=scratch.name)
    with head_learn.no_bar(), head_learn.no_logging():
        lr = settings.lr or _suggest_lr(head_learn)
        head_learn.add_cb(Report(progress, "head"))  # after lr_find, whose steps are no epochs
        head_learn.fit_one_cycle(settings.epochs, lr_max=lr)
    head_seconds = time.perf_counter() - t1
    head_right = None if config.multi_label else right_of(head, xv, yv)
    head_accuracy = None
    if head_right is not None:
        head_accuracy = float(head_right.float().mean()) if len(head_right) else 0.0
    attempts.append(Attempt("head", head_accuracy, time.perf_counter() - started, kept=True))
    valid_right = head_right
    if tail is not None and kept_input is not None and head_right is not None:
        tuned = fit_tail(
            tail,
            kept_input,
            y_views,
            valid_idx,
            yv,
            head_right,
            loss,
            lr,
            settings,
            started,
            progress,
            scratch.name,
            attempts,
        )
        if tuned is not None:
            valid_right = tuned
            # the body changed: what the bundle keeps (replay, statistics, memory) is pooled anew
            feature_set = pooled_set(tail, kept_input, clean_idx, computed=feature_set.computed)

    scratch.cleanup()

    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        config=config,
        seconds=time.perf_counter() - started,
        feature_seconds=feature_seconds,
        head_seconds=head_seconds,
        fine_tune_seconds=0.0,
        lr=float(lr),
        features=feature_set,
        computed_features=feature_set.computed,
        attempts=attempts,
        valid_right=valid_right,
    )


def _partial_accuracy_multi(threshold: float) -> Callable[..., torch.Tensor]:
    def accuracy_at_threshold(inp: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = accuracy_multi(inp, targ, thresh=threshold)
        return result

    return accuracy_at_threshold


def _suggest_lr(learn: Learner) -> float:
    """fastai's lr_find 'valley' suggestion, kept within sane bounds for a linear head."""
    try:
        suggestion = learn.lr_find(show_plot=False)
        lr = float(suggestion.valley)
    except Exception as exc:  # lr_find can fail on tiny data; a head fit is forgiving
        log.info("lr_find failed (%s); using 3e-3", exc)
        return 3e-3
    if not np.isfinite(lr):
        return 3e-3
    return float(min(max(lr, 1e-4), 3e-2))
