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
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle and lr_find onto Learner)
import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.data.block import CategoryBlock, DataBlock, MultiCategoryBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IndexSplitter, IntToFloatTensor, Normalize
from fastai.learner import Learner
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat
from fastai.metrics import accuracy, accuracy_multi
from fastai.torch_core import TensorImage, params
from fastai.vision.augment import RandomResizedCropGPU, aug_transforms
from fasttransform import Transform
from torch import nn
from torch.utils.data import TensorDataset

from sorter.core.datasets import LabelledData, Sample
from sorter.model.architecture import SorterNet, load_body_weights
from sorter.model.bundle import BundleConfig
from sorter.model.preprocess import Preprocessor

log = logging.getLogger(__name__)

FEATURE_EVENT = "features"


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
    """Augmented views of each training photo whose features are cached (1 = no augmentation)."""
    fine_tune_epochs: int = 0
    """Unfrozen epochs over the images (slow on a CPU)."""
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
class TrainResult:
    model: SorterNet
    config: BundleConfig
    seconds: float
    feature_seconds: float
    head_seconds: float
    fine_tune_seconds: float
    lr: float


def train(
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    settings: TrainSettings,
    progress: ProgressFn | None = None,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train a SorterNet on ``data``; returns the model (on the CPU) and its bundle config.

    Args:
        init_state: start from these weights (retraining) instead of the pretrained body;
            head rows are reused for classes the old model already had.
    """
    started = time.perf_counter()
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
    dls = build_dataloaders(data.samples, train_idx, valid_idx, config, settings, device)

    # Phase 1: cache body features (several augmented views of each training photo).
    t0 = time.perf_counter()
    train_dl = dls.train.new(shuffle=True, drop_last=False)
    valid_dl = dls.valid
    total_steps = len(train_dl) * settings.views + len(valid_dl)
    views = [_features(model.body, train_dl, progress, v * len(train_dl), total_steps) for v in range(settings.views)]
    xt = torch.cat([v[0] for v in views])
    yt = torch.cat([v[1] for v in views])
    xv, yv = _features(model.body, valid_dl, progress, settings.views * len(train_dl), total_steps)
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
        head_learn.add_cb(_Report(progress, "head"))  # after lr_find, whose steps are no epochs
        head_learn.fit_one_cycle(settings.epochs, lr_max=lr)
    head_seconds = time.perf_counter() - t1

    # Phase 3 (optional): unfreeze the body, discriminative learning rates via the splitter.
    t2 = time.perf_counter()
    if settings.fine_tune_epochs > 0:
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
