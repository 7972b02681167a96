"""Fine-tuning the body's last blocks on a CPU: their input is computed once and kept in memory.

Unfreezing a whole EfficientNet on a 2-core CPU costs minutes an epoch (``benchmarks/train_speed.py``)
and, with a few hundred photos, lost accuracy on photos from another source. Almost all of the
network's arithmetic is in its early, high-resolution blocks, so Sorter splits the body after
block :data:`TAIL_FROM`: the frozen *stem* runs once per augmented view (phase 1, as for the head),
and only the *tail* (the last blocks, the 1x1 head convolution and the pooling) trains, on those
kept activations, with a lower learning rate than the head it feeds and batch-norm statistics
frozen (a few hundred photos would only add noise to them). The time a tail epoch takes is measured
on one batch before training starts, so a time budget decides how many epochs run, or none.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.metrics import accuracy
from torch import nn
from torch.utils.data import TensorDataset

from sorter.learn.datasets import LabelledData
from sorter.learn.significance import wins
from sorter.model.architecture import SorterNet
from sorter.model.config import BundleConfig
from sorter.train.callbacks import Report, note
from sorter.train.features import FeatureSet, extract_activations
from sorter.train.recipe import Attempt, ProgressFn, TrainSettings

TAIL_FROM = 5
"""The first block that trains: EfficientNet-Lite's last two stages (192 and 320 channels at 7x7)
and its head convolution, 2.7 M of its 3.4 M weights but a small share of its arithmetic."""
TAIL_LR = 1e-3
"""The largest learning rate of the tail's blocks (the head's is the same; the blocks' first group
a third of it): measured on furniture7, higher rates lost what the head had learnt."""
MAX_ACTIVATION_BYTES = 3 * 2**30
"""Kept activations (float16) above this are not worth the memory: the tail step is skipped."""


def supports_tail(model: SorterNet) -> bool:
    """timm's EfficientNet family (the Lite bodies Sorter ships weights for) has the parts."""
    body = model.body
    return all(hasattr(body, name) for name in ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool")) and (
        len(body.blocks) > TAIL_FROM  # type: ignore[arg-type]
    )


class Stem(nn.Module):
    """The frozen first blocks: photo → the activations the tail trains on."""

    def __init__(self, model: SorterNet) -> None:
        super().__init__()
        body: Any = model.body
        self.parts = nn.Sequential(body.conv_stem, body.bn1, *list(body.blocks)[:TAIL_FROM])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.parts(x)
        return out


class Tail(nn.Module):
    """The trained end of the body plus dropout and the head; shares its modules with the
    :class:`SorterNet`, so training it trains the model that is exported."""

    def __init__(self, model: SorterNet) -> None:
        super().__init__()
        body: Any = model.body
        self.blocks = nn.Sequential(*list(body.blocks)[TAIL_FROM:])
        self.conv_head, self.bn2, self.pool = body.conv_head, body.bn2, body.global_pool
        self.drop, self.head = model.drop, model.head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled body features, exactly as ``SorterNet.features`` gives them."""
        out: torch.Tensor = self.pool(self.bn2(self.conv_head(self.blocks(x.float()))))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.drop(self.features(x)))
        return out

    def train(self, mode: bool = True) -> Tail:
        super().train(mode)
        for module in self.modules():  # frozen statistics: see the module docstring
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def parameter_groups(self) -> list[list[nn.Parameter]]:
        """fastai's splitter: the body's end first (lower learning rate), then the head."""
        body = [*self.blocks.parameters(), *self.conv_head.parameters(), *self.bn2.parameters()]
        return [body, list(self.head.parameters())]


def pooled(tail: Tail, rows: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """Pooled features of kept activations, in evaluation mode."""
    tail.eval()
    with torch.inference_mode():
        out = [tail.features(rows[i : i + batch]).float().cpu() for i in range(0, len(rows), batch)]
    return torch.cat(out) if out else torch.zeros(0, tail.head.in_features)


def pooled_set(
    tail: Tail, kept_input: tuple[torch.Tensor, dict[int, torch.Tensor]], clean_idx: Sequence[int], computed: int
) -> FeatureSet:
    """The pooled features the head trains on and the bundle keeps, from the kept input: the
    body as it is now (before the tail trains, or after it was kept)."""
    train, clean = kept_input
    rows: list[torch.Tensor] = list(pooled(tail, torch.stack([clean[i] for i in clean_idx]))) if clean_idx else []
    return FeatureSet(train=pooled(tail, train), clean=dict(zip(clean_idx, rows, strict=True)), computed=computed)


def seconds_per_epoch(tail: Tail, sample: torch.Tensor, target: torch.Tensor, rows: int, batch: int) -> float:
    """One forward and backward pass of one batch, timed after a warm-up one, scaled to an epoch."""
    loss_fn = nn.CrossEntropyLoss()
    device = next(tail.parameters()).device  # the kept input stays on the CPU; the tail may not
    sample, target = sample.to(device), target.to(device)
    tail.train()
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        loss = loss_fn(tail(sample), target)
        loss.backward()
        timings.append(time.perf_counter() - started)
    tail.zero_grad(set_to_none=True)
    return timings[-1] * max(1.0, rows / max(1, len(sample))) * 1.15  # the optimiser step and the loader


def right_of(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Which rows ``net`` gets right (features or kept activations), in evaluation mode."""
    net.eval()
    with torch.inference_mode():
        logits = torch.cat([net(x[i : i + 256].to(next(net.parameters()).device)).cpu() for i in range(0, len(x), 256)])
    return logits.argmax(dim=1) == y


