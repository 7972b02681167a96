"""What a re-sorted folder will be worth: its precision, estimated from the user's own reviews.

A bundle's "95 % sure" was measured on validation photos of its training source. After a review
the user's corrected and confirmed photos are a labelled sample of *their* photos, so the re-sort
keeps its promise from them, not from the validation photos:

1. Each reviewed photo is scored honestly, by a model that did not learn from it: the reviews are
   split into ``folds`` parts, and each part is scored by the head adapted to the others (as
   the re-sort adapts it to all, see :mod:`sorter.learn.adapt`) with the others in the memory.
2. A temperature (a ratio to the bundle's own) is fitted to those honest scores: how much less
   (or more) sure the model should be on this folder. The sample is biased towards doubtful
   photos (the review shows them first), which makes the fit cautious, never bold. Each
   predicted class has its own, fitted to its reviews and ``class_prior`` reviews' worth of the
   folder's, so mistakes the reviews found in one class do not temper the others.
3. The folder's precision at a confidence cut is the mean tempered confidence of the photos that
   pass it; the *bound* is its ``level`` end over a bootstrap of the reviews (how sure the
   estimate is), every class's temperature refitted to each resample together, so that the
   bound is the folder's at ``level`` and not each class's. The cut is on each photo's
   confidence at its class's own cautious temperature (``level`` over the same resamples).
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


def _gaps(probs: np.ndarray) -> np.ndarray:
    """(N, C) each log-probability less the photo's largest: 0 for the top class, and a
    temperature ratio only divides it (see :func:`tempered_top`)."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))
    out: np.ndarray = logp - logp.max(axis=-1, keepdims=True)
    return out


def retempered(probs: np.ndarray, ratio: float | np.ndarray) -> np.ndarray:
    """``probs`` (N, C) with their temperature multiplied by ``ratio`` (a scalar, or (R,) ratios
    giving (R, N, C)): the same ranking, more (ratio > 1: less) spread."""
    gaps = _gaps(probs)
    r = np.asarray(ratio, dtype=np.float64)
    e = np.exp(gaps / r if r.ndim == 0 else gaps[None] / r[:, None, None])
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def _top_of(gaps: np.ndarray, ratio: float | np.ndarray) -> np.ndarray:
    """(N,) the top confidence from :func:`_gaps` at ``ratio`` (one, or (N,) one per photo)."""
    r = np.asarray(ratio, dtype=np.float64)
    top: np.ndarray = 1.0 / np.exp(gaps / (r if r.ndim == 0 else r[:, None])).sum(axis=-1)
    return top


def tempered_top(probs: np.ndarray, ratio: float | np.ndarray) -> np.ndarray:
    """(N,) each photo's top confidence with its temperature multiplied by ``ratio``: one for
    the folder, or (N,) one per photo (its predicted class's)."""
    return _top_of(_gaps(probs), ratio)


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
    """The folder's ratio at the cautious end of the bootstrap (``level``)."""
    cut: float
    """The confidence (:meth:`confidence`) a photo needs to be sorted; above 1: none is."""
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
    class_bounds: tuple[float, ...] | None = None
    """The cautious ratio of each predicted class, when the classes have their own (``class_prior``;
    None: :attr:`ratio_bound` for all)."""

    def bounds_for(self, probs: np.ndarray) -> float | np.ndarray:
        """The cautious ratio each photo is read at: the folder's, or its predicted class's."""
        if self.class_bounds is None:
            return self.ratio_bound
        out: np.ndarray = np.asarray(self.class_bounds)[np.asarray(probs).argmax(axis=-1)]
        return out

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """(N,) each photo's confidence on the user's photos, at the cautious end."""
        return tempered_top(probs, self.bounds_for(probs))

    def sorts(self, probs: np.ndarray) -> np.ndarray:
        """(N,) whether each photo (probabilities at the bundle's temperature) passes the cut."""
        if self.cut > 1.0 or len(probs) == 0:
            return np.zeros(len(probs), dtype=bool)
        out: np.ndarray = self.confidence(probs) >= self.cut
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
            class_bounds=None if record.get("class_bounds") is None else tuple(map(float, record["class_bounds"])),
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
    fit = int(np.argmin(nll.sum(axis=0)))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=tuned.bootstrap).astype(np.float64)  # (B, n)
    boot = np.argmin(draws @ nll, axis=1).astype(np.uint8)  # (B,) each resample's ratio, an index into RATIOS
    grid = np.array(RATIOS)
    cautious = max(float(np.quantile(grid[boot], tuned.level)), RATIOS[fit])
    on = np.asarray(candidates).argmax(axis=1) if len(candidates) else np.zeros(0, dtype=np.int64)
    class_bounds = None
    if tuned.class_prior > 0:
        fits, boots = _class_ratios(honest.argmax(axis=1), nll, draws, honest.shape[1], tuned.class_prior)
        each = np.maximum(np.quantile(grid[boots], tuned.level, axis=0), grid[fits])  # (C,)
        class_bounds = tuple(float(b) for b in each)
        low = tempered_top(candidates, each[on])
    else:  # one group, the folder
        fits, boots, on = np.array([fit]), boot[:, None], np.zeros_like(on)
        low = tempered_top(candidates, cautious)
    tops = _tops(candidates)
    cut, expected, bound, count = _keep_to(target, low, tops, fits, boots, on)
    more = _more_reviews(target, low, tops, fits, boots, on, n, count)
    return PrecisionEstimate(
        target, n, RATIOS[fit], cautious, cut, expected, bound, count, len(candidates), more, tuned.level, class_bounds
    )


