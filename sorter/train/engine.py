"""Fine-tune :class:`~sorter.model.architecture.SorterNet` with fastai, fast enough for a CPU.

Phase 1 runs the frozen body once per augmented view of each training photo and caches the
pooled features; the head is then fitted on those features with fastai's one-cycle schedule in
seconds. Phase 2 (optional, ``fine_tune_epochs``) unfreezes the body with discriminative learning
rates. fastai receives our own ``nn.Module`` with a splitter, so the exported ``state_dict`` loads
without fastai.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle and lr_find onto Learner)
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp
from fastai.data.block import CategoryBlock, DataBlock, MultiCategoryBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IndexSplitter, IntToFloatTensor, Normalize
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, LabelSmoothingCrossEntropyFlat
from fastai.metrics import accuracy, accuracy_multi
from fastai.torch_core import TensorImage, params
from fastai.vision.augment import RandomResizedCropGPU, aug_transforms
from fasttransform import Transform
from torch import nn
from torch.utils.data import TensorDataset

from sorter.core.datasets import LabelledData, Sample
from sorter.core.fileops import sha256_of
from sorter.learn.feature_cache import CLEAN_VIEW, FeatureCache, recipe_key
from sorter.model.architecture import SorterNet, load_body_weights
from sorter.model.bundle import BundleConfig, feature_recipe, save_bundle
from sorter.model.preprocess import Preprocessor

log = logging.getLogger(__name__)

FEATURE_EVENT = "features"
AUGMENT_RECIPE = "rrc0.35;rot10;light0.4;warp0.1;plight0.9;v1"
"""Names the training augmentation in feature-cache keys: change it when the transforms change."""


@dataclass(frozen=True)
class TrainProgress:
    """One progress report: feature extraction steps, or an epoch's losses and metric."""

    phase: str
    step: int
    total: int
    train_loss: float | None = None
    valid_loss: float | None = None
    metric: float | None = None


ProgressFn = Callable[[TrainProgress], None]


@dataclass
class TrainSettings:
    architecture: str = "efficientnet_lite0"
    weights: Path | None = None
    size: int = 224
    resize: str = "squish"
    epochs: int = 12
    """Head epochs on cached features (cheap)."""
    views: int = 3
    """Augmented views of each training photo whose features are cached; 0: the clean view only,
    no augmentation (what ``sorter train --cluster`` computes on a cluster)."""
    fine_tune_epochs: int = 0
    """Unfrozen epochs over the images (slow on a CPU)."""
    label_smoothing: float = 0.0
    """Label smoothing of the head's loss (single-label); 0 = none."""
    mixup: float = 0.0
    """Mixup of cached features and their labels in the head fit (Beta(alpha, alpha)); 0 = none."""
    batch_size: int = 32
    seed: int = 42
    lr: float | None = None
    device: str = "cpu"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict)


class _Decode(Transform):
    """fastai item transform: our own decoder, so training sees the pixels sorting will see."""

    def __init__(self, preprocess: Preprocessor) -> None:
        super().__init__()
        self.preprocess = preprocess

    def encodes(self, path: Path) -> TensorImage:
        arr = self.preprocess(Path(path))
        return TensorImage(torch.from_numpy(arr).permute(2, 0, 1))


class _Report(Callback):
    """Hands each epoch's numbers to the caller (the CLI bar, the GUI's train dialog)."""

    order = 90

    def __init__(self, progress: ProgressFn | None, phase: str) -> None:
        self.progress = progress
        self.phase = phase

    def after_epoch(self) -> None:
        if self.progress is None:
            return
        values = list(self.recorder.log[1:]) if self.recorder.log else []
        numbers = [float(v) for v in values if isinstance(v, (int, float, np.floating))]
        self.progress(
            TrainProgress(
                self.phase,
                self.epoch + 1,
                self.n_epoch,
                numbers[0] if len(numbers) > 0 else None,
                numbers[1] if len(numbers) > 1 else None,
                numbers[2] if len(numbers) > 2 else None,
            )
        )


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


def _num_workers() -> int:
    if sys.platform == "win32":
        return 0  # WORKAROUND: fastai DataLoader workers cannot pickle our transforms on spawn
    if threading.current_thread() is not threading.main_thread():
        # Training from the app runs on a worker thread of a multithreaded Qt process: forked
        # DataLoader workers die there, and torch's SIGCHLD handler then fires in the GUI thread.
        return 0
    return min(2, os.cpu_count() or 1)


