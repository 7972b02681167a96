"""Calibration updated by the user's reviewed photos, and honest (leave-one-out) scores for them."""

from __future__ import annotations

import numpy as np

from sorter.learn.calibration import updated
from sorter.learn.memory import leave_one_out
from sorter.model.bundle import Head
from sorter.model.calibration import GRID, PRIOR_PHOTOS, Calibration
from sorter.model.memory import ExemplarMemory


def _table() -> Calibration:
    # Both classes 99 % right on validation photos from confidence 0.5 up.
    row = tuple(0.99 if t >= 0.5 else 0.9 for t in GRID)
    return Calibration(1.0, (row, row), row)


def _probs(confidence: float, predicted: int, n: int) -> np.ndarray:
    probs = np.full((n, 2), 1.0 - confidence)
    probs[:, predicted] = confidence
    return probs


def test_wrong_reviewed_photos_raise_that_class_threshold_only() -> None:
    table = _table()
    assert table.threshold(0, 0.95) == 0.5
    # Twenty photos the model put in class 0 at 70 %, half of them wrong.
    probs = _probs(0.7, 0, 20)
    labels = np.array([0, 1] * 10)
    moved = updated(table, probs, labels)
    at = GRID.index(0.6)
    expected = (PRIOR_PHOTOS * 0.99 + 10) / (PRIOR_PHOTOS + 20)
    assert abs(moved.precision[0][at] - expected) < 1e-9
    assert moved.threshold(0, 0.95) == 0.71  # above every photo that proved it wrong
    assert moved.threshold(1, 0.95) == 0.5  # class 1 saw no reviewed photo predicted as it
    assert moved.precision[0][GRID.index(0.8)] == 0.99  # no reviewed photo that confident


def test_right_reviewed_photos_lower_a_threshold_validation_set_high() -> None:
    row = tuple(0.9 if t < 0.8 else 0.99 for t in GRID)
    table = Calibration(1.0, (row, row), row)
    assert table.threshold(0, 0.95) == 0.8
    confidence = np.linspace(0.6, 0.9, 200)
    probs = np.stack([confidence, 1.0 - confidence], axis=1)
    moved = updated(table, probs, np.zeros(200, dtype=int))  # all right, at 60-90 %
    assert moved.threshold(0, 0.95) <= 0.6


def test_a_class_with_its_own_record_does_not_borrow_the_overall_one() -> None:
    bad = tuple(0.7 for _ in GRID)
    good = tuple(0.99 for _ in GRID)
    table = Calibration(1.0, (bad, tuple(float("nan") for _ in GRID)), good)
    assert table.threshold(0, 0.95) == GRID[-1]  # never reached: only the most confident
    assert table.threshold(1, 0.95) == GRID[0]  # no photos of its own: the overall table


def test_no_reviewed_photos_change_nothing() -> None:
    table = _table()
    assert updated(table, np.zeros((0, 2)), np.zeros(0, dtype=int)) is table


def test_leave_one_out_ignores_only_the_photo_itself() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=16).astype(np.float32)
    twin = a + 0.05 * rng.normal(size=16).astype(np.float32)
    other = rng.normal(size=16).astype(np.float32)
    weight = np.zeros((2, 16), dtype=np.float32)
    bias = np.array([2.0, 0.0], dtype=np.float32)  # the head says class 0
    features = np.stack([a, other])
    alone = ExemplarMemory(np.stack([a, other]), np.array([1, 1]))
    probs = leave_one_out(features, Head(weight, bias), alone, np.array([0, 1]))
    assert (probs.argmax(1) == 0).all(), "without its own row each photo gets the head's answer"
    with_twin = ExemplarMemory(np.stack([a, other, twin]), np.array([1, 1, 1]))
    probs = leave_one_out(features, Head(weight, bias), with_twin, np.array([0, 1]))
    assert probs[0].argmax() == 1, "its near duplicate still votes"
    assert probs[1].argmax() == 0
    not_stored = leave_one_out(features[:1], Head(weight, bias), alone, np.array([-1]))
    assert not_stored[0].argmax() == 1, "a photo not in the memory finds itself there"