def _class_ratios(
    predicted: np.ndarray, nll: np.ndarray, draws: np.ndarray, classes: int, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    """(C,) fitted and (B, C) resampled ratios (indices into RATIOS), one per predicted class:
    each class's reviews with ``prior`` reviews' worth of the whole folder's, so a class with few
    reviews keeps near the folder's ratio and one whose reviews disagree with it moves away (one
    confident mistake in one class no longer tempers every class)."""
    n = len(predicted)
    folder = nll.sum(axis=0) / n * prior  # (R,)
    boot_folder = (draws @ nll) / n * prior  # (B, R)
    fitted = np.empty(classes, dtype=np.int64)
    boots = np.empty((len(draws), classes), dtype=np.uint8)  # len(RATIOS) < 256
    for c in range(classes):
        mine = predicted == c
        fitted[c] = int(np.argmin(nll[mine].sum(axis=0) + folder))
        boots[:, c] = np.argmin(draws[:, mine] @ nll[mine] + boot_folder, axis=1)
    return fitted, boots


def _tops(candidates: np.ndarray) -> np.ndarray:
    """(R, N) each candidate's top confidence at each ratio of RATIOS (:func:`tempered_top`, the
    logarithms taken once)."""
    gaps = _gaps(candidates)
    out = np.empty((len(RATIOS), len(candidates)))
    for i, r in enumerate(RATIOS):
        out[i] = _top_of(gaps, r)
    return out


def _keep_to(
    target: float, low: np.ndarray, tops: np.ndarray, fits: np.ndarray, boots: np.ndarray, on: np.ndarray
) -> tuple[float, float, float, int]:
    """The lowest cut on ``low`` (each candidate's confidence at its cautious ratio) whose sorted
    photos keep the bound at ``target``: the most confident first, for as long as their mean
    confidence, taken jointly over the resamples' ratios, stays there at ``level``. Joint, not
    class by class: the classes' own bounds at ``level`` each would make the folder's far surer
    than ``level``, and hold back what it need not. Never above the mean confidence at the
    fitted ratios. ``fits`` (G,) and ``boots`` (B, G) are the ratios (indices into ``tops``, (R,
    N)) of each group the candidates are in (``on``, (N,)): their predicted class, or the folder."""
    if len(low) == 0:
        return 2.0, float("nan"), float("nan"), 0
    order = np.argsort(-low, kind="stable")
    ranks = np.arange(1, len(order) + 1)
    columns = np.arange(len(low))
    sure = tops[fits[on], columns]  # (N,)
    mean_point = np.cumsum(sure[order]) / ranks
    drawn = np.take_along_axis(tops[:, order], boots[:, on[order]], axis=0)  # (B, N)
    # the ``level`` end of the resamples' sums (sorted in place: no copy of B x N), then over the
    # ranks, which are the same for every resample
    end = np.quantile(np.cumsum(drawn, axis=1), 1.0 - knobs().level, axis=0, overwrite_input=True)
    curve = np.minimum(end / ranks, mean_point)
    ok = np.flatnonzero(curve >= target)
    if len(ok) == 0:
        return 2.0, float("nan"), float("nan"), 0
    count = int(ok[-1]) + 1
    cut = float(low[order][count - 1])
    chosen = low >= cut
    return cut, float(sure[chosen].mean()), float(curve[int(chosen.sum()) - 1]), int(chosen.sum())


def _more_reviews(
    target: float,
    low: np.ndarray,
    tops: np.ndarray,
    fits: np.ndarray,
    boots: np.ndarray,
    on: np.ndarray,
    n: int,
    count: int,
) -> int | None:
    """About how many more reviews would sort ``more_gain`` more of the photos: the resamples'
    spread around the fitted ratios narrows as one over the square root of the reviews (RATIOS
    are even steps in log, so the indices narrow as the log ratios would)."""
    if len(low) == 0 or count >= len(low):
        return None
    tuned = knobs()
    for extra in tuned.more_steps:
        narrower = np.rint(fits + (boots - fits) * math.sqrt(n / (n + extra))).astype(np.uint8)
        _, _, _, more = _keep_to(target, low, tops, fits, narrower, on)
        if more - count >= tuned.more_gain * len(low):
            return extra
    return None
