"""The precision estimate from the user's reviews (:mod:`sorter.learn.estimate`), on folders whose
true calibration is known because their labels are drawn from it: the fitted temperature finds
it, the stated precision matches what the sorted photos turn out to be, the bound is cautious and
narrows with more reviews, and too few reviews state nothing. (The same estimate on real photos,
through the re-sort, is in ``tests/jobs/test_estimate_resort.py`` and ``benchmarks/trust.py``.)"""

from __future__ import annotations

import numpy as np
import pytest

from sorter.knobs import DEFAULT, overridden
from sorter.learn.estimate import estimate, retempered


def _folder(n: int, true_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` photos' probabilities (as the bundle states them) and labels drawn from the same
    probabilities at ``true_ratio`` times the temperature: a model that much over-sure."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=6.0, size=(n, 7))
    stated = retempered(np.exp(logits - logits.max(axis=1, keepdims=True)), 1.0)
    truth = retempered(stated, true_ratio)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    return stated, labels


@pytest.mark.parametrize("true_ratio", [1.0, 2.5])
def test_the_stated_precision_is_what_the_sorted_photos_turn_out_to_be(true_ratio: float) -> None:
    reviews, review_labels = _folder(200, true_ratio, seed=1)
    rest, rest_labels = _folder(3000, true_ratio, seed=2)
    found = estimate(0.9, reviews, review_labels, rest)
    assert found is not None
    assert abs(found.ratio - true_ratio) / true_ratio < 0.3
    chosen = found.sorts(rest)
    assert chosen.sum() == found.sorted > 0
    measured = float((rest[chosen].argmax(axis=1) == rest_labels[chosen]).mean())
    assert abs(found.expected - measured) < 0.05
    assert found.bound <= found.expected + 1e-9
    assert measured >= 0.9 - 0.03, "the cut keeps to the target"


def test_an_over_sure_model_sorts_fewer_photos_than_one_that_is_calibrated() -> None:
    reviews, labels = _folder(100, 1.0, seed=3)
    over, over_labels = _folder(100, 3.0, seed=3)
    rest, _ = _folder(1000, 1.0, seed=4)
    calibrated = estimate(0.95, reviews, labels, rest)
    wary = estimate(0.95, over, over_labels, rest)
    assert calibrated is not None and wary is not None
    assert wary.ratio > calibrated.ratio * 1.8
    assert wary.sorted < calibrated.sorted


def test_more_reviews_narrow_the_bound_and_too_few_state_nothing() -> None:
    reviews, labels = _folder(400, 2.0, seed=5)
    rest, _ = _folder(1000, 2.0, seed=6)
    assert estimate(0.9, reviews[: DEFAULT.min_reviews - 1], labels[: DEFAULT.min_reviews - 1], rest) is None
    unknown = labels.copy()
    unknown[: DEFAULT.min_reviews] = -1  # labels the model lacks do not count
    assert estimate(0.9, reviews[: DEFAULT.min_reviews + 1], unknown[: DEFAULT.min_reviews + 1], rest) is None
    few = estimate(0.9, reviews[:20], labels[:20], rest)
    many = estimate(0.9, reviews, labels, rest)
    assert few is not None and many is not None
    assert few.ratio_bound / few.ratio > many.ratio_bound / many.ratio
    assert few.sorted <= many.sorted + 30
    assert few.more_reviews is not None, "a held-back folder says how many more reviews would help"
    assert "review about" in few.sentence() and f"{few.sorted} photos sorted" in few.sentence()


def test_a_target_out_of_reach_sorts_nothing_and_says_so() -> None:
    reviews, labels = _folder(30, 6.0, seed=7)
    rest, _ = _folder(200, 6.0, seed=8)
    found = estimate(0.999, reviews, labels, rest)
    assert found is not None and found.sorted == 0 and not found.sorts(rest).any()
    assert "no photo here can be sorted" in found.sentence()
    assert found.to_json()["expected_precision"] is None


def test_the_bound_is_as_sure_as_the_knob_says_and_a_bolder_one_sorts_no_fewer() -> None:
    reviews, labels = _folder(40, 2.0, seed=9)
    rest, _ = _folder(1000, 2.0, seed=10)
    found: dict[float, object] = {}
    for level in (0.5, 0.8, 0.99):
        with overridden(level=level):
            found[level] = estimate(0.9, reviews, labels, rest)
    bold, default, wary = (found[level] for level in (0.5, 0.8, 0.99))
    assert bold is not None and default is not None and wary is not None
    assert bold.ratio_bound <= default.ratio_bound <= wary.ratio_bound
    assert bold.sorted >= default.sorted >= wary.sorted
    assert wary.sorted < bold.sorted, "forty reviews leave the fitted temperature uncertain"
    assert "80% sure" in default.sentence() and "99% sure" in wary.sentence()


def _folder_with_one_over_sure_class(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_folder`, but only the photos predicted as class 0 are over-sure (4 times the
    temperature); the other classes are as sure as they should be (sofas in a room-scene folder
    called `bed`, the other classes right)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=6.0, size=(n, 7))
    stated = retempered(np.exp(logits - logits.max(axis=1, keepdims=True)), 1.0)
    over = stated.argmax(axis=1) == 0
    truth = np.where(over[:, None], retempered(stated, 4.0), stated)
    labels = np.array([rng.choice(7, p=p / p.sum()) for p in truth])
    return stated, labels


