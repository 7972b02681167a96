"""The review queue: doubt first, but not thirty look-alikes in a row, and a spot check of a
confident photo every few."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from sorter.files.journal import Placement
from sorter.jobs.rescore import WAIT_REASON, Rescored
from sorter.jobs.review_queue import (
    caption,
    in_queue_order,
    interleave_spot_checks,
    overview,
    review_order,
    scored_item,
)
from sorter.names import UNSURE_FOLDER


def _item(name: str, confidence: float, folder: str = "chair", sha: str = "0" * 64, reviewed: bool = False) -> Rescored:
    path = Path("/out") / folder / name
    placement = Placement(0, 1, Path("/src") / name, path, sha, 1, folder, confidence, "copied", "placed", 1)
    return Rescored(placement, path, folder, folder, confidence, np.zeros(2), reviewed=reviewed)


def test_look_alikes_do_not_fill_the_head_of_the_queue() -> None:
    rng = np.random.default_rng(0)
    base, other = rng.normal(size=64), rng.normal(size=64)
    # five near-identical doubtful photos, then one different, slightly less doubtful photo
    items = [_item(f"twin{i}.jpg", 0.40 + 0.01 * i) for i in range(5)] + [_item("other.jpg", 0.5)]
    features = np.stack([base + 0.01 * rng.normal(size=64) for _ in range(5)] + [other])
    order = [r.path.name for r in review_order(items, features, spot_every=0)]
    assert order[0] == "twin0.jpg", "the most doubtful photo comes first"
    assert order[1] == "other.jpg", "then the unlike one, before more of the same"
    assert sorted(order) == sorted(r.path.name for r in items)


def test_past_the_diverse_head_the_rest_is_least_confident_first() -> None:
    items = [_item(f"p{i}.jpg", c) for i, c in enumerate((0.9, 0.3, 0.6, 0.5))]
    features = np.eye(4)
    order = review_order(items, features, first=1, spot_every=0)
    assert [r.confidence for r in order] == [0.3, 0.5, 0.6, 0.9]


def test_one_in_four_of_the_head_is_a_stable_random_spot_check_of_a_sorted_photo() -> None:
    rng = np.random.default_rng(1)
    shas = [f"{rng.integers(1 << 62):064x}" for _ in range(40)]
    items = [_item(f"u{i}.jpg", 0.3 + 0.005 * i, UNSURE_FOLDER, shas[i]) for i in range(20)]
    items += [_item(f"s{i}.jpg", 0.9 + 0.002 * i, "chair", shas[20 + i]) for i in range(18)]
    items += [_item(f"r{i}.jpg", 0.99, "sofa", shas[38 + i], reviewed=True) for i in range(2)]
    features = rng.normal(size=(40, 16))
    order = review_order(items, features, first=20, spot_every=4)
    spots = [r for r in order if r.spot_check]
    assert len(spots) == 5 and len(order) == 40
    assert all(r.current == "chair" and not r.reviewed for r in spots), "only sorted photos, never reviewed ones"
    # a uniform sample by content, not the most confident: the same whatever order they come in
    expected = sorted((r for r in items if r.current == "chair"), key=lambda r: r.placement.sha256)[:5]
    assert {r.path for r in spots} == {r.path for r in expected}
    again = review_order(items[::-1], features[::-1], first=20, spot_every=4)
    assert {r.path for r in again if r.spot_check} == {r.path for r in spots}

    queue = interleave_spot_checks(in_queue_order([scored_item(r, rank) for rank, r in enumerate(order)]))
    marks = [r.spot_check for r in queue]
    assert marks[:8] == [False, False, False, True] * 2, "every fourth photo of the first page"
    assert queue[0].label == UNSURE_FOLDER and queue[0].confidence == 0.3
    assert [r.reviewed for r in queue[-2:]] == [True, True], "reviewed photos stay last"
    assert sorted(r.path.name for r in queue) == sorted(r.path.name for r in items)


def test_no_spot_checks_without_sorted_photos_and_leftovers_before_the_reviewed() -> None:
    unsure = [_item(f"u{i}.jpg", 0.4, UNSURE_FOLDER) for i in range(8)]
    assert not any(r.spot_check for r in review_order(unsure, np.eye(8)))
    spot = [r for r in review_order([*unsure[:1], _item("s.jpg", 0.99)], np.eye(2), spot_every=2) if r.spot_check]
    reviewed = _item("r.jpg", 0.99, reviewed=True)
    items = [scored_item(r, rank) for rank, r in enumerate([unsure[0], *spot, reviewed])]
    assert interleave_spot_checks(items, every=4) == items


def test_spot_checks_are_placed_by_the_reviews_already_made() -> None:
    """The queue is built again after every click: the next spot check is due by the count of
    reviews so far, so a user who takes the top photo meets it when it is due."""
    doubtful = [scored_item(_item(f"u{i}.jpg", 0.3 + 0.01 * i, UNSURE_FOLDER), i) for i in range(8)]
    spots = [replace(scored_item(_item(f"s{i}.jpg", 0.99), 100 + i), spot_check=True) for i in range(2)]
    items = in_queue_order([*doubtful, *spots])

    def marks(done: int) -> list[bool]:
        return [q.spot_check for q in interleave_spot_checks(items, every=4, done=done)]

    assert marks(0)[:8] == [False, False, False, True] * 2, "as on the first page: the fourth, the eighth"
    assert marks(3)[:5] == [True, False, False, False, True], "three reviews made: the next one is due"
    assert marks(1)[:7] == [False, False, True, False, False, False, True]
    assert marks(4) == marks(0)


def test_a_sure_photo_held_back_is_a_spot_check_that_offers_its_category() -> None:
    """The re-sort sorts the surest photos, held back or not: the spot checks must sample them
    too, and a held-back one asks about the category it would go to (C accepts it)."""
    rng = np.random.default_rng(2)
    shas = [f"{rng.integers(1 << 62):064x}" for _ in range(12)]
    doubtful = [_item(f"u{i}.jpg", 0.4, UNSURE_FOLDER, shas[i]) for i in range(8)]
    sure = [replace(_item(f"h{i}.jpg", 0.99, UNSURE_FOLDER, shas[8 + i]), guess="chair") for i in range(2)]
    other = [replace(_item(f"o{i}.jpg", 0.99, "_other", shas[10 + i]), guess="chair") for i in range(2)]
    moving = replace(_item("m.jpg", 0.99, "chair", shas[0][::-1]), suggested="sofa")  # C cannot answer "chair → sofa?"
    order = review_order([*doubtful, *sure, *other, moving], rng.normal(size=(13, 8)), first=13, spot_every=4)
    spots = [r for r in order if r.spot_check]
    assert {r.path.name for r in spots} == {"h0.jpg", "h1.jpg"}, "sure ones held back, never doubtful, _other or moving"
    item = scored_item(spots[0], 0)
    assert item.suggested == "chair"
    assert f"{UNSURE_FOLDER} → chair?" in caption(item) and caption(item).endswith("right? (C)")
    queue = [scored_item(r, rank) for rank, r in enumerate(order) if r is not moving]
    assert "would move" not in overview(queue, 0, ""), "a spot check is a question, not a move the reviews made"
    assert not any(scored_item(r, 0).suggested for r in doubtful), "a photo not checked offers nothing"


def test_photos_the_reviews_suggest_but_a_resort_leaves_are_offered_not_announced_as_moves() -> None:
    """In a shifted folder before enough reviews, a held photo the votes suggest a category for
    waits (the re-sort leaves it); the review offers it, and does not promise a re-sort moves it."""
    waiting = replace(_item("w.jpg", 0.99, UNSURE_FOLDER), suggested="sofa", reason=WAIT_REASON, waits=True)
    moving = replace(_item("m.jpg", 0.99, UNSURE_FOLDER), suggested="chair")
    items = [scored_item(waiting, 0), scored_item(moving, 1)]
    assert items[0].suggested == "sofa" and items[0].waits and not items[1].waits
    said = overview(items, 0, "")
    assert "First the 1 that your reviews would move" in said
    assert "Next the 1 your reviews suggest a category for (C if right)" in said
