"""The review queue: doubt first, but not thirty look-alikes in a row."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sorter.core.journal import Op
from sorter.core.rescore import Rescored, review_order


def _item(name: str, confidence: float) -> Rescored:
    path = Path("/out/chair") / name
    op = Op(0, 1, Path("/src") / name, path, "0" * 64, 1, "chair", confidence, "copied")
    return Rescored(op, path, "chair", "chair", confidence, np.zeros(2))


def test_look_alikes_do_not_fill_the_head_of_the_queue() -> None:
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=64), rng.normal(size=64)
    # five near-identical doubtful photos, then one different, slightly less doubtful photo
    items = [_item(f"twin{i}.jpg", 0.40 + 0.01 * i) for i in range(5)] + [_item("other.jpg", 0.5)]
    features = np.stack([base + 0.01 * rng.normal(size=64) for _ in range(5)] + [other])
    order = [r.path.name for r in review_order(items, features)]
    assert order[0] == "twin0.jpg", "the most doubtful photo comes first"
    assert order[1] == "other.jpg", "then the unlike one, before more of the same"
    assert sorted(order) == sorted(r.path.name for r in items)


def test_past_the_diverse_head_the_rest_is_least_confident_first() -> None:
    items = [_item(f"p{i}.jpg", c) for i, c in enumerate((0.9, 0.3, 0.6, 0.5))]
    features = np.eye(4)
    order = review_order(items, features, first=1)
    assert [r.confidence for r in order] == [0.3, 0.5, 0.6, 0.9]
