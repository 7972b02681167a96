"""A large training set keeps a class-stratified sample of its rows in the bundle's replay."""

from __future__ import annotations

import numpy as np

from sorter.learn.replay import MAX_REPLAY, cap_rows


def test_rows_that_fit_are_all_kept() -> None:
    labels = np.array([0, 1, 1, 2])
    assert cap_rows(labels, np.array([False, True, False, False])).tolist() == [0, 1, 2, 3]


def test_a_large_set_keeps_each_class_and_side_in_proportion() -> None:
    rng = np.random.default_rng(0)
    n = 30_000
    labels = rng.choice(5, size=n, p=[0.5, 0.3, 0.15, 0.049, 0.001])
    valid = rng.random(n) < 0.2
    keep = cap_rows(labels, valid, seed=1)
    assert len(keep) <= MAX_REPLAY and len(set(keep.tolist())) == len(keep)
    assert (np.diff(keep) > 0).all(), "rows stay in order"
    for c in range(5):
        for side in (False, True):
            total = int(((labels == c) & (valid == side)).sum())
            kept = int(((labels[keep] == c) & (valid[keep] == side)).sum())
            assert kept >= 1 if total else kept == 0
            assert abs(kept - total * MAX_REPLAY / n) <= 1, (c, side, kept, total)
    assert (cap_rows(labels, valid, seed=1) == keep).all(), "the same seed keeps the same rows"
