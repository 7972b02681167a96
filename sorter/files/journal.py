"""The record of an output folder: where each photo is, how it got there, and what each run did.

SQLite at ``<output>/.sorter/journal.sqlite``, in five tables:

* ``runs``: each sort, re-sort or undo target, with its model and the user's choices.
* ``placements``: one row per photo copy Sorter put in the folder: where it is now (``path``,
  ``label``), where it came from (``source``), how (``copied`` or ``moved`` in), and whether it is
  still there (``status``). Undo, the review, the re-sort and the corrections read this, and
  nothing else, to know where a photo is.
* ``ops``: the history, appended and never rewritten: each placing, moving, correcting, removing
  or returning of a placement, with its run. Replaying it gives ``placements`` (a test checks).
* ``intents``: a file operation about to happen (a move, a removal), written and synced *before*
  any file is touched and deleted in the transaction that records its result, so a crash leaves
  an intent that the next open completes or drops (:meth:`Journal.recover`); a
  source is never unlinked before the record of where it went is on disk.
* ``sources``: the source files each run finished, so running the same command again resumes.

Writes that put a move at stake use ``synchronous=FULL``; the rest ``NORMAL`` (a lost commit then
costs a copy that the next run adopts, never a photo). Versions follow ``PRAGMA user_version``
(:mod:`sorter.files.schema`).

Why it is long: every read and write of the record is a method of :class:`Journal`, so that no
other module writes SQL against it; the file work around those writes is in
:mod:`sorter.files.ledger`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import DestinationError, SorterError, describe_os_error
from sorter.files import schema
from sorter.files.fileops import same_content
from sorter.files.legacy import convert_legacy_ops
from sorter.files.lock import OutputLock
from sorter.fsutil import ignores_case, same_file, sqlite_journal_mode
from sorter.usertypes import Arrival, OpKind, PlacementStatus, RunMode, RunStatus

STATE_DIR = ".sorter"
JOURNAL_NAME = "journal.sqlite"
log = logging.getLogger(__name__)
FEATURES_NAME = "features.sqlite"
"""Beside the journal: each sorted photo's body features, keyed by content, for re-scoring."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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


@dataclass(frozen=True)
class Placement:
    """One photo copy in the output folder, as it is now."""

    id: int
    run_id: int
    """The run that put it there."""
    source: Path
    """Where the photo came from: a moved photo goes back there on undo."""
    path: Path
    sha256: str
    size: int
    label: str
    confidence: float
    how: str
    """``copied`` or ``moved`` into the folder (see :class:`~sorter.usertypes.Arrival`)."""
    status: str
    """See :class:`~sorter.usertypes.PlacementStatus`."""
    decided_by: int
    """The run whose model last chose its folder (a re-sort's, after one moved it)."""


@dataclass(frozen=True)
class Op:
    """One line of the history."""

    id: int
    run_id: int | None
    placement_id: int
    kind: str
    from_path: Path | None
    to_path: Path | None
    label: str


@dataclass(frozen=True)
class Intent:
    """A file operation recorded before it happens (see the module docstring)."""

    id: int
    kind: str
    """The :class:`~sorter.usertypes.OpKind` its completion records."""
    run_id: int | None
    placement_id: int | None
    from_path: Path
    to_path: Path
    sha256: str
    size: int
    label: str
    confidence: float


