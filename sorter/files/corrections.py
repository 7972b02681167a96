"""What the user taught Sorter: corrections and confirmations, each with its own copy of the photo.

The store keeps a copy because retraining must not depend on the user's folders still existing.
:func:`correct` is the one call the CLI and the review dialog both use: it moves the sorted copy
into the right folder, keeps the journal pointing at it, and logs the correction. :func:`confirm`
records that a photo's folder is right: a confirmed photo teaches as much as a corrected one, and
is never moved again by a re-sort.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import SorterError, UsageError, describe_os_error
from sorter.files.fileops import place, sha256_of
from sorter.files.journal import Journal
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER, folder_name_problem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    stored TEXT NOT NULL,
    original TEXT NOT NULL,
    sorted_path TEXT NOT NULL,
    previous_path TEXT NOT NULL,
    predicted TEXT NOT NULL,
    confidence REAL NOT NULL,
    corrected TEXT NOT NULL,
    model TEXT NOT NULL,
    created TEXT NOT NULL
);
"""
CORRECTION, CONFIRMATION = "correction", "confirmation"
_COLUMNS = (
    "id, sha256, stored, original, sorted_path, previous_path, predicted, confidence, corrected, model, created, kind"
)


@dataclass(frozen=True)
class Correction:
    id: int
    sha256: str
    stored: Path
    original: Path
    sorted_path: Path
    previous_path: Path
    predicted: str
    confidence: float
    corrected: str
    model: str
    created: str
    kind: str = CORRECTION
    """``correction`` (the label was changed) or ``confirmation`` (the label was accepted)."""

    @property
    def label(self) -> str:
        return self.corrected


def reviewed_photos(db_path: Path) -> tuple[Correction, ...]:
    """The last word on each photo the user reviewed, for a sort's calibration; none (and no
    store created) when the user never reviewed one."""
    if not db_path.exists():
        return ()
    with CorrectionStore(db_path) as store:
        return tuple(store.latest_per_photo())


