"""What the user taught Sorter: corrections and confirmations, each of one photo in one sorted folder.

The store keeps a copy of each photo because retraining must not depend on the user's folders
still existing. Every review belongs to the output folder it was made in, the placement it is
about and the run (and so the model) that sorted that photo: *Undo last correction* takes back the
newest one of *that* folder, and a retrain uses only what its model's family sorted
(:mod:`sorter.jobs.reviews`). Undoing a run withdraws the reviews of the photos it placed or
moved, so what the store holds is always true of the disk.

:func:`correct` is the one call the CLI and the review dialog both use: it moves the sorted photo
into the right folder through the journal (:func:`sorter.files.ledger.relocate`), then logs the
correction. :func:`confirm` records that a photo's folder is right: a confirmed photo teaches as
much as a corrected one, and is never moved again by a re-sort.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sorter.errors import SorterError, UsageError, describe_os_error
from sorter.files import schema
from sorter.files.fileops import keep_copy, sha256_of
from sorter.files.journal import Journal, Placement, output_holding
from sorter.files.ledger import IN_PLACE, relocate
from sorter.fsutil import same_file, sqlite_journal_mode
from sorter.names import HOLDING_FOLDERS, folder_name_problem
from sorter.usertypes import OpKind, ReviewStatus

CORRECTION, CONFIRMATION = "correction", "confirmation"
_COLUMNS = (
    "id, sha256, stored, original, sorted_path, previous_path, predicted, confidence, corrected, model, created, kind,"
    " output, run_id, placement_id, status"
)


def _v1(db: sqlite3.Connection) -> None:
    """The first layout (stores written before versions were kept may lack ``kind``)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS corrections (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, stored TEXT NOT NULL,"
        " original TEXT NOT NULL, sorted_path TEXT NOT NULL, previous_path TEXT NOT NULL, predicted TEXT NOT NULL,"
        " confidence REAL NOT NULL, corrected TEXT NOT NULL, model TEXT NOT NULL, created TEXT NOT NULL)"
    )
    if "kind" not in schema.columns(db, "corrections"):
        db.execute(f"ALTER TABLE corrections ADD COLUMN kind TEXT NOT NULL DEFAULT '{CORRECTION}'")


def _v2(db: sqlite3.Connection) -> None:
    """Each review belongs to a folder, a placement and a run, and can be withdrawn."""
    db.execute("ALTER TABLE corrections ADD COLUMN output TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE corrections ADD COLUMN run_id INTEGER")
    db.execute("ALTER TABLE corrections ADD COLUMN placement_id INTEGER")
    db.execute(f"ALTER TABLE corrections ADD COLUMN status TEXT NOT NULL DEFAULT '{ReviewStatus.LIVE}'")
    db.execute("CREATE INDEX corrections_by_output ON corrections(output, status)")
    for cid, sorted_path in db.execute("SELECT id, sorted_path FROM corrections").fetchall():
        output = output_holding(Path(sorted_path).parent)
        if output is not None:
            db.execute("UPDATE corrections SET output=? WHERE id=?", (str(output), cid))


_STEPS: list[schema.Step] = [_v1, _v2]


@dataclass(frozen=True)
class Correction:
    id: int
    sha256: str
    stored: Path
    original: Path
    sorted_path: Path
    """Where the photo lies after the review (the corrected folder, or its own when confirmed)."""
    previous_path: Path
    predicted: str
    confidence: float
    corrected: str
    model: str
    """The bundle (its path) whose run decided the photo's folder."""
    created: str
    kind: str = CORRECTION
    """``correction`` (the label was changed) or ``confirmation`` (the label was accepted)."""
    output: Path | None = None
    """The sorted folder the review was made in (None: a store written before it was kept)."""
    run_id: int | None = None
    placement_id: int | None = None
    status: str = ReviewStatus.LIVE

    @property
    def label(self) -> str:
        return self.corrected


