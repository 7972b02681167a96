"""The feature cache is a convenience: damaged files and rows are rebuilt, never trusted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache, recipe_key


def test_vectors_round_trip_as_float16(tmp_path: Path) -> None:
    vector = np.linspace(-3, 3, 1280, dtype=np.float32)
    with FeatureCache.open(tmp_path / "f.sqlite") as cache:
        cache.put_many("r", {("abc", CLEAN_VIEW): vector, ("abc", 0): -vector})
        got = cache.get_many("r", [("abc", CLEAN_VIEW), ("abc", 0), ("abc", 1), ("zzz", CLEAN_VIEW)])
        assert set(got) == {("abc", CLEAN_VIEW), ("abc", 0)}
        assert np.allclose(got[("abc", CLEAN_VIEW)], vector, atol=2e-3)
        assert cache.get_many("other recipe", [("abc", CLEAN_VIEW)]) == {}


def test_a_file_that_is_not_a_database_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    path.write_bytes(b"this is not SQLite at all" * 100)
    with FeatureCache.open(path) as cache:
        assert len(cache) == 0
        cache.put_many("r", {("abc", 0): np.ones(8, dtype=np.float32)})
        assert len(cache.get_many("r", [("abc", 0)])) == 1


def test_damaged_rows_are_dropped_and_computed_again(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    with FeatureCache.open(path) as cache:
        cache.put_many("r", {("good", 0): np.ones(8, dtype=np.float32), ("bad", 0): np.ones(8, dtype=np.float32)})
    db = sqlite3.connect(path)
    db.execute("UPDATE features SET data=? WHERE sha256='bad'", (np.full(8, 7, dtype=np.float16).tobytes(),))
    db.commit()
    db.close()
    with FeatureCache.open(path) as cache:
        got = cache.get_many("r", [("good", 0), ("bad", 0)])
        assert set(got) == {("good", 0)} and cache.dropped == 1
        assert len(cache) == 1  # the damaged row is gone, so the next training recomputes it


def test_recipe_keys_change_with_any_fact() -> None:
    base = {"body": "abc", "size": 224, "augment": "v1"}
    assert recipe_key(base) == recipe_key(dict(reversed(list(base.items()))))
    assert recipe_key(base) != recipe_key({**base, "size": 260})