class CorrectionStore:
    """SQLite log plus a folder of photo copies, both in the user's data folder."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.images = db_path.parent / "corrections"
        try:
            self.images.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(corrections)")}
            if "kind" not in columns:  # a store written before confirmations existed
                self._db.execute(f"ALTER TABLE corrections ADD COLUMN kind TEXT NOT NULL DEFAULT '{CORRECTION}'")
        except (OSError, sqlite3.Error) as exc:
            reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            raise SorterError(f"The corrections store '{db_path}' cannot be opened: {reason}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CorrectionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        image: Path,
        *,
        original: Path,
        previous: Path,
        predicted: str,
        confidence: float,
        corrected: str,
        model: str,
        kind: str = CORRECTION,
    ) -> Correction:
        sha = sha256_of(image)
        stored = place(image, self.images / sha[:2], f"{sha}{image.suffix.lower()}").destination
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        cur = self._db.execute(
            "INSERT INTO corrections(sha256, stored, original, sorted_path, previous_path, predicted,"
            " confidence, corrected, model, created, kind) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                sha,
                str(stored),
                str(original),
                str(image),
                str(previous),
                predicted,
                confidence,
                corrected,
                model,
                created,
                kind,
            ),
        )
        return self._get(int(cur.lastrowid or 0))

    def _get(self, cid: int) -> Correction:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM corrections WHERE id=?", (cid,)).fetchone()
        return _row(row)

    def all(self) -> list[Correction]:
        return [_row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM corrections ORDER BY id")]

    def count(self, kind: str) -> int:
        return sum(1 for c in self.latest_per_photo() if c.kind == kind)

    def latest_per_photo(self) -> list[Correction]:
        """The last word on each photo, corrected or confirmed (a photo corrected twice counts
        once, as last corrected)."""
        latest: dict[str, Correction] = {}
        for c in self.all():
            latest[c.sha256] = c
        return sorted(latest.values(), key=lambda c: c.id)

    def remove(self, cid: int) -> None:
        self._db.execute("DELETE FROM corrections WHERE id=?", (cid,))

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(DISTINCT sha256) FROM corrections").fetchone()[0])


def _row(row: Any) -> Correction:
    return Correction(
        int(row[0]),
        str(row[1]),
        Path(str(row[2])),
        Path(str(row[3])),
        Path(str(row[4])),
        Path(str(row[5])),
        str(row[6]),
        float(row[7]),
        str(row[8]),
        str(row[9]),
        str(row[10]),
        str(row[11]),
    )


@dataclass(frozen=True)
class Corrected:
    path: Path
    correction: Correction


def correct(output: Path, photo: Path, new_label: str, store: CorrectionStore) -> Corrected:
    """Move a sorted photo to ``new_label``'s folder, update the journal, log the correction.

    A label the model does not know is allowed: it becomes a new class at the next retraining.
    """
    output = output.expanduser().resolve()
    photo = photo.expanduser().resolve()
    if not photo.is_file():
        raise UsageError(f"'{photo}' does not exist.")
    if not photo.is_relative_to(output):
        raise UsageError(f"'{photo.name}' is not inside the sorted folder '{output}'.")
    problem = folder_name_problem(new_label)
    if problem is not None or new_label.casefold() in (UNSURE_FOLDER, OTHER_FOLDER):
        raise UsageError(f"'{new_label}' cannot be a category name ({problem or 'it is reserved'}).")
    if photo.parent.name == new_label:
        raise UsageError(f"'{photo.name}' is already in '{new_label}'.")
    with Journal.open(output) as journal:
        op = journal.op_for_destination(photo)
        run = next((r for r in journal.runs() if op is not None and r.id == op.run_id), None)
        predicted = op.label if op is not None else photo.parent.name
        confidence = op.confidence if op is not None else 0.0
        original = op.source if op is not None else photo
        try:
            moved = place(photo, output / new_label, move=True)
        except OSError as exc:
            raise SorterError(f"Cannot move '{photo.name}': {describe_os_error(exc)}") from exc
        if op is not None:
            journal.relocate_op(op.id, moved.destination, new_label)
        correction = store.add(
            moved.destination,
            original=original,
            previous=photo,
            predicted=predicted,
            confidence=confidence,
            corrected=new_label,
            model=run.model if run is not None else "",
        )
    return Corrected(moved.destination, correction)


def undo_correction(output: Path, store: CorrectionStore) -> Path:
    """Put the most recently corrected photo back where it was and forget the correction."""
    corrections = store.all()
    if not corrections:
        raise SorterError("There is no correction to undo.")
    last = corrections[-1]
    if last.kind == CONFIRMATION:  # nothing moved: forgetting it is the whole undo
        store.remove(last.id)
        return last.sorted_path
    output = output.expanduser().resolve()
    with Journal.open(output) as journal:
        if not last.sorted_path.exists():
            raise SorterError(f"'{last.sorted_path.name}' is no longer where the correction put it.")
        op = journal.op_for_destination(last.sorted_path)
        back = place(last.sorted_path, last.previous_path.parent, last.previous_path.name, move=True)
        if op is not None:
            journal.relocate_op(op.id, back.destination, last.predicted)
    store.remove(last.id)
    return back.destination


def confirm(output: Path, photo: Path, store: CorrectionStore) -> Correction:
    """Record that a sorted photo is in the right folder; nothing moves.

    Raises:
        UsageError: the photo is not in a category folder of ``output``.
    """
    output = output.expanduser().resolve()
    photo = photo.expanduser().resolve()
    if not photo.is_file():
        raise UsageError(f"'{photo}' does not exist.")
    if not photo.is_relative_to(output) or photo.parent.parent != output:
        raise UsageError(f"'{photo.name}' is not in a category folder of '{output}'.")
    label = photo.parent.name
    if label.casefold() in (UNSURE_FOLDER, OTHER_FOLDER):
        raise UsageError(f"'{photo.name}' is in {label}: move it to its category instead of confirming it.")
    with Journal.open(output, create=False, lock=False) as journal:
        op = journal.op_for_destination(photo)
        run = next((r for r in journal.runs() if op is not None and r.id == op.run_id), None)
    return store.add(
        photo,
        original=op.source if op is not None else photo,
        previous=photo,
        predicted=op.label if op is not None else label,
        confidence=op.confidence if op is not None else 0.0,
        corrected=label,
        model=run.model if run is not None else "",
        kind=CONFIRMATION,
    )