def build_dataloaders(
    samples: Sequence[Sample],
    train_idx: list[int],
    valid_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
) -> DataLoaders:
    """fastai DataLoaders: our decoder per item, then aug_transforms and a random resized crop
    (training only) and normalisation per batch, from the bundle's own mean and std."""
    size = config.input_size[0]
    y_block = (
        MultiCategoryBlock(vocab=list(config.classes))
        if config.multi_label
        else CategoryBlock(vocab=list(config.classes))
    )
    block = DataBlock(
        blocks=(TransformBlock(type_tfms=_Decode(Preprocessor(config)), batch_tfms=IntToFloatTensor), y_block),
        get_x=lambda s: s.path,
        get_y=(lambda s: list(s.labels)) if config.multi_label else (lambda s: s.labels[0]),
        batch_tfms=[
            RandomResizedCropGPU(size, min_scale=0.35),
            *aug_transforms(max_rotate=10.0, max_lighting=0.4, max_warp=0.1, p_lighting=0.9),
            Normalize.from_stats(list(config.mean), list(config.std)),
        ],
    )
    chosen = [samples[i] for i in (*train_idx, *valid_idx)]
    block.splitter = IndexSplitter(list(range(len(train_idx), len(chosen))))
    return block.dataloaders(
        chosen, bs=settings.batch_size, num_workers=_num_workers(), device=device, seed=settings.seed
    )


def _features(
    body: nn.Module, dl: Any, progress: ProgressFn | None, step0: int, total: int
) -> tuple[torch.Tensor, torch.Tensor]:
    feats, ys = [], []
    step = step0
    body.eval()
    with torch.inference_mode():
        for xb, yb in dl:
            feats.append(body(xb.as_subclass(torch.Tensor).contiguous(memory_format=torch.channels_last)).float().cpu())
            ys.append(yb.as_subclass(torch.Tensor).cpu())
            step += 1
            if progress is not None:
                progress(TrainProgress(FEATURE_EVENT, step, total))
    return torch.cat(feats), torch.cat(ys)


@dataclass
class FeatureSet:
    """Body features of the training data: ``views`` augmented rows per training photo and one
    clean row per validation (and memory) photo."""

    train: torch.Tensor
    """(views * len(train_idx), D): view 0 of every training photo, then view 1, ..."""
    clean: dict[int, torch.Tensor]
    """Clean (unaugmented) features by sample index, for validation and memory photos."""
    computed: int
    """Feature rows that had to be computed (the rest came from the cache)."""
    shas: dict[int, str] = field(default_factory=dict)
    """Content hashes by sample index, where the cache needed them."""


def body_recipe(model: SorterNet, config: BundleConfig, settings: TrainSettings) -> dict[str, str]:
    """Cache keys: the body's own (weights and preprocessing, as sorting keys it) for clean
    features, plus the augmentation recipe and seed for augmented ones."""
    return recipes_for(feature_recipe(config, model.body.state_dict()), settings.seed)


def recipes_for(clean: str, seed: int) -> dict[str, str]:
    """:func:`body_recipe` from a body's clean feature recipe (``Bundle.feature_recipe``)."""
    return {"clean": clean, "augmented": recipe_key({"body": clean, "augment": AUGMENT_RECIPE, "seed": seed})}


def sample_sha(sample: Sample) -> str:
    return sample.sha256 or sha256_of(sample.path)


def extract_features(
    model: SorterNet,
    samples: Sequence[Sample],
    train_idx: list[int],
    clean_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
    cache: FeatureCache | None,
    progress: ProgressFn | None,
) -> FeatureSet:
    """Features of ``views`` augmented views of each training photo and a clean view of each
    photo in ``clean_idx``, taking what the cache has and computing only the rest."""
    if settings.views == 0:  # the clean view of every photo, training photos included
        both = list(dict.fromkeys([*train_idx, *clean_idx]))
        clean_set = extract_features(
            model, samples, [], both, config, replace(settings, views=1), device, cache, progress
        )
        train_rows = [clean_set.clean[i] for i in train_idx]
        return FeatureSet(
            train=torch.stack(train_rows).float() if train_rows else torch.zeros(0, model.num_features),
            clean={i: clean_set.clean[i] for i in clean_idx},
            computed=clean_set.computed,
            shas=clean_set.shas,
        )
    recipes = body_recipe(model, config, settings)
    shas = {i: sample_sha(samples[i]) for i in {*train_idx, *clean_idx}} if cache is not None else {}
    aug_keys = [(shas.get(i, ""), v) for v in range(settings.views) for i in train_idx]
    clean_keys = [(shas.get(i, ""), CLEAN_VIEW) for i in clean_idx]
    have_aug = cache.get_many(recipes["augmented"], aug_keys) if cache is not None else {}
    have_clean = cache.get_many(recipes["clean"], clean_keys) if cache is not None else {}
    missing_aug = [(i, v) for v in range(settings.views) for i in train_idx if (shas.get(i, ""), v) not in have_aug]
    missing_train = sorted({i for i, _ in missing_aug})
    missing_clean = [i for i in clean_idx if (shas.get(i, ""), CLEAN_VIEW) not in have_clean]
    computed_aug: dict[tuple[int, int], torch.Tensor] = {}
    computed_clean: dict[int, torch.Tensor] = {}
    if missing_train or missing_clean:
        # A DataBlock needs both sides; a lone photo stands in for an empty one and is ignored.
        train_side = missing_train or [missing_clean[0]]
        valid_side = missing_clean or [missing_train[0]]
        dls = build_dataloaders(samples, train_side, valid_side, config, settings, device)
        train_dl = dls.train.new(shuffle=False, drop_last=False)
        n_train_batches = len(train_dl) if missing_train else 0
        total = n_train_batches * settings.views + (len(dls.valid) if missing_clean else 0)
        if missing_train:
            for v in range(settings.views):
                feats, _ = _features(model.body, train_dl, progress, v * n_train_batches, total)
                for i, row in zip(missing_train, feats, strict=True):
                    computed_aug[(i, v)] = row
        if missing_clean:
            feats, _ = _features(model.body, dls.valid, progress, settings.views * n_train_batches, total)
            for i, row in zip(missing_clean, feats, strict=True):
                computed_clean[i] = row
        if cache is not None:
            # views of a partly cached photo were all computed again; store only the missing ones
            missing = set(missing_aug)
            cache.put_many(
                recipes["augmented"],
                {(shas[i], v): row.numpy() for (i, v), row in computed_aug.items() if (i, v) in missing},
            )
            cache.put_many(recipes["clean"], {(shas[i], CLEAN_VIEW): row.numpy() for i, row in computed_clean.items()})

    def aug_row(i: int, v: int) -> torch.Tensor:
        if (i, v) in computed_aug:
            return computed_aug[(i, v)]
        return torch.from_numpy(have_aug[(shas[i], v)])

    def clean_row(i: int) -> torch.Tensor:
        if i in computed_clean:
            return computed_clean[i]
        return torch.from_numpy(have_clean[(shas[i], CLEAN_VIEW)])

    train_rows = [aug_row(i, v) for v in range(settings.views) for i in train_idx]
    clean = {i: clean_row(i) for i in clean_idx}
    return FeatureSet(
        train=torch.stack(train_rows).float() if train_rows else torch.zeros(0, model.num_features),
        clean=clean,
        computed=len(computed_aug) + len(computed_clean),
        shas=shas,
    )