def test_a_class_with_its_own_temperature_sorts_more_of_the_others_and_stays_honest() -> None:
    """One temperature for the folder is a compromise: too cool for the over-sure class (its
    sorted photos are wrong) and too warm for the rest (held back). Each predicted class's own,
    drawn towards the folder's by ``class_prior``, sorts more and states what it then measures."""
    sorted_, off, over_sorted = {}, {}, {}
    for prior in (0.0, 5.0):
        sorted_[prior], off[prior], over_sorted[prior] = 0, 0.0, 0
        for seed in range(3):
            reviews, labels = _folder_with_one_over_sure_class(60, 10 + seed)
            rest, truth = _folder_with_one_over_sure_class(3000, 100 + seed)
            with overridden(class_prior=prior):
                found = estimate(0.95, reviews, labels, rest)
            assert found is not None
            assert (found.class_bounds is None) == (prior == 0)
            chosen = found.sorts(rest)
            assert chosen.sum() == found.sorted
            measured = float((rest[chosen].argmax(axis=1) == truth[chosen]).mean())
            sorted_[prior] += found.sorted
            off[prior] += abs(found.expected - measured)
            over_sorted[prior] += int((chosen & (rest.argmax(axis=1) == 0)).sum())
            if prior:
                restored = type(found).from_record(found.to_record())
                assert (restored.sorts(rest) == chosen).all(), "the review reads the stated cut back"
    assert sorted_[5.0] > sorted_[0.0]
    assert off[5.0] < off[0.0]
    assert over_sorted[5.0] < over_sorted[0.0] / 2


def test_the_bound_is_the_folders_at_the_level_not_each_classs() -> None:
    """With a temperature per class, the bound is the folder's precision at ``level`` over the
    resamples, all classes drawn together: each class's own bound at ``level`` would make the
    folder's surer than stated and hold back photos for nothing. It still holds at least about
    as often as ``level`` says, and never states more than the fitted temperatures do."""
    held, looser, runs = 0, 0, 0
    for seed in range(16):
        reviews, labels = _folder_with_one_over_sure_class(60, 1000 + seed)
        rest, truth = _folder_with_one_over_sure_class(2000, 5000 + seed)
        found = estimate(0.95, reviews, labels, rest)
        assert found is not None and found.class_bounds is not None
        chosen = found.sorts(rest)
        if not chosen.any():
            continue
        each_class = float(found.confidence(rest[chosen]).mean())  # every class at its own bound
        assert found.bound <= found.expected + 1e-9
        assert found.bound >= 0.95
        runs += 1
        looser += each_class < found.bound - 1e-3
        held += float((rest[chosen].argmax(axis=1) == truth[chosen]).mean()) >= found.bound
    assert runs >= 12
    assert looser >= runs // 2, "the classes' own bounds, taken together, were the folder's bound"
    assert held >= 0.7 * runs, f"the bound held in {held} of {runs} folders"