def reviewed_photos(db_path: Path) -> tuple[Correction, ...]:
    """The last word on each photo the user reviewed; none (and no store created) when the user
    never reviewed one."""
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
            self._db.execute(f"PRAGMA journal_mode={sqlite_journal_mode(db_path.parent)}")
            schema.migrate(self._db, _STEPS, what=f"corrections store '{db_path}'")
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
        output: Path,
        placement: Placement,
        previous: Path,
        corrected: str,
        model: str,
        kind: str = CORRECTION,
    ) -> Correction:
        """Log a review of ``placement`` (now at ``image``), keeping a copy of the photo."""
        sha = sha256_of(image)
        stored = keep_copy(image, self.images / sha[:2] / f"{sha}{image.suffix.lower()}")
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        cur = self._db.execute(
            f"INSERT INTO corrections({_COLUMNS.replace('id, ', '', 1)}) VALUES ({','.join('?' * 15)})",
            (
                sha,
                str(stored),
                str(placement.source),
                str(image),
                str(previous),
                placement.label,
                placement.confidence,
                corrected,
                model,
                created,
                kind,
                str(output),
                placement.run_id,
                placement.id,
                str(ReviewStatus.LIVE),
            ),
        )
        return self._get(int(cur.lastrowid or 0))

    def _get(self, cid: int) -> Correction:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM corrections WHERE id=?", (cid,)).fetchone()
        return _row(row)

    def _select(self, where: str = "", args: tuple[Any, ...] = ()) -> list[Correction]:
        return [_row(r) for r in self._db.execute(f"SELECT {_COLUMNS} FROM corrections {where} ORDER BY id", args)]

    def all(self) -> list[Correction]:
        """Every review that stands (withdrawn ones left out), oldest first."""
        return self._select("WHERE status=?", (str(ReviewStatus.LIVE),))

    def history(self) -> list[Correction]:
        """Every review ever logged, withdrawn ones too."""
        return self._select()

    def latest_per_photo(self, output: Path | None = None) -> list[Correction]:
        """The last word that stands on each photo (a photo corrected twice counts once, as last
        corrected), of one sorted folder or of all."""
        latest: dict[str, Correction] = {}
        for c in self.all():
            if output is None or c.output == output:
                latest[c.sha256] = c
        return sorted(latest.values(), key=lambda c: c.id)

    def standing_in(self, output: Path) -> list[Correction]:
        """The last standing word on each photo of ``output`` (by placement: two copies of one
        photo in the folder are two photos here), oldest first."""
        last: dict[object, Correction] = {}
        for c in self.all():
            if c.output == output:
                last[c.placement_id if c.placement_id is not None else c.sorted_path] = c
        return sorted(last.values(), key=lambda c: c.id)

    def last_in(self, output: Path) -> Correction | None:
        """The newest review that stands in ``output``."""
        found = self._select("WHERE status=? AND output=?", (str(ReviewStatus.LIVE), str(output)))
        return found[-1] if found else None

    def count(self, kind: str) -> int:
        return sum(1 for c in self.latest_per_photo() if c.kind == kind)

    def withdraw(self, ids: list[int]) -> None:
        """These reviews no longer stand (taken back, or their run undone); kept in the history."""
        self._db.executemany(
            "UPDATE corrections SET status=? WHERE id=?", [(str(ReviewStatus.WITHDRAWN), cid) for cid in ids]
        )

    def withdraw_placements(self, output: Path, placements: list[Placement]) -> int:
        """Withdraw every review that stands of these photos of ``output``; returns how many."""
        ids = {p.id for p in placements}
        paths = {p.path for p in placements}
        gone = [
            c.id
            for c in self.all()
            if c.output == output and (c.placement_id in ids or (c.placement_id is None and c.sorted_path in paths))
        ]
        self.withdraw(gone)
        return len(gone)

    def __len__(self) -> int:
        return len(self.latest_per_photo())


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
        Path(str(row[12])) if row[12] else None,
        None if row[13] is None else int(row[13]),
        None if row[14] is None else int(row[14]),
        str(row[15]),
    )


@dataclass(frozen=True)
class Corrected:
    path: Path
    correction: Correction


