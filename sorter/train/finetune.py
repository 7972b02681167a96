"""The budget's last step: the whole network trained on the user's photos, batch norm frozen.

Issue 28: a user's fine-tune (4 epochs over 600 photos, 145 s) fell from 82.5 % to 64.3 % on
their test photos. The cause was batch norm: fastai puts the model in training mode, so each
layer's ImageNet statistics were replaced by those of small, heavily augmented batches, and the
clean photos of sorting then went through statistics they do not have. On paintings (60 a class)
the same fine-tune lost 10.6 points with batch norm training and gained 3.0 with it frozen
(``benchmarks/recipes.py``, docs/PERFORMANCE.md). So batch norm stays frozen
(:class:`~sorter.train.callbacks.FrozenBatchNorm`), and the step follows fastai's ``fine_tune``
once the head is fitted: the body at a hundredth of the head's rate, the head at a tenth.

After it the body has changed, so the features the bundle keeps (its replay for fast retrains,
the class statistics behind "none of these" and the shift checks, the exemplar memory) are
computed again through the new body: one clean pass over the photos, and one augmented view of
each training photo.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import params
from torch import nn

from sorter.learn.datasets import LabelledData
from sorter.model.architecture import SorterNet
from sorter.model.config import BundleConfig
from sorter.train.callbacks import FrozenBatchNorm, Report, freeze_batch_norm, note
from sorter.train.engine import TrainResult, targets
from sorter.train.features import FeatureSet, build_dataloaders, extract_features
from sorter.train.ladder import keep_unless_worse
from sorter.train.recipe import Attempt, ProgressFn, TrainSettings
from sorter.train.tail import right_of

STEP = "fine-tune"
EPOCHS = 4
"""Epochs the budget's fine-tune asks for (fewer if the time left allows fewer, none under 2)."""
MIN_EPOCHS = 2
BODY_RATE = 1 / 100
HEAD_RATE = 1 / 10
"""Fractions of the head's learning rate (fastai's ``fine_tune``: a slice two decades wide)."""


def _class_weights(y: torch.Tensor, classes: int) -> torch.Tensor:
    counts = torch.bincount(y.long(), minlength=classes).float().clamp(min=1)
    return counts.sum() / counts / len(counts)


def seconds_per_epoch(learn: Learner, dls: DataLoaders) -> float:
    """Training batches decoded, augmented, run forward and backward, times the batches of an
    epoch, with a margin for the optimiser. The first batch is left out of the timing: it pays
    for starting the loader's workers, and counting it made the budget stop after 4 epochs where
    8 would have fitted."""
    model = learn.model
    model.train()
    freeze_batch_norm(model)  # timing must not move the statistics the fine-tune keeps
    timings = []
    batches = iter(dls.train)
    for _ in range(min(3, len(dls.train))):
        started = time.perf_counter()
        xb, yb = next(batches)
        learn.loss_func(model(xb), yb).backward()
        model.zero_grad(set_to_none=True)
        timings.append(time.perf_counter() - started)
    del batches
    per_batch = sum(timings[1:]) / len(timings[1:]) if len(timings) > 1 else timings[0]
    return per_batch * max(1, len(dls.train)) * 1.1