def prepare_tail(
    model: SorterNet,
    data: LabelledData,
    train_idx: list[int],
    valid_idx: list[int],
    clean_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
    progress: ProgressFn | None,
    attempts: list[Attempt],
) -> tuple[Tail | None, tuple[torch.Tensor, dict[int, torch.Tensor]] | None]:
    """The tail and its kept input, when the recipe asks for the tail step and it can run."""
    if settings.tail_epochs <= 0 or config.multi_label:
        return None, None
    why = ""
    if not supports_tail(model):
        why = f"the {model.architecture} body cannot be split"
    elif not valid_idx:
        why = "there are no validation photos to judge it on"
    else:
        stem = Stem(model).eval()
        with torch.inference_mode():
            probe = stem(torch.zeros(1, 3, *config.input_size, device=device))
        rows = len(train_idx) * max(1, settings.views) + len(clean_idx)
        need = rows * probe[0].numel() * 2
        if need > MAX_ACTIVATION_BYTES:
            why = f"its input would take {need / 2**30:.1f} GB of memory"
    if why:
        attempts.append(Attempt("tail", None, 0.0, kept=False, note=f"not tried: {why}"))
        note(progress, f"Training the last blocks was not tried: {why}.")
        return None, None
    kept = extract_activations(stem, data.samples, train_idx, clean_idx, config, settings, device, progress)
    return Tail(model), kept


def fit_tail(
    tail: Tail,
    kept_input: tuple[torch.Tensor, dict[int, torch.Tensor]],
    y_views: torch.Tensor,
    valid_idx: list[int],
    yv: torch.Tensor,
    head_right: torch.Tensor,
    loss: Any,
    lr: float,
    settings: TrainSettings,
    started: float,
    progress: ProgressFn | None,
    scratch: str,
    attempts: list[Attempt],
) -> torch.Tensor | None:
    """Train the tail for as many epochs as the budget leaves; keep it only if it beats the head
    alone on the validation photos by more than chance (:func:`wins`); the body and head are
    restored otherwise. ``head_right``: which validation photos the head alone gets right.
    Returns which validation photos the kept tail gets right, or None when it is not kept."""
    xt, clean = kept_input
    xv = torch.stack([clean[i] for i in valid_idx])
    head_accuracy = float(head_right.float().mean())
    # fastai drops the last, incomplete batch of each training epoch: a batch must fit many times
    batch = int(min(64, max(8, len(xt) // 8)))
    epoch_s = seconds_per_epoch(tail, xt[:batch], y_views[:batch], len(xt), batch)
    left = float("inf") if settings.budget_s is None else settings.budget_s - (time.perf_counter() - started)
    epochs = settings.tail_epochs if left == float("inf") else min(settings.tail_epochs, int(left // epoch_s))
    if epochs < 1:
        why = f"not tried: an epoch takes about {epoch_s:.0f} s and {max(0.0, left):.0f} s of the budget were left"
        attempts.append(Attempt("tail", None, time.perf_counter() - started, kept=False, note=why))
        note(progress, f"Training the last blocks was {why}.")
        return None
    note(progress, f"Training the last blocks of the network: {epochs} epochs of about {epoch_s:.0f} s.")
    saved = {k: v.detach().clone() for k, v in tail.state_dict().items()}
    dls = DataLoaders.from_dsets(
        TensorDataset(xt, y_views), TensorDataset(xv, yv), bs=batch, device=torch.device(settings.device), num_workers=0
    )
    learn = Learner(
        dls,
        tail,
        loss_func=loss,
        metrics=accuracy,
        splitter=lambda m: m.parameter_groups(),
        cbs=[Report(progress, "tail")],
        path=scratch,
    )
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr_max=slice(min(lr, TAIL_LR) / 3, min(lr, TAIL_LR)))
    tail_right = right_of(tail, xv, yv)
    tail_accuracy = float(tail_right.float().mean())
    better, p_value = wins(head_right, tail_right)
    kept = better or settings.keep_tail == "always"
    if not kept:
        tail.load_state_dict(saved)
    head_step = next(i for i, a in enumerate(attempts) if a.recipe == "head")
    attempts[head_step] = replace(attempts[head_step], kept=not kept)
    chance = f"a gain this size would come by chance {p_value:.0%} of the time"
    attempts.append(Attempt("tail", tail_accuracy, time.perf_counter() - started, kept=kept, note=f"p = {p_value:.3f}"))
    verdict = "kept" if kept else f"not kept: {chance}"
    note(
        progress,
        f"Last blocks trained: validation accuracy {tail_accuracy:.1%} against {head_accuracy:.1%} "
        f"for the head alone; {verdict}.",
    )
    return tail_right if kept else None
