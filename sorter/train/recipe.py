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
    """One progress report: feature extraction steps, an epoch's losses and metric, or (phase
    :data:`CHOICE`) a sentence on what the time budget tried and kept."""

    phase: str
    step: int
    total: int
    train_loss: float | None = None
    valid_loss: float | None = None
    metric: float | None = None
    note: str | None = None


CHOICE = "choice"
"""The phase of a report that only carries a note (a step tried, skipped or kept)."""


@dataclass(frozen=True)
class Attempt:
    """One step of a training run: the head alone, then (time allowing) the tail as well."""

    recipe: str
    valid_accuracy: float | None
    seconds: float
    kept: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "valid_accuracy": None if self.valid_accuracy is None else round(self.valid_accuracy, 4),
            "seconds": round(self.seconds, 1),
            "kept": self.kept,
            **({"note": self.note} if self.note else {}),
        }


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
    """Epochs of the whole network over the images, asked for whatever the budget
    (:mod:`sorter.train.finetune`; slow on a CPU). 0: none asked."""
    fine_tune_budget: bool = False
    """After the bodies are chosen, fine-tune the whole network for as many epochs as the budget
    leaves (up to :data:`sorter.train.finetune.EPOCHS`); kept unless validation says worse."""
    tail_epochs: int = 0
    """Epochs training the body's last blocks on their kept input after the head
    (:mod:`sorter.train.tail`); kept only if it wins on the validation photos. 0: the head alone."""
    keep_tail: str = "if better"
    """``if better``: the tail is kept only if it beats the head alone on the validation photos;
    ``always``: kept regardless (``benchmarks/recipes.py`` measures both on held-out photos)."""
    ladder: bool = False
    """After this body, try the stronger one within the budget (:mod:`sorter.train.ladder`)."""
    people_folder: str | None = None
    """A class that photos with a prominent face go to (see :mod:`sorter.model.people`)."""
    budget_s: float | None = None
    """Seconds the whole run may take: the tail step gets as many epochs as the time left allows
    (None: all of them)."""
    batch_size: int = 32
    seed: int = 42
    lr: float | None = None
    device: str = "cpu"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    extra: dict[str, Any] = field(default_factory=dict)