def _targets(samples: Sequence[Sample], idx: list[int], config: BundleConfig) -> torch.Tensor:
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
    lr: float
    features: FeatureSet | None = None
    """The clean features of validation and memory photos (None after a fine-tune changed the body)."""
    computed_features: int = 0


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

    # Phase 1: body features (several augmented views of each training photo), cached on disk.
    t0 = time.perf_counter()
    clean_idx = list(dict.fromkeys([*valid_idx, *(memory_idx or [])]))
    feature_set = extract_features(
        model, data.samples, train_idx, clean_idx, config, settings, device, feature_cache, progress
    )
    yt_one = _targets(data.samples, train_idx, config)
    xt = feature_set.train
    views = max(1, settings.views)  # 0: one clean row per photo
    yt = yt_one.repeat(views, *([1] * (yt_one.dim() - 1)))
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
    yv = _targets(data.samples, valid_idx, config)
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
        if settings.label_smoothing > 0:
            loss = LabelSmoothingCrossEntropyFlat(eps=settings.label_smoothing, weight=weight)
        else:
            loss = CrossEntropyLossFlat(weight=weight)
        metric = accuracy
    scratch = tempfile.TemporaryDirectory(prefix="sorter-train-")  # lr_find saves a checkpoint there
    head_learn = Learner(feat_dls, head, loss_func=loss, metrics=metric, path=scratch.name)
    with head_learn.no_bar(), head_learn.no_logging():
        lr = settings.lr or _suggest_lr(head_learn)
        head_learn.add_cb(_Report(progress, "head"))  # after lr_find, whose steps are no epochs
        extra_cbs = [MixUp(settings.mixup)] if settings.mixup > 0 and not config.multi_label else []
        head_learn.fit_one_cycle(settings.epochs, lr_max=lr, cbs=extra_cbs)
    head_seconds = time.perf_counter() - t1

    # Phase 3 (optional): unfreeze the body, discriminative learning rates via the splitter.
    t2 = time.perf_counter()
    if settings.fine_tune_epochs > 0:
        dls = build_dataloaders(data.samples, train_idx, valid_idx, config, settings, device)
        learn = Learner(
            dls,
            model,
            loss_func=loss,
            metrics=metric,
            cbs=[_Report(progress, "fine-tune")],
            splitter=lambda m: [params(m.body), params(m.head)],
            path=scratch.name,
        )
        if device.type == "cuda":
            learn = learn.to_fp16()
        with learn.no_bar(), learn.no_logging():
            learn.unfreeze()
            learn.fit_one_cycle(settings.fine_tune_epochs, lr_max=slice(lr / 100, lr / 10))
        if device.type == "cuda":
            learn = learn.to_fp32()
    fine_tune_seconds = time.perf_counter() - t2
    scratch.cleanup()

    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        config=config,
        seconds=time.perf_counter() - started,
        feature_seconds=feature_seconds,
        head_seconds=head_seconds,
        fine_tune_seconds=fine_tune_seconds,
        lr=float(lr),
        features=feature_set if settings.fine_tune_epochs == 0 else None,
        computed_features=feature_set.computed,
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
