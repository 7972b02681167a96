"""Body features on disk, keyed by photo content and extraction recipe, so nothing is decoded twice.

A retrain after thirty corrections must not run the network over three thousand unchanged
training photos again. Rows are keyed by the photo's SHA-256, a recipe key (the body's weights,
input size, resize, augmentation, seed) and a view number, so a changed photo, a changed body or a
changed recipe never matches a stale row. The cache is a convenience: a file that cannot be
opened, or a row whose checksum or length is wrong, is dropped and computed again, never trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sorter.fsutil import sqlite_journal_mode

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    sha256 TEXT NOT NULL,
    recipe TEXT NOT NULL,
    view INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    data BLOB NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (sha256, recipe, view)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS faces (
    sha256 TEXT NOT NULL,
    detector TEXT NOT NULL,
    prominence REAL NOT NULL,
    PRIMARY KEY (sha256, detector)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS looks (
    sha256 TEXT NOT NULL PRIMARY KEY,
    dhash INTEGER NOT NULL
) WITHOUT ROWID;
"""
CLEAN_VIEW = -1
"""The unaugmented view: what sorting sees."""

Key = tuple[str, int]


def recipe_key(facts: Mapping[str, Any]) -> str:
    """A short stable hash of everything that decides a feature vector."""
    text = json.dumps(dict(facts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _checksum(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


class FeatureCache:
    """SQLite file of float16 feature vectors. Use :meth:`open`; safe to delete at any time."""

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self.dropped = 0
        """Rows found damaged and dropped since opening (for tests and logs)."""

    @classmethod
    def open(cls, path: Path) -> FeatureCache:
        """Open or create; a damaged file is deleted and started afresh. One that cannot be deleted
        (Windows says PermissionError while another program holds it) is left alone, and this
        session keeps its features in memory instead (computed again next time)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return cls(path, cls._connect(path))
        except sqlite3.DatabaseError as exc:
            log.warning("feature cache %s is damaged (%s); starting a new one", path, exc)
        try:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{path}{suffix}")
        except OSError as exc:
            log.warning("feature cache %s cannot be replaced (%s); keeping features in memory", path, exc)
            return cls(path, cls._connect(":memory:"))
        return cls(path, cls._connect(path))

    @staticmethod
    def _connect(path: Path | str) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            if path != ":memory:":
                db.execute(f"PRAGMA journal_mode={sqlite_journal_mode(Path(path).parent)}")
            db.executescript(_SCHEMA)
            ok = db.execute("PRAGMA quick_check").fetchone()
            if ok is None or ok[0] != "ok":
                raise sqlite3.DatabaseError(f"quick_check says {ok[0] if ok else 'nothing'}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_many(self, recipe: str, keys: Iterable[Key]) -> dict[Key, np.ndarray]:
        """The cached vectors among ``keys``; damaged rows are dropped and left out."""
        found: dict[Key, np.ndarray] = {}
        bad: list[Key] = []
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            by_sha: dict[str, list[int]] = {}
            for sha, view in chunk:
                by_sha.setdefault(sha, []).append(view)
            marks = ",".join("?" * len(by_sha))
            try:
                rows = self._db.execute(
                    f"SELECT sha256, view, dim, data, checksum FROM features WHERE recipe=? AND sha256 IN ({marks})",
                    (recipe, *by_sha),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                log.warning("feature cache %s cannot be read (%s); computing features again", self.path, exc)
                return {}
            for sha, view, dim, data, checksum in rows:
                if view not in by_sha.get(sha, ()):
                    continue
                blob = bytes(data)
                if len(blob) != 2 * int(dim) or _checksum(blob) != checksum:
                    bad.append((sha, view))
                    continue
                vector = np.frombuffer(blob, dtype=np.float16).astype(np.float32)
                if not np.isfinite(vector).all():
                    bad.append((sha, view))
                    continue
                found[(sha, view)] = vector
        if bad:
            self.dropped += len(bad)
            log.warning("feature cache %s: %d damaged rows dropped", self.path, len(bad))
            with contextlib.suppress(sqlite3.DatabaseError):
                self._db.executemany(
                    "DELETE FROM features WHERE sha256=? AND recipe=? AND view=?",
                    [(sha, recipe, view) for sha, view in bad],
                )
        return found

    def put_many(self, recipe: str, items: Mapping[Key, np.ndarray]) -> None:
        """Store vectors (as float16); a cache that cannot be written only costs time later."""
        rows = []
        for (sha, view), vector in items.items():
            blob = np.asarray(vector, dtype=np.float16).tobytes()
            rows.append((sha, recipe, int(view), len(blob) // 2, blob, _checksum(blob)))
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO features(sha256, recipe, view, dim, data, checksum) VALUES (?,?,?,?,?,?)",
                rows,
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            log.info("could not write the feature cache %s: %s", self.path, exc)

    def get_faces(self, detector: str, shas: Iterable[str]) -> dict[str, float]:
        """The kept face prominences among ``shas`` (see :mod:`sorter.model.people`)."""
        wanted = list(dict.fromkeys(shas))
        found: dict[str, float] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._db.execute(
                    f"SELECT sha256, prominence FROM faces WHERE detector=? AND sha256 IN ({marks})",
                    (detector, *chunk),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                log.warning("feature cache %s cannot be read (%s)", self.path, exc)
                return {}
            found.update((sha, float(value)) for sha, value in rows if 0.0 <= float(value) <= 1.0)
        return found

    def put_faces(self, detector: str, items: Mapping[str, float]) -> None:
        """Keep face prominences, so a re-score decides as sorting did without decoding again."""
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO faces(sha256, detector, prominence) VALUES (?,?,?)",
                [(sha, detector, float(value)) for sha, value in items.items()],
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            log.info("could not write the feature cache %s: %s", self.path, exc)

    def get_looks(self, shas: Iterable[str]) -> dict[str, int]:
        """The kept difference hashes among ``shas`` (:func:`sorter.files.images.dhash_array`)."""
        wanted = list(dict.fromkeys(shas))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 400):
            chunk = wanted[start : start + 400]
            marks = ",".join("?" * len(chunk))
            try:
                rows = self._db.execute(f"SELECT sha256, dhash FROM looks WHERE sha256 IN ({marks})", chunk).fetchall()
            except sqlite3.DatabaseError as exc:
                log.warning("feature cache %s cannot be read (%s)", self.path, exc)
                return {}
            found.update((sha, int(value) % (1 << 64)) for sha, value in rows)  # stored signed
        return found

    def put_looks(self, items: Mapping[str, int]) -> None:
        """Keep difference hashes (as SQLite's signed 64-bit integers)."""
        signed = [(sha, value - (1 << 64) if value >= 1 << 63 else value) for sha, value in items.items()]
        try:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO looks(sha256, dhash) VALUES (?,?)", signed)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            log.info("could not write the feature cache %s: %s", self.path, exc)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM features").fetchone()[0])
