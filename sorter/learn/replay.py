"""Choosing the rows of a bundle's feature replay (:class:`~sorter.model.replay.Replay`)."""

from __future__ import annotations

import numpy as np

MAX_REPLAY = 8192
"""Rows kept at the most (21 MB of float16 at 1280 features); a larger training set keeps a
class-stratified sample, the validation share unchanged."""


def sha_bytes(hex_digest: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(hex_digest), dtype=np.uint8)


def cap_rows(labels: np.ndarray, valid: np.ndarray, limit: int = MAX_REPLAY, seed: int = 0) -> np.ndarray:
    """Indices of at most ``limit`` rows: all of them when they fit, else the same share of each
    (class, split side) pair, drawn at random with ``seed``."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for c in np.unique(labels):
        for side in (False, True):
            rows = np.flatnonzero((labels == c) & (valid == side))
            take = max(1, round(len(rows) * limit / n)) if len(rows) else 0
            keep.append(rng.choice(rows, size=min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))[:limit]