def _v1(db: sqlite3.Connection) -> None:
    """The placement record; a journal of the older layout (ops rewritten in place) is converted."""
    legacy = schema.table_exists(db, "ops")
    if legacy:
        db.execute("ALTER TABLE ops RENAME TO legacy_ops")
    if schema.table_exists(db, "runs") and "decision" not in schema.columns(db, "runs"):
        db.execute("ALTER TABLE runs ADD COLUMN decision TEXT")
    script = """
        CREATE TABLE IF NOT EXISTS runs (
            id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, source TEXT NOT NULL,
            mode TEXT NOT NULL, model TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL, decision TEXT);
        CREATE TABLE IF NOT EXISTS sources (
            run_id INTEGER NOT NULL REFERENCES runs(id), source TEXT NOT NULL, size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT);
        CREATE INDEX IF NOT EXISTS sources_by_path ON sources(source);
        CREATE TABLE placements (
            id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), source TEXT NOT NULL,
            path TEXT NOT NULL, path_key TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
            label TEXT NOT NULL, confidence REAL NOT NULL, how TEXT NOT NULL, status TEXT NOT NULL,
            decided_by INTEGER NOT NULL);
        CREATE INDEX placements_by_key ON placements(path_key, status);
        CREATE INDEX placements_by_source ON placements(source, status);
        CREATE TABLE ops (
            id INTEGER PRIMARY KEY, run_id INTEGER, placement_id INTEGER NOT NULL REFERENCES placements(id),
            kind TEXT NOT NULL, from_path TEXT, to_path TEXT, label TEXT NOT NULL, confidence REAL,
            created TEXT NOT NULL);
        CREATE INDEX ops_by_run ON ops(run_id);
        CREATE INDEX ops_by_placement ON ops(placement_id);
        CREATE TABLE intents (
            id INTEGER PRIMARY KEY, kind TEXT NOT NULL, run_id INTEGER, placement_id INTEGER,
            from_path TEXT NOT NULL, to_path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
            label TEXT NOT NULL, confidence REAL NOT NULL, created TEXT NOT NULL)
    """
    for statement in script.split(";"):  # executescript would commit the migration's transaction
        db.execute(statement)
    if legacy:
        convert_legacy_ops(db)


_STEPS: list[schema.Step] = [_v1]


