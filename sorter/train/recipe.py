"""What a training run is asked to do, and what it reports while it does it.

Kept apart from the fastai code so the train dialog, the CLI and retraining can name a recipe
without importing fastai's training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
