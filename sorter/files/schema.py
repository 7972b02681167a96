"""Schema versions of Sorter's SQLite files, kept one way: ``PRAGMA user_version`` and a list of steps.

The journal and the corrections store each declare the steps that bring a file from version N to
N + 1; :func:`migrate` runs the missing ones, each in the transaction that also sets the new
version, so a file is always at one version or the next, never between. A file newer than this
program is refused in one sentence rather than misread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from sorter.errors import SorterError

Step = Callable[[sqlite3.Connection], None]


def table_exists(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, steps: Sequence[Step], *, what: str) -> None:
    """Bring ``db`` (a connection in autocommit mode) to version ``len(steps)``.

    Raises:
        SorterError: the file was written by a newer Sorter, or cannot be brought up to date
            (a read-only folder holding an older file).
    """
    version = version_of(db)
    if version > len(steps):
        raise SorterError(f"The {what} was written by a newer version of Sorter; update Sorter to use it.")
    for number in range(version, len(steps)):
        try:
            db.execute("BEGIN IMMEDIATE")
            steps[number](db)
            db.execute(f"PRAGMA user_version={number + 1}")
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise SorterError(
                f"The {what} was written by an older version of Sorter and cannot be updated ({exc})."
            ) from exc