class Journal:
    """Open with :meth:`open`; use as a context manager so the lock is always released."""

    def __init__(self, output: Path, connection: sqlite3.Connection, lock: OutputLock | None) -> None:
        self.output = output
        self._db = connection
        self._lock = lock
        self.folds_case = ignores_case(output / STATE_DIR)
        """Whether the output's volume ignores case: then two spellings of a path are one path."""

    @classmethod
    def open(cls, output: Path, *, create: bool = True, lock: bool = True) -> Journal:
        """Open (and with ``create``, make) the folder's journal. With ``lock`` it is this
        process's alone until closed, and any file operation a crash left half done is completed
        or dropped first (:meth:`recover`)."""
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
            # WAL's shared memory needs one machine: on a network share, the rollback journal
            db.execute(f"PRAGMA journal_mode={sqlite_journal_mode(state)}")
            db.execute("PRAGMA synchronous=NORMAL")
            schema.migrate(db, _STEPS, what=f"journal in '{output}'")
        except (sqlite3.Error, SorterError) as exc:
            if output_lock is not None:
                output_lock.release()
            raise DestinationError(f"The journal in '{output}' cannot be opened ({exc}).") from exc
        journal = cls(output, db, output_lock)
        if output_lock is not None and journal.intents():
            journal.recover()
        return journal

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One atomic write; ``durable`` syncs it to disk before returning (a move depends on it).
        SQLite's failures (a full disk, most often) become one sentence."""
        try:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
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
        finally:
            if durable:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA synchronous=NORMAL")

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

    def key(self, path: Path | str) -> str:
        """A path as this volume compares it."""
        text = str(path)
        return text.casefold() if self.folds_case else text

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
        rows = self._db.execute(
            "SELECT id, started, finished, source, mode, model, device, status, decision FROM runs ORDER BY id"
        ).fetchall()
        return [Run(r[0], r[1], r[2], Path(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows]

    def run(self, run_id: int) -> Run | None:
        return next((r for r in self.runs() if r.id == run_id), None)

    def last_sorting_run(self) -> Run | None:
        """The newest run, not undone, that sorted photos into the folder (not a re-sort): it says
        which model sorted the folder and with what choices."""
        runs = [r for r in self.runs() if r.mode != RunMode.RESORT and r.status != RunStatus.UNDONE]
        return runs[-1] if runs else None

    def last_undoable_run(self) -> Run | None:
        """The newest run, not yet undone, whose work is still in the folder: a photo it placed,
        or one it moved, that is still there."""
        row = self._db.execute(
            "SELECT MAX(r.id) FROM runs r WHERE r.status != 'undone' AND EXISTS ("
            " SELECT 1 FROM ops o JOIN placements p ON p.id = o.placement_id"
            " WHERE o.run_id = r.id AND o.kind IN ('place', 'move') AND p.status = 'placed')"
        ).fetchone()
        return self.run(int(row[0])) if row is not None and row[0] is not None else None

    # -- sources ------------------------------------------------------------------------------
    def is_done(self, source: Path, size: int, mtime_ns: int) -> bool:
        """Whether an earlier, not undone, run already finished this very file."""
        row = self._db.execute(
            "SELECT 1 FROM sources s JOIN runs r ON r.id = s.run_id "
            "WHERE s.source=? AND s.size=? AND s.mtime_ns=? AND s.status='done' "
            "AND r.status != 'undone' LIMIT 1",
            (str(source), size, mtime_ns),
        ).fetchone()
        return row is not None

    def mark_source(
        self, db: sqlite3.Connection, run_id: int, source: Path, size: int, mtime_ns: int, failed: str | None = None
    ) -> None:
        """Inside a transaction: this run finished (or failed) this source file."""
        db.execute(
            "INSERT INTO sources(run_id, source, size, mtime_ns, status, reason) VALUES (?,?,?,?,?,?)",
            (run_id, str(source), size, mtime_ns, "failed" if failed else "done", failed),
        )

    def record_failure(self, run_id: int, source: Path, size: int, mtime_ns: int, reason: str) -> None:
        with self.transaction() as db:
            self.mark_source(db, run_id, source, size, mtime_ns, reason)

    def forget_sources(self, run_id: int) -> None:
        """After an undo the photos count as not sorted, so sorting again redoes them."""
        with self.transaction() as db:
            db.execute("DELETE FROM sources WHERE run_id=?", (run_id,))

    # -- placements and their history -----------------------------------------------------------
    _P = "id, run_id, source, path, sha256, size, label, confidence, how, status, decided_by"

    def _placements(self, where: str, args: tuple[Any, ...]) -> list[Placement]:
        rows = self._db.execute(f"SELECT {self._P} FROM placements {where} ORDER BY id", args).fetchall()
        return [Placement(r[0], r[1], Path(r[2]), Path(r[3]), r[4], r[5], r[6], r[7], r[8], r[9], r[10]) for r in rows]

    def placements(self, *, everything: bool = False) -> list[Placement]:
        """The photos in the folder now (``everything``: undone and kept ones too), oldest first."""
        if everything:
            return self._placements("", ())
        return self._placements("WHERE status=?", (str(PlacementStatus.PLACED),))

    def count_placed(self) -> int:
        """How many photos are in the folder now."""
        row = self._db.execute("SELECT COUNT(*) FROM placements WHERE status=?", (str(PlacementStatus.PLACED),))
        return int(row.fetchone()[0])

    def placement(self, placement_id: int) -> Placement | None:
        found = self._placements("WHERE id=?", (placement_id,))
        return found[0] if found else None

    def placement_at(self, path: Path) -> Placement | None:
        """The photo in the folder at ``path`` (spelled as this volume compares names)."""
        found = self._placements("WHERE path_key=? AND status=?", (self.key(path), str(PlacementStatus.PLACED)))
        return found[-1] if found else None

    def placed_from(self, source: Path, label: str, sha256: str) -> Placement | None:
        """A copy of this very source (same content) that a run not undone already put in
        ``label``'s folder: resuming after a crash finds it instead of copying again."""
        found = self._placements(
            "WHERE source=? AND label=? AND sha256=? AND status=?",
            (str(source), label, sha256, str(PlacementStatus.PLACED)),
        )
        return found[-1] if found else None

    def ops(self, run_id: int | None = None, *, placement_id: int | None = None) -> list[Op]:
        """The history, oldest first: all of it, one run's, or one placement's."""
        where, args = "", ()  # type: tuple[str, tuple[Any, ...]]
        if run_id is not None:
            where, args = "WHERE run_id=?", (run_id,)
        elif placement_id is not None:
            where, args = "WHERE placement_id=?", (placement_id,)
        rows = self._db.execute(
            f"SELECT id, run_id, placement_id, kind, from_path, to_path, label FROM ops {where} ORDER BY id", args
        ).fetchall()
        return [
            Op(r[0], r[1], r[2], r[3], Path(r[4]) if r[4] else None, Path(r[5]) if r[5] else None, r[6]) for r in rows
        ]

    def add_placement(
        self,
        db: sqlite3.Connection,
        *,
        run_id: int,
        source: Path,
        path: Path,
        sha256: str,
        size: int,
        label: str,
        confidence: float,
        how: Arrival,
    ) -> int:
        """Inside a transaction: a new photo in the folder, and the history line that put it there."""
        cur = db.execute(
            "INSERT INTO placements(run_id, source, path, path_key, sha256, size, label, confidence, how, status,"
            " decided_by) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                str(source),
                str(path),
                self.key(path),
                sha256,
                size,
                label,
                float(confidence),
                str(how),
                str(PlacementStatus.PLACED),
                run_id,
            ),
        )
        placement_id = int(cur.lastrowid or 0)
        self.add_op(db, run_id, placement_id, OpKind.PLACE, source, path, label, confidence)
        return placement_id

    def add_op(
        self,
        db: sqlite3.Connection,
        run_id: int | None,
        placement_id: int,
        kind: OpKind,
        from_path: Path | None,
        to_path: Path | None,
        label: str,
        confidence: float | None = None,
    ) -> int:
        """Inside a transaction: one line of history (the placement is updated by the caller);
        ``confidence`` is the model's, where a run decided the folder."""
        cur = db.execute(
            "INSERT INTO ops(run_id, placement_id, kind, from_path, to_path, label, confidence, created)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (
                run_id,
                placement_id,
                str(kind),
                None if from_path is None else str(from_path),
                None if to_path is None else str(to_path),
                label,
                None if confidence is None else float(confidence),
                _now(),
            ),
        )
        return int(cur.lastrowid or 0)

    def set_placement(
        self,
        db: sqlite3.Connection,
        placement_id: int,
        *,
        path: Path | None = None,
        label: str | None = None,
        status: PlacementStatus | None = None,
        confidence: float | None = None,
        decided_by: int | None = None,
    ) -> None:
        """Inside a transaction, beside the history line that says why: where the photo is now."""
        db.execute(
            "UPDATE placements SET path=COALESCE(?, path), path_key=COALESCE(?, path_key), label=COALESCE(?, label),"
            " status=COALESCE(?, status), confidence=COALESCE(?, confidence), decided_by=COALESCE(?, decided_by)"
            " WHERE id=?",
            (
                None if path is None else str(path),
                None if path is None else self.key(path),
                label,
                None if status is None else str(status),
                None if confidence is None else float(confidence),
                decided_by,
                placement_id,
            ),
        )

    # -- intents --------------------------------------------------------------------------------
    def intend(
        self,
        kind: OpKind,
        *,
        run_id: int | None,
        placement_id: int | None,
        from_path: Path,
        to_path: Path,
        sha256: str,
        size: int,
        label: str,
        confidence: float = 0.0,
    ) -> Intent:
        """Record, durably, a file operation about to happen."""
        with self.transaction(durable=True) as db:
            cur = db.execute(
                "INSERT INTO intents(kind, run_id, placement_id, from_path, to_path, sha256, size, label, confidence,"
                " created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    str(kind),
                    run_id,
                    placement_id,
                    str(from_path),
                    str(to_path),
                    sha256,
                    size,
                    label,
                    float(confidence),
                    _now(),
                ),
            )
        return Intent(
            int(cur.lastrowid or 0),
            str(kind),
            run_id,
            placement_id,
            from_path,
            to_path,
            sha256,
            size,
            label,
            confidence,
        )

    def intents(self) -> list[Intent]:
        rows = self._db.execute(
            "SELECT id, kind, run_id, placement_id, from_path, to_path, sha256, size, label, confidence"
            " FROM intents ORDER BY id"
        ).fetchall()
        return [Intent(r[0], r[1], r[2], r[3], Path(r[4]), Path(r[5]), r[6], r[7], r[8], r[9]) for r in rows]

    def drop_intent(self, intent: Intent) -> None:
        """The operation did not happen (its target name was taken, or it failed before any change)."""
        with self.transaction() as db:
            db.execute("DELETE FROM intents WHERE id=?", (intent.id,))

    def clear_intent(self, db: sqlite3.Connection, intent: Intent) -> None:
        """Inside the transaction that records what the operation did."""
        db.execute("DELETE FROM intents WHERE id=?", (intent.id,))

    def complete(self, intent: Intent, size: int | None = None, mtime_ns: int | None = None) -> int:
        """Record what an intended operation did, and drop the intent, in one transaction; a move
        into the folder also marks its source finished (its ``size`` and ``mtime_ns``)."""
        kind = OpKind(intent.kind)
        with self.transaction() as db:
            self.clear_intent(db, intent)
            if kind == OpKind.PLACE:
                assert intent.run_id is not None
                placement_id = self.add_placement(
                    db,
                    run_id=intent.run_id,
                    source=intent.from_path,
                    path=intent.to_path,
                    sha256=intent.sha256,
                    size=intent.size,
                    label=intent.label,
                    confidence=intent.confidence,
                    how=Arrival.MOVED,
                )
                if size is not None and mtime_ns is not None:
                    self.mark_source(db, intent.run_id, intent.from_path, size, mtime_ns)
                return placement_id
            assert intent.placement_id is not None
            placement_id = intent.placement_id
            if kind in (OpKind.REMOVE, OpKind.RETURN) and intent.from_path == intent.to_path:
                self.set_placement(db, placement_id, status=PlacementStatus.UNDONE)
                self.add_op(db, intent.run_id, placement_id, kind, intent.from_path, None, intent.label)
                return placement_id
            if kind == OpKind.RETURN:
                self.set_placement(db, placement_id, path=intent.to_path, status=PlacementStatus.UNDONE)
            elif kind == OpKind.MOVE:
                self.set_placement(
                    db,
                    placement_id,
                    path=intent.to_path,
                    label=intent.label,
                    confidence=intent.confidence,
                    decided_by=intent.run_id,
                )
            else:  # CORRECT, UNCORRECT, REVERT
                self.set_placement(db, placement_id, path=intent.to_path, label=intent.label)
            confidence = intent.confidence if kind == OpKind.MOVE else None
            self.add_op(
                db, intent.run_id, placement_id, kind, intent.from_path, intent.to_path, intent.label, confidence
            )
            if kind == OpKind.REVERT:
                # the run that decided its folder before the undone one, and with what confidence
                row = db.execute(
                    "SELECT o.run_id, o.confidence FROM ops o JOIN runs r ON r.id = o.run_id WHERE o.placement_id=?"
                    " AND o.kind IN ('place', 'move') AND r.status != 'undone' AND o.run_id != ? ORDER BY o.id DESC",
                    (placement_id, intent.run_id),
                ).fetchone()
                if row is not None:
                    self.set_placement(db, placement_id, decided_by=int(row[0]), confidence=row[1])
            return placement_id

    def recover(self) -> int:
        """Finish or drop every file operation a crash interrupted; returns how many were finished.

        A move happened if its new name holds the photo (then the old name, if still there, is
        removed: the link was made, the unlink not); it did not if the new name does not exist (the
        old one still does: it is never unlinked first). A removal happened if the file is gone.
        """
        finished = 0
        for intent in self.intents():
            kind = OpKind(intent.kind)
            if kind in (OpKind.REMOVE, OpKind.RETURN) and intent.from_path == intent.to_path:
                happened = not os.path.lexists(intent.from_path)
            else:
                happened = _move_happened(intent)
            if happened:
                self.complete(intent)
                finished += 1
            else:
                self.drop_intent(intent)
        if finished:
            log.info("completed %d file operations an interrupted run left half done", finished)
        return finished


def _move_happened(intent: Intent) -> bool:
    source, target = intent.from_path, intent.to_path
    if not os.path.lexists(target):
        return False  # not begun: the photo is still at its old name
    if not os.path.lexists(source):
        return True
    if same_file(source, target) or same_content(target, intent.size, intent.sha256):
        with contextlib.suppress(OSError):
            os.unlink(source)  # linked, not yet unlinked: finish the move
        return not os.path.lexists(source)
    return False  # the new name holds something else: not ours


def journal_path(output: Path) -> Path:
    return output / STATE_DIR / JOURNAL_NAME


def is_output_folder(path: Path) -> bool:
    return os.path.exists(journal_path(path))


def output_holding(path: Path) -> Path | None:
    """The Sorter output folder that ``path`` lies in (itself included), if any."""
    for folder in (path, *path.parents):
        if is_output_folder(folder):
            return folder
    return None