def fine_tune_step(
    base: TrainResult,
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    memory_idx: list[int],
    settings: TrainSettings,
    started: float,
    progress: ProgressFn | None,
    scratch: str,
) -> TrainResult:
    """Fine-tune a copy of ``base``'s network for the epochs asked (``fine_tune_epochs``) or, in
    the budget, as many as the time left allows up to :data:`EPOCHS`. Keep it unless validation
    says it is worse beyond chance (:func:`~sorter.train.ladder.keep_unless_worse`); return the
    result to keep, its ``attempts`` the whole story."""
    asked = settings.fine_tune_epochs
    why = ""
    if base.config.multi_label:
        why = "not tried: a multi-label model is judged on another measure"
    elif base.valid_right is None or base.features is None:
        why = "not tried: the network was already changed by another step"
    if why or base.valid_right is None:
        return _skipped(base, started, progress, why)
    before = base.valid_right
    learn = learner(base, data, train_idx, valid_idx, settings, progress, scratch)
    epoch_s = seconds_per_epoch(learn, learn.dls)
    # the features computed again afterwards: one forward pass over every photo, about a third
    # of an epoch's work per photo
    redo_s = epoch_s * (len(train_idx) + len(valid_idx) + len(memory_idx)) / max(1, len(train_idx)) / 3
    left = float("inf") if settings.budget_s is None else settings.budget_s - (time.perf_counter() - started)
    epochs = asked if asked > 0 else min(EPOCHS, int(max(0.0, left - redo_s) // epoch_s))
    if epochs < (1 if asked > 0 else MIN_EPOCHS):
        why = (
            f"not tried: {MIN_EPOCHS} epochs take about {MIN_EPOCHS * epoch_s + redo_s:.0f} s "
            f"and {max(0.0, left):.0f} s of the budget were left"
        )
        return _skipped(base, started, progress, why)
    note(progress, f"Fine-tuning the whole network: {epochs} epochs of about {epoch_s:.0f} s.")
    tuned = tune(learn, epochs, base.lr, base.config, data, train_idx, valid_idx, memory_idx, settings, progress)
    keep, evidence = keep_unless_worse(before, tuned.valid_right, "the fine-tuned")
    accuracy_now = float(tuned.valid_right.float().mean())
    attempts = [replace(a, kept=a.kept and not keep) for a in base.attempts]
    attempts.append(Attempt(STEP, accuracy_now, time.perf_counter() - started, kept=keep, note=evidence))
    note(progress, f"Fine-tuned network: {evidence}.")
    if not keep:
        base.attempts = attempts
        return base
    return replace(
        base,
        model=tuned.model,
        seconds=time.perf_counter() - started,
        fine_tune_seconds=tuned.seconds,
        features=tuned.features,
        computed_features=base.computed_features + tuned.features.computed,
        attempts=attempts,
        valid_right=tuned.valid_right,
    )


def learner(
    base: TrainResult,
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    settings: TrainSettings,
    progress: ProgressFn | None,
    scratch: str,
) -> Learner:
    """A fastai learner over a copy of ``base``'s network and the photos themselves (augmented as
    the features were), classes balanced as in the head's fit, batch norm frozen."""
    device = torch.device(settings.device)
    model = copy.deepcopy(base.model).to(device).to(memory_format=torch.channels_last)
    dls = build_dataloaders(data.samples, train_idx, valid_idx, base.config, settings, device)
    y_train = targets(data.samples, train_idx, base.config)
    loss: Any = CrossEntropyLossFlat(weight=_class_weights(y_train, len(base.config.classes)).to(device))
    return Learner(
        dls,
        model,
        loss_func=loss,
        metrics=accuracy,
        cbs=[Report(progress, STEP), FrozenBatchNorm()],
        splitter=lambda m: [params(m.body), params(m.head)],
        path=scratch,
    )


@dataclass
class Tuned:
    model: SorterNet
    """On the CPU, in evaluation mode."""
    features: FeatureSet
    """Through the new body: one augmented view of each training photo, one clean view of each
    validation and memory photo."""
    valid_right: torch.Tensor
    """Which validation photos it gets right, as sorting sees them."""
    seconds: float
    """The training alone."""


def tune(
    learn: Learner,
    epochs: int,
    lr: float,
    config: BundleConfig,
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    memory_idx: list[int],
    settings: TrainSettings,
    progress: ProgressFn | None,
) -> Tuned:
    """Train ``learn``'s whole network for ``epochs``, then compute through the new body the
    features the bundle keeps and which validation photos it gets right."""
    device = torch.device(settings.device)
    started = time.perf_counter()
    if device.type == "cuda":
        learn = learn.to_fp16()
    with learn.no_bar(), learn.no_logging():
        learn.unfreeze()
        learn.fit_one_cycle(epochs, lr_max=slice(lr * BODY_RATE, lr * HEAD_RATE))
    if device.type == "cuda":
        learn = learn.to_fp32()
    seconds = time.perf_counter() - started
    model: SorterNet = learn.model
    clean_idx = list(dict.fromkeys([*valid_idx, *memory_idx]))
    features = extract_features(
        model, data.samples, train_idx, clean_idx, config, replace(settings, views=1), device, None, progress
    )
    xv = torch.stack([features.clean[i] for i in valid_idx]).float()
    right = right_of(nn.Sequential(model.drop, model.head), xv, targets(data.samples, valid_idx, config))
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return Tuned(model, features, right, seconds)


def _skipped(base: TrainResult, started: float, progress: ProgressFn | None, why: str) -> TrainResult:
    base.attempts.append(Attempt(STEP, None, time.perf_counter() - started, kept=False, note=why))
    note(progress, f"Fine-tuning the whole network was {why}.")
    return base
