"""What a re-sorted folder will be worth: its precision, estimated from the user's own reviews.

A bundle's "95 % sure" was measured on validation photos of its training source. After a review
the user's corrected and confirmed photos are a labelled sample of *their* photos, so the re-sort
keeps its promise from them, not from the validation photos:

1. Each reviewed photo is scored honestly, by a model that did not learn from it: the reviews are
   split into ``folds`` parts, and each part is scored by the head adapted to the others (as
   the re-sort adapts it to all, see :mod:`sorter.learn.adapt`) with the others in the memory.
2. One temperature (a ratio to the bundle's own) is fitted to those honest scores: how much less
   (or more) sure the model should be on this folder. The sample is biased towards doubtful
   photos (the review shows them first), which makes the fit cautious, never bold.
3. The folder's precision at a confidence cut is the mean tempered confidence of the photos that
   pass it; the *bound* is the same with the temperature at the ``level`` end of a bootstrap
   over the reviews (how sure the estimate is).
4. The re-sort sorts the most confident photos for as long as the bound stays at the user's target,
   and holds the rest back, saying about how many more reviews would let it sort more.

``benchmarks/trust.py`` measures the stated estimate against what the folders turn out to be, on
both shared shifted sets (paintings and sketches) and the in-source control. The constants named
here are in :class:`sorter.knobs.Knobs`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sorter.knobs import knobs

RATIOS = tuple(float(r) for r in np.exp(np.linspace(np.log(0.5), np.log(8.0), 81)))
"""Temperature ratios the fit chooses from (1: the bundle's own calibration)."""


def doubted_classes(mistakes: Iterable[tuple[str, str]], classes: Sequence[str]) -> frozenset[str]:
    """The classes with at least ``systematic`` confident mistakes among ``mistakes``: pairs
    of (the category a photo had been sorted into, the label the user gave it instead)."""
    counts = Counter(given for given, label in mistakes if given in classes and label != given)
    return frozenset(c for c, n in counts.items() if n >= knobs().systematic)


def stratified_weights(reviewed_confidence: np.ndarray, folder_confidence: np.ndarray) -> np.ndarray:
    """(n,) a weight per reviewed photo: its confidence band's share of the folder over its share
    of the reviews (mean 1 over the reviews). A band no review fell in is left out of the
    estimate, whose bootstrap then shows how little is known."""
    reviewed = np.asarray(reviewed_confidence, dtype=np.float64)
    folder = np.asarray(folder_confidence, dtype=np.float64)
    if len(reviewed) == 0 or len(folder) == 0:
        return np.ones(len(reviewed))
    strata = knobs().strata
    edges = np.quantile(folder, np.linspace(0, 1, strata + 1)[1:-1])
    folder_share = np.bincount(np.searchsorted(edges, folder), minlength=strata) / len(folder)
    bands = np.searchsorted(edges, reviewed)
    review_share = np.bincount(bands, minlength=strata) / len(reviewed)
    weights = folder_share[bands] / review_share[bands]
    out: np.ndarray = weights * len(weights) / weights.sum()
    return out


def retempered(probs: np.ndarray, ratio: float | np.ndarray) -> np.ndarray:
    """``probs`` (N, C) with their temperature multiplied by ``ratio`` (a scalar, or (R,) ratios
    giving (R, N, C)): the same ranking, more (ratio > 1: less) spread."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    r = np.asarray(ratio, dtype=np.float64)
    z = logp / r if r.ndim == 0 else logp[None] / r[:, None, None]
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def _nll_per_ratio(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(n, len(RATIOS)): each reviewed photo's negative log-likelihood of its label at each ratio."""
    tempered = retempered(probs, np.array(RATIOS))  # (R, n, C)
    picked = tempered[:, np.arange(len(labels)), labels]  # (R, n)
    out: np.ndarray = -np.log(np.clip(picked, 1e-12, 1.0)).T
    return out


@dataclass(frozen=True)
class PrecisionEstimate:
    """What the re-sort states about the folders it makes, and the cut that keeps to the target."""

    target: float
    reviews: int
    """Honest reviews the estimate stands on."""
    ratio: float
    """The fitted temperature ratio (above 1: the model is over-sure on these photos)."""
    ratio_bound: float
    """The ratio at the cautious end of the bootstrap, from which :attr:`bound` is read."""
    cut: float
    """The confidence (at :attr:`ratio_bound`) a photo needs to be sorted; above 1: none is."""
    expected: float
    """Estimated precision of the photos sorted (NaN when none is)."""
    bound: float
    """The precision is at least this, at :attr:`level` (NaN when none is sorted)."""
    sorted: int
    candidates: int
    """Photos the estimate was made for (those not reviewed, and not put in ``_other``)."""
    more_reviews: int | None = None
    """About how many more reviews would let the re-sort sort clearly more (None: not known)."""
    level: float = 0.95
    """How sure the bound is (one-sided)."""

    def sorts(self, probs: np.ndarray) -> np.ndarray:
        """(N,) whether each photo (probabilities at the bundle's temperature) passes the cut."""
        if self.cut > 1.0 or len(probs) == 0:
            return np.zeros(len(probs), dtype=bool)
        out: np.ndarray = retempered(probs, self.ratio_bound).max(axis=-1) >= self.cut
        return out

    def sentence(self) -> str:
        """What the summary and the review say."""
        if self.sorted == 0:
            said = (
                f"From your {self.reviews} reviews, no photo here can be sorted at {self.target:.0%} yet, "
                "so they stay in _unsure"
            )
        else:
            said = (
                f"From your {self.reviews} reviews: the {self.sorted} photos sorted should be about "
                f"{self.expected:.0%} right (at least {self.bound:.0%}, {self.level:.0%} sure)"
            )
        held = self.candidates - self.sorted
        if held > 0 and self.more_reviews is not None:
            said += f"; review about {self.more_reviews} more and more of the other {held} can be sorted"
        return said + "."

    def to_record(self) -> dict[str, float | int | None]:
        """Every field, to keep beside the folders it was stated for (see :meth:`from_record`)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PrecisionEstimate:
        """The estimate :meth:`to_record` kept; KeyError, TypeError or ValueError if it is not one."""

        def number(name: str) -> float:
            value = record[name]
            return float("nan") if value is None else float(value)

        more = record["more_reviews"]
        return cls(
            target=number("target"),
            reviews=int(record["reviews"]),
            ratio=number("ratio"),
            ratio_bound=number("ratio_bound"),
            cut=number("cut"),
            expected=number("expected"),
            bound=number("bound"),
            sorted=int(record["sorted"]),
            candidates=int(record["candidates"]),
            more_reviews=None if more is None else int(more),
            level=float(record.get("level", 0.95)),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "reviews": self.reviews,
            "expected_precision": None if math.isnan(self.expected) else round(self.expected, 4),
            "lower_bound": None if math.isnan(self.bound) else round(self.bound, 4),
            "level": self.level,
            "sorted": self.sorted,
            "held_back": self.candidates - self.sorted,
            "more_reviews": self.more_reviews,
            "temperature_ratio": round(self.ratio, 4),
        }


def estimate(
    target: float,
    honest: np.ndarray,
    labels: np.ndarray,
    candidates: np.ndarray,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> PrecisionEstimate | None:
    """The re-sort's cut for ``target`` precision and what it states.

    Args:
        honest: (n, C) each reviewed photo's probabilities from a model that did not learn from it.
        labels: (n,) the user's labels as class indices (-1: a label the model lacks, left out).
        candidates: (N, C) the probabilities of the photos the re-sort decides (not reviewed).

    Returns None when fewer than ``min_reviews`` reviews can be used.
    """
    keep = labels >= 0
    honest, labels = np.asarray(honest)[keep], np.asarray(labels)[keep]
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    n = len(labels)
    tuned = knobs()
    if n < tuned.min_reviews:
        return None
    nll = _nll_per_ratio(honest, labels) * w[:, None]  # (n, R)
    ratio = RATIOS[int(np.argmin(nll.sum(axis=0)))]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=tuned.bootstrap).astype(np.float64)  # (B, n)
    ratios = np.array(RATIOS)[np.argmin(draws @ nll, axis=1)]
    cautious = float(np.quantile(ratios, tuned.level))
    cut, expected, bound, count = _keep_to(target, candidates, ratio, max(cautious, ratio))
    more = _more_reviews(target, candidates, ratio, max(cautious, ratio), n, count)
    return PrecisionEstimate(
        target, n, ratio, max(cautious, ratio), cut, expected, bound, count, len(candidates), more, tuned.level
    )


def _keep_to(target: float, candidates: np.ndarray, ratio: float, cautious: float) -> tuple[float, float, float, int]:
    """The lowest cut (at the ``cautious`` ratio) whose sorted photos keep the bound at
    ``target``: the most confident first, for as long as their mean confidence stays there."""
    if len(candidates) == 0:
        return 2.0, float("nan"), float("nan"), 0
    low = retempered(candidates, cautious).max(axis=-1)
    point = retempered(candidates, ratio).max(axis=-1)
    order = np.argsort(-low, kind="stable")
    running = np.cumsum(low[order]) / np.arange(1, len(order) + 1)
    ok = np.flatnonzero(running >= target)
    if len(ok) == 0:
        return 2.0, float("nan"), float("nan"), 0
    count = int(ok[-1]) + 1
    cut = float(low[order][count - 1])
    chosen = low >= cut
    return cut, float(point[chosen].mean()), float(low[chosen].mean()), int(chosen.sum())


def _more_reviews(
    target: float, candidates: np.ndarray, ratio: float, cautious: float, n: int, count: int
) -> int | None:
    """About how many more reviews would sort ``more_gain`` more of the photos: the bootstrap's
    spread narrows as one over the square root of the reviews, the fitted ratio held."""
    if len(candidates) == 0 or count >= len(candidates):
        return None
    spread = math.log(cautious) - math.log(ratio)
    tuned = knobs()
    for extra in tuned.more_steps:
        narrower = math.exp(math.log(ratio) + spread * math.sqrt(n / (n + extra)))
        _, _, _, more = _keep_to(target, candidates, ratio, narrower)
        if more - count >= tuned.more_gain * len(candidates):
            return extra
    return None
