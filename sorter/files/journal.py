"""The record of every run on an output folder: what was placed where, so it can resume or undo.

SQLite in WAL mode at ``<output>/.sorter/journal.sqlite``. A photo's operations and the mark that
its source is finished are written in one transaction *after* the file is safely in place; a run
killed in between is harmless because the next run finds the same content already there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sorter.errors import DestinationError, describe_os_error
from sorter.usertypes import RunMode, RunStatus

STATE_DIR = ".sorter"
JOURNAL_NAME = "journal.sqlite"
LOCK_NAME = "lock"
FEATURES_NAME = "features.sqlite"
"""Beside the journal: each sorted photo's body features, keyed by content, for re-scoring."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    finished TEXT,
    source TEXT NOT NULL,
    mode TEXT NOT NULL,
    model TEXT NOT NULL,            -- the bundle: a path (a bare name in older journals)
    device TEXT NOT NULL,
    status TEXT NOT NULL,           -- running | finished | cancelled | undone
    decision TEXT                   -- the user's decision choices, JSON (sorter.jobs.policy.Choices)
);                                  -- mode: copy | move | resort
CREATE TABLE IF NOT EXISTS ops (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    label TEXT NOT NULL,
    confidence REAL NOT NULL,
    status TEXT NOT NULL,           -- copied | moved | duplicate | undone | kept
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    status TEXT NOT NULL,           -- done | failed
    reason TEXT
);
CREATE INDEX IF NOT EXISTS sources_by_path ON sources(source);
CREATE INDEX IF NOT EXISTS ops_by_run ON ops(run_id);
CREATE INDEX IF NOT EXISTS ops_by_destination ON ops(destination);
"""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Op:
    id: int
    run_id: int
    source: Path
    destination: Path
    sha256: str
    size: int
    label: str
    confidence: float
    status: str


@dataclass(frozen=True)
class Run:
    id: int
    started: str
    finished: str | None
    source: Path
    mode: str
    model: str
    device: str
    status: str
    decision: str | None = None
    """The decision choices the run was sorted with (JSON; None in journals from before they were kept)."""


class OutputLock:
    """An exclusive lock on an output folder, so two runs never sort into it at once."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fh: IO[bytes] | None = None

    def acquire(self) -> None:
        fh = open(self.path, "a+b")  # noqa: SIM115 - held open as the lock
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            raise DestinationError("Another Sorter run is using this output folder; wait for it to finish.") from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class Journal:
    """Open with :meth:`open`; use as a context manager so the lock is always released."""

    def __init__(self, output: Path, connection: sqlite3.Connection, lock: OutputLock | None) -> None:
        self.output = output
        self._db = connection
        self._lock = lock

    @classmethod
    def open(cls, output: Path, *, create: bool = True, lock: bool = True) -> Journal:
        state = output / STATE_DIR
        if not create and not (state / JOURNAL_NAME).exists():
            raise DestinationError(f"'{output}' holds no Sorter journal: nothing was sorted there.")
        try:
            state.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DestinationError(f"Cannot use '{output}' as the output folder: {describe_os_error(exc)}") from exc
        output_lock = OutputLock(state) if lock else None
        if output_lock is not None:
            try:
                output_lock.acquire()
            except OSError as exc:
                raise DestinationError(f"Cannot use '{output}' as the output folder: {describe_os_error(exc)}") from exc
        try:
            db = sqlite3.connect(state / JOURNAL_NAME, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _migrate(db)
        except sqlite3.Error as exc:
            if output_lock is not None:
                output_lock.release()
            raise DestinationError(f"The journal in '{output}' cannot be opened ({exc}).") from exc
        return cls(output, db, output_lock)

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; SQLite's failures (a full disk, most often) become one sentence."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise self._write_error(exc) from exc

    def _write_error(self, exc: sqlite3.Error) -> DestinationError:
        text = str(exc)
        if "full" in text:
            reason = "the disk is full"
        elif "readonly" in text or "read-only" in text:
            reason = "the folder is read-only"
        else:
            reason = text
        return DestinationError(
            f"The journal in '{self.output}' cannot be written: {reason}. "
            "Photos already sorted are safe; free space or fix the folder, then run again."
        )

    # -- runs ---------------------------------------------------------------------------------
    def start_run(self, source: Path, mode: str, model: str, device: str, *, decision: str | None = None) -> int:
        """A new run; ``model`` is the bundle's path and ``decision`` the choices that decide folders,
        kept so that re-scoring the folder later decides as this run did."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO runs(started, source, mode, model, device, status, decision) VALUES (?,?,?,?,?,?,?)",
                (_now(), str(source), str(mode), model, device, str(RunStatus.RUNNING), decision),
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished=?, status=? WHERE id=?", (_now(), str(status), run_id))

    def runs(self) -> list[Run]:
        decision = "decision" if "decision" in _run_columns(self._db) else "NULL"
        rows = self._db.execute(
            f"SELECT id, started, finished, source, mode, model, device, status, {decision} FROM runs ORDER BY id"
        ).fetchall()
        return [Run(r[0], r[1], r[2], Path(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def last_sorting_run(self) -> Run | None:
        """The newest run, not undone, that sorted photos into the folder (not a re-sort): it says
        which model sorted the folder and with what choices."""
        runs = [r for r in self.runs() if r.mode != RunMode.RESORT and r.status != RunStatus.UNDONE]
        return runs[-1] if runs else None

    def last_undoable_run(self) -> Run | None:
        """The newest run, not yet undone, that placed or moved at least one photo."""
        row = self._db.execute(
            "SELECT r.id FROM runs r JOIN ops o ON o.run_id = r.id WHERE r.status != 'undone' "
            "AND (o.status IN ('copied', 'moved') OR (o.status = 'duplicate' AND r.mode = 'move')) "
            "ORDER BY r.id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return next(r for r in self.runs() if r.id == row[0])

    # -- photos -------------------------------------------------------------------------------
    def is_done(self, source: Path, size: int, mtime_ns: int) -> bool:
        """Whether an earlier, not undone, run already finished this very file."""
        row = self._db.execute(
            "SELECT 1 FROM sources s JOIN runs r ON r.id = s.run_id "
            "WHERE s.source=? AND s.size=? AND s.mtime_ns=? AND s.status='done' "
            "AND r.status != 'undone' LIMIT 1",
            (str(source), size, mtime_ns),
        ).fetchone()
        return row is not None

    def record_source(
        self,
        run_id: int,
        source: Path,
        size: int,
        mtime_ns: int,
        ops: list[dict[str, Any]],
        *,
        failed: str | None = None,
    ) -> list[int]:
        """Record a photo's placements and mark it finished, atomically."""
        with self.transaction() as db:
            ids = [
                _insert_op(
                    db,
                    run_id,
                    source,
                    op["destination"],
                    op["sha256"],
                    op["size"],
                    op["label"],
                    op["confidence"],
                    op["status"],
                )
                for op in ops
            ]
            db.execute(
                "INSERT INTO sources(run_id, source, size, mtime_ns, status, reason) VALUES (?,?,?,?,?,?)",
                (run_id, str(source), size, mtime_ns, "failed" if failed else "done", failed),
            )
        return ids

    def ops(self, run_id: int | None = None) -> list[Op]:
        if run_id is None:
            return self._select_ops("", ())
        return self._select_ops("WHERE run_id=?", (run_id,))

    def _select_ops(self, where: str, args: tuple[Any, ...], tail: str = "ORDER BY id") -> list[Op]:
        columns = "id, run_id, source, destination, sha256, size, label, confidence, status"
        query = f"SELECT {columns} FROM ops {where} {tail}"
        rows = self._db.execute(query, args).fetchall()
        return [Op(r[0], r[1], Path(r[2]), Path(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def op_for_destination(self, destination: Path, *, exclude_run: int | None = None) -> Op | None:
        """The newest live operation that put a file at ``destination`` (one indexed lookup)."""
        ops = self._select_ops(
            "WHERE destination=? AND status != 'undone' AND run_id != ?",
            (str(destination), -1 if exclude_run is None else exclude_run),
            "ORDER BY id DESC LIMIT 1",
        )
        return ops[0] if ops else None

    def live_ops(self) -> list[Op]:
        """Placements of runs not undone whose file should still be in the output folder."""
        return self._select_ops(
            "WHERE status IN ('copied', 'moved', 'duplicate') AND run_id IN "
            "(SELECT id FROM runs WHERE status != 'undone' AND mode != 'resort')",
            (),
        )

    def record_op(self, run_id: int, op: Op) -> int:
        """One operation that belongs to no source photo (a re-sort's move inside the output)."""
        with self.transaction() as db:
            return _insert_op(
                db, run_id, op.source, op.destination, op.sha256, op.size, op.label, op.confidence, op.status
            )

    def set_op_status(self, op_id: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE ops SET status=? WHERE id=?", (str(status), op_id))

    def relocate_op(self, op_id: int, destination: Path, label: str, confidence: float | None = None) -> None:
        """A correction or re-sort moved the sorted copy: keep the journal pointing at the file."""
        with self.transaction() as db:
            db.execute(
                "UPDATE ops SET destination=?, label=?, confidence=COALESCE(?, confidence) WHERE id=?",
                (str(destination), label, None if confidence is None else float(confidence), op_id),
            )

    def forget_sources(self, run_id: int) -> None:
        """After an undo the photos count as not sorted, so sorting again redoes them."""
        with self.transaction() as db:
            db.execute("DELETE FROM sources WHERE run_id=?", (run_id,))


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a journal written by an earlier version up to this schema, in place; a journal that
    cannot be written (a read-only folder, opened to read) is read as it is."""
    if "decision" not in _run_columns(db):
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("ALTER TABLE runs ADD COLUMN decision TEXT")


def _run_columns(db: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in db.execute("PRAGMA table_info(runs)")}


def _insert_op(
    db: sqlite3.Connection,
    run_id: int,
    source: Path,
    destination: Path,
    sha256: str,
    size: int,
    label: str,
    confidence: float,
    status: str,
) -> int:
    cur = db.execute(
        "INSERT INTO ops(run_id, source, destination, sha256, size, label, confidence, status, created)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (run_id, str(source), str(destination), sha256, size, label, float(confidence), status, _now()),
    )
    return int(cur.lastrowid or 0)


def journal_path(output: Path) -> Path:
    return output / STATE_DIR / JOURNAL_NAME


def is_output_folder(path: Path) -> bool:
    return os.path.exists(journal_path(path))