def canonical_label(label: str, output: Path, known: tuple[str, ...] = ()) -> str:
    """The spelling of ``label`` that Sorter already uses: a label equal to a category of the
    model or a folder of ``output`` but for case *is* that label (class names must differ by more
    than case, and on a volume that ignores case they are one folder anyway)."""
    folders = tuple(p.name for p in output.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in (*known, *folders):
        if name.casefold() == label.casefold():
            return name
    return label


def _reviewable(output: Path, photo: Path) -> tuple[Path, Path]:
    output = output.expanduser().resolve()
    photo = photo.expanduser().absolute()
    if not photo.is_file():
        raise UsageError(f"'{photo}' does not exist.")
    photo = photo.parent.resolve() / photo.name
    if not photo.is_relative_to(output):
        raise UsageError(f"'{photo.name}' is not inside the sorted folder '{output}'.")
    return output, photo


def _placement(journal: Journal, photo: Path, output: Path) -> Placement:
    placement = journal.placement_at(photo)
    if placement is None:
        raise UsageError(f"'{photo.name}' was not put in '{output}' by Sorter, so it cannot be reviewed there.")
    return placement


def _model_of(journal: Journal, placement: Placement) -> str:
    run = journal.run(placement.decided_by)
    return run.model if run is not None else ""


def correct(
    output: Path, photo: Path, new_label: str, store: CorrectionStore, known: tuple[str, ...] = ()
) -> Corrected:
    """Move a sorted photo to ``new_label``'s folder, recorded in the journal, and log the correction.

    A label the model does not know is allowed: it becomes a new class at the next retraining.
    ``known`` are the model's categories (a label differing from one only in case is that one).
    """
    output, photo = _reviewable(output, photo)
    problem = folder_name_problem(new_label)
    if problem is not None or new_label.casefold() in HOLDING_FOLDERS:
        raise UsageError(f"'{new_label}' cannot be a category name ({problem or 'it is reserved'}).")
    label = canonical_label(new_label, output, known)
    target = output / label
    if photo.parent.name == label or same_file(target, photo.parent):
        raise UsageError(f"'{photo.name}' is already in '{photo.parent.name}'.")
    with Journal.open(output) as journal:
        placement = _placement(journal, photo, output)
        try:
            landed = relocate(journal, placement, target, label, OpKind.CORRECT)
        except OSError as exc:
            raise SorterError(f"Cannot move '{photo.name}': {describe_os_error(exc)}") from exc
        if landed.outcome == IN_PLACE:
            raise UsageError(f"'{photo.name}' is already in '{photo.parent.name}'.")
        model = _model_of(journal, placement)
    correction = store.add(
        landed.path, output=output, placement=placement, previous=photo, corrected=label, model=model
    )
    return Corrected(landed.path, correction)


def undo_correction(output: Path, store: CorrectionStore) -> Path:
    """Put the photo of this folder's newest correction back where it was and withdraw the
    correction (a confirmation is only withdrawn); returns where the photo is now."""
    output = output.expanduser().resolve()
    last = store.last_in(output)
    if last is None:
        raise SorterError(f"There is no correction to undo in '{output.name}'.")
    if last.kind == CONFIRMATION:  # nothing moved: forgetting it is the whole undo
        store.withdraw([last.id])
        return last.sorted_path
    with Journal.open(output) as journal:
        placement = journal.placement(last.placement_id) if last.placement_id else None
        placement = placement or journal.placement_at(last.sorted_path)
        if placement is None or journal.key(placement.path) != journal.key(last.sorted_path):
            raise SorterError(f"'{last.sorted_path.name}' is no longer where the correction put it.")
        store.withdraw([last.id])  # first: a crash now leaves a photo without its review, never the reverse
        previous = last.previous_path
        try:
            landed = relocate(
                journal, placement, previous.parent, previous.parent.name, OpKind.UNCORRECT, name=previous.name
            )
        except OSError as exc:
            raise SorterError(f"Cannot move '{placement.path.name}' back: {describe_os_error(exc)}") from exc
    return landed.path


def confirm(output: Path, photo: Path, store: CorrectionStore) -> Correction:
    """Record that a sorted photo is in the right folder; nothing moves.

    Raises:
        UsageError: the photo is not in a category folder of ``output``.
    """
    output, photo = _reviewable(output, photo)
    if photo.parent.parent != output:
        raise UsageError(f"'{photo.name}' is not in a category folder of '{output}'.")
    label = photo.parent.name
    if label.casefold() in HOLDING_FOLDERS:
        raise UsageError(f"'{photo.name}' is in {label}: move it to its category instead of confirming it.")
    with Journal.open(output, create=False, lock=False) as journal:
        placement = _placement(journal, photo, output)
        model = _model_of(journal, placement)
    return store.add(
        photo, output=output, placement=placement, previous=photo, corrected=label, model=model, kind=CONFIRMATION
    )
