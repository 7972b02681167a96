"""What training tells its caller while it runs: each epoch's numbers, and the time budget's notes."""

from __future__ import annotations

import logging

import numpy as np
from fastai.callback.core import Callback
from torch import nn

from sorter.train.recipe import CHOICE, ProgressFn, TrainProgress

log = logging.getLogger(__name__)


class Report(Callback):
    """Hands each epoch's numbers to the caller (the CLI bar, the GUI's train dialog)."""

    order = 90

    def __init__(self, progress: ProgressFn | None, phase: str) -> None:
        self.progress = progress
        self.phase = phase

    def before_fit(self) -> None:
        """Epoch 0 of n: the caller's bar says training has begun (reading photos is over)."""
        if self.progress is not None:
            self.progress(TrainProgress(self.phase, 0, self.n_epoch))

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


class FrozenBatchNorm(Callback):
    """Keeps every batch-norm layer in evaluation mode while the body trains.

    fastai puts the whole model in training mode each epoch, so batch norm replaces the
    ImageNet statistics with those of a user's small augmented batches; sorting then sees clean
    photos through statistics they do not have. Freezing them is the usual remedy for small data
    (Keras' EfficientNet transfer guide does the same)."""

    order = 1

    def before_train(self) -> None:
        freeze_batch_norm(self.model)


def freeze_batch_norm(model: nn.Module) -> None:
    """Every batch-norm layer of ``model`` to evaluation mode: its statistics stay as they are."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def note(progress: ProgressFn | None, text: str) -> None:
    """A sentence on what the run tried, skipped or kept (logged, and shown by the caller)."""
    log.info("%s", text)
    if progress is not None:
        progress(TrainProgress(CHOICE, 0, 0, note=text))
