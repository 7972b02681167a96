"""The unsure threshold chosen from validation predictions."""

from __future__ import annotations

import numpy as np

from sorter.learn.evaluate import Evaluation, choose_threshold


def _evaluation(conf_right: list[tuple[float, bool]]) -> Evaluation:
    probs, targets = [], []
    for conf, right in conf_right:
        probs.append([conf, 1 - conf])
        targets.append(("a",) if right else ("b",))
    return Evaluation(
        n=len(probs),
        classes=("a", "b"),
        multi_label=False,
        accuracy=0.0,
        per_class={},
        probs=np.array(probs),
        targets=targets,
    )


def test_lowest_threshold_reaching_the_precision_target() -> None:
    # wrong answers only below 0.6: from 0.6 up every kept photo is right
    rows = [(0.55, False), (0.58, False)] + [(0.6 + i * 0.01, True) for i in range(30)]
    assert choose_threshold(_evaluation(rows)) == 0.6


def test_everything_right_keeps_the_lowest_threshold() -> None:
    assert choose_threshold(_evaluation([(0.9, True)] * 20)) == 0.3


def test_never_sends_most_photos_to_unsure() -> None:
    # a confident mistake at 0.99: no threshold reaches 97 %; keep at least half sorted
    rows = [(0.99, False)] + [(0.5 + i * 0.01, True) for i in range(20)]
    t = choose_threshold(_evaluation(rows))
    conf = np.array([c for c, _ in rows])
    assert (conf >= t).mean() >= 0.5
