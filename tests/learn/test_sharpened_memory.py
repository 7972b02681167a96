"""Folders whose photos all lie close together: the memory narrowed, and only photos clearly closer to a
reviewed one taught (sorter.learn.memory, sorter.learn.shift)."""

from __future__ import annotations

import numpy as np

from sorter.knobs import DEFAULT
from sorter.learn.memory import sharpened_for
from sorter.learn.shift import TypicalityIndex, usual_closeness
from sorter.model.memory import DEFAULT_ALPHA, DEFAULT_BETA, ExemplarMemory


def _around(centre: np.ndarray, spread: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors scattered around ``centre`` (larger ``spread``: further apart)."""
    out = centre[None, :] + spread * rng.standard_normal((n, len(centre)))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def _closest(folder: np.ndarray, reviewed: np.ndarray) -> np.ndarray:
    return (folder @ reviewed.T).max(axis=1)


def test_a_dense_folder_makes_the_votes_at_its_usual_closeness_faint() -> None:
    rng = np.random.default_rng(0)
    centre = rng.standard_normal(64)
    centre /= np.linalg.norm(centre)
    folder = _around(centre, 0.05, 300, rng)
    reviewed = folder[:20]
    memory = ExemplarMemory(reviewed, np.zeros(20, dtype=np.int64), DEFAULT_ALPHA, DEFAULT_BETA)
    others = _closest(folder[20:], reviewed)
    usual = float(np.median(others))
    assert usual > 0.8  # the case: every photo is a near-duplicate's distance from a reviewed one
    narrowed = sharpened_for(memory, reviewed, folder)
    assert narrowed.beta > memory.beta
    vote = narrowed.alpha * np.exp(-narrowed.beta * (1.0 - (usual + DEFAULT.dense_margin)))
    assert vote <= DEFAULT.faint_vote * 1.001
    # a vote at the old strength was far from faint there
    assert memory.alpha * np.exp(-memory.beta * (1.0 - usual)) > 10.0


def test_a_folder_of_ordinary_spread_keeps_its_memory() -> None:
    rng = np.random.default_rng(1)
    folder = _around(np.zeros(64), 1.0, 300, rng)  # unrelated photos
    reviewed = folder[:20]
    memory = ExemplarMemory(reviewed, np.zeros(20, dtype=np.int64), DEFAULT_ALPHA, DEFAULT_BETA)
    assert sharpened_for(memory, reviewed, folder) is memory


def test_the_reviewed_photos_themselves_do_not_count_as_close() -> None:
    """A small folder whose photos were mostly reviewed is not "dense": each reviewed photo is at
    cosine 1 from itself, which says nothing about how close the others lie."""
    rng = np.random.default_rng(2)
    folder = _around(np.zeros(64), 1.0, 10, rng)
    reviewed = folder[:8]
    memory = ExemplarMemory(reviewed, np.zeros(8, dtype=np.int64), DEFAULT_ALPHA, DEFAULT_BETA)
    assert sharpened_for(memory, reviewed, folder) is memory
    assert sharpened_for(memory, reviewed, reviewed) is memory


def test_in_a_dense_folder_only_photos_clearly_closer_to_a_reviewed_one_are_taught() -> None:
    """Being a near-duplicate's distance from a reviewed photo makes a photo typical, except in a
    folder where every photo is that close to one: there only those clearly closer count."""
    rng = np.random.default_rng(3)
    dim = 64
    source = rng.standard_normal(dim)
    source /= np.linalg.norm(source)
    train = _around(source, 0.1, 200, rng)
    valid = _around(source, 0.1, 100, rng)
    near = np.sort((valid @ train.T).max(axis=1))
    index = TypicalityIndex(
        rows={0: train},
        reference={0: np.sort((valid @ train.T).mean(axis=1))},
        pooled_rows=train,
        pooled_reference=np.sort((valid @ train.T).mean(axis=1)),
        nearest_reference={0: near},
    )
    look = rng.standard_normal(dim)  # a new look, far from the training photos
    look /= np.linalg.norm(look)
    folder = _around(look, 0.04, 300, rng)
    predicted = np.zeros(len(folder), dtype=np.int64)
    assert (index.typicality(folder, predicted) < 0.1).mean() > 0.9, "the new look is atypical"
    reviewed = folder[:20]
    usual = usual_closeness(reviewed, folder)
    assert usual is not None and usual > float(np.median(near)), "every photo is close to a reviewed one"
    naive = index.taught_by(reviewed, np.zeros(20, dtype=np.int64))
    assert (naive.typicality(folder[20:], predicted[20:]) >= 0.1).mean() > 0.9, "the flaw: all taught"
    dense = index.taught_by(reviewed, np.zeros(20, dtype=np.int64), folder=folder)
    taught = dense.typicality(folder[20:], predicted[20:]) >= 0.1
    closest = (folder[20:] @ reviewed.T).max(axis=1)
    assert taught.mean() < 0.5
    assert taught[closest > usual + DEFAULT.dense_margin].all(), "the clearly closer ones are still taught"
    assert dense.typicality(reviewed, predicted[:20]).min() >= 0.1, "a reviewed photo is typical of itself"
