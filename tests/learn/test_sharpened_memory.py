"""The user's memory narrowed in a folder whose photos all lie close together (sorter.learn.memory)."""

from __future__ import annotations

import numpy as np

from sorter.learn.memory import DENSE_MARGIN, FAINT_VOTE, sharpened_for
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
    vote = narrowed.alpha * np.exp(-narrowed.beta * (1.0 - (usual + DENSE_MARGIN)))
    assert vote <= FAINT_VOTE * 1.001
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
