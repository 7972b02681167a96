"""The placement record: crash recovery, schema versions, case, and folders of other outputs."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from sorter.errors import DestinationError, UsageError
from sorter.files import journal as journal_module
from sorter.files.corrections import CorrectionStore, correct
from sorter.files.images import scan
from sorter.files.journal import Journal
from sorter.files.ledger import SourceMark, move_in
from sorter.files.undo import undo_last_run
from sorter.jobs.events import drive
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.usertypes import OpKind, PlacementStatus
from tests.conftest import SAMPLES, content_counts, sha256


def _photo(folder: Path, name: str = "photo.jpg") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(SAMPLES / "chelsea.jpg", folder / name)
    return folder / name


def _intent_to_move(out: Path, source: Path, target: Path) -> None:
    with Journal.open(out) as journal:
        run = journal.start_run(source.parent, "move", "model", "cpu")
        journal.intend(
            OpKind.PLACE,
            run_id=run,
            placement_id=None,
            from_path=source,
            to_path=target,
            sha256=sha256(source),
            size=source.stat().st_size,
            label=target.parent.name,
            confidence=0.9,
        )


def test_a_move_linked_but_not_unlinked_is_finished_when_the_journal_next_opens(tmp_path: Path) -> None:
    source = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    target = out / "Animals" / "photo.jpg"
    target.parent.mkdir(parents=True)
    _intent_to_move(out, source, target)
    os.link(source, target)  # the kill came between the link and the unlink
    with Journal.open(out) as journal:
        assert journal.intents() == []
        (placed,) = journal.placements()
    assert not source.exists() and placed.path == target and placed.source == source
    with CorrectionStore(tmp_path / "data" / "c.sqlite") as store:
        undo_last_run(out, store)
    assert source.is_file() and not target.exists(), "the finished move is undone like any other"


def test_a_move_not_begun_is_dropped_and_the_photo_stays(tmp_path: Path) -> None:
    source = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    _intent_to_move(out, source, out / "Animals" / "photo.jpg")
    with Journal.open(out) as journal:
        assert journal.intents() == [] and journal.placements() == []
    assert source.is_file()


def test_a_journal_opened_only_to_read_leaves_intents_to_the_writer(tmp_path: Path) -> None:
    source = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    _intent_to_move(out, source, out / "Animals" / "photo.jpg")
    with Journal.open(out, create=False, lock=False) as journal:
        assert len(journal.intents()) == 1


def test_a_target_that_is_the_photo_itself_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    photo = _photo(out / "_unsure")
    with Journal.open(out) as journal:
        run = journal.start_run(out / "_unsure", "move", "model", "cpu")
        landed = move_in(journal, run, photo, out / "_unsure", "_unsure", 0.4, SourceMark(1, 1))
        assert landed.outcome == "in place" and journal.placements() == []
    assert photo.is_file()


OLD_JOURNAL = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, source TEXT NOT NULL,
    mode TEXT NOT NULL, model TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE ops (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, label TEXT NOT NULL, confidence REAL NOT NULL,
    status TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE sources (run_id INTEGER NOT NULL, source TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT);
"""


def test_a_journal_of_the_older_layout_is_converted_and_its_runs_undo(tmp_path: Path) -> None:
    """Ops rewritten in place (before the placement record): a copy run, then a re-sort that
    moved the copy; both undo after the conversion."""
    source = _photo(tmp_path / "photos")
    out = tmp_path / "out"
    first, moved = out / "_unsure" / "photo.jpg", out / "Animals" / "photo.jpg"
    moved.parent.mkdir(parents=True)
    shutil.copy2(source, moved)  # where the re-sort left the copy
    digest, size = sha256(source), source.stat().st_size
    (out / ".sorter").mkdir()
    db = sqlite3.connect(out / ".sorter" / "journal.sqlite")
    db.executescript(OLD_JOURNAL)
    db.execute("INSERT INTO runs VALUES (1, 't', 't', ?, 'copy', 'general', 'cpu', 'finished')", (str(source.parent),))
    db.execute("INSERT INTO runs VALUES (2, 't', 't', ?, 'resort', 'general', 'features', 'finished')", (str(out),))
    db.execute(
        "INSERT INTO ops VALUES (1, 1, ?, ?, ?, ?, 'Animals', 0.4, 'copied', 't')",
        (str(source), str(moved), digest, size),
    )
    db.execute(
        "INSERT INTO ops VALUES (2, 2, ?, ?, ?, ?, 'Animals', 0.4, 'moved', 't')",
        (str(first), str(moved), digest, size),
    )
    db.commit()
    db.close()
    with Journal.open(out) as journal:
        (placed,) = journal.placements()
        assert (placed.path, placed.source, placed.decided_by) == (moved, source, 2)
    with CorrectionStore(tmp_path / "data" / "c.sqlite") as store:
        assert undo_last_run(out, store).restored == 1
        assert first.is_file() and not moved.exists(), "the re-sort is undone to where it found the copy"
        assert undo_last_run(out, store).removed == 1
    assert content_counts(out) == {} and source.is_file()
    assert sqlite3.connect(out / ".sorter" / "journal.sqlite").execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_journal_from_a_newer_sorter_is_refused_in_one_sentence(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Journal.open(out):
        pass
    db = sqlite3.connect(out / ".sorter" / "journal.sqlite")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(DestinationError, match="newer version of Sorter"):
        Journal.open(out)


def test_a_corrections_store_of_the_first_layout_gains_folders(tmp_path: Path) -> None:
    db_path = tmp_path / "corrections.sqlite"
    out = tmp_path / "out"
    with Journal.open(out):
        pass
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE corrections (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, stored TEXT NOT NULL,"
        " original TEXT NOT NULL, sorted_path TEXT NOT NULL, previous_path TEXT NOT NULL, predicted TEXT NOT NULL,"
        " confidence REAL NOT NULL, corrected TEXT NOT NULL, model TEXT NOT NULL, created TEXT NOT NULL)"
    )
    db.execute(
        "INSERT INTO corrections VALUES (1, 'ab', 's', 'o', ?, 'p', 'chair', 0.5, 'sofa', 'm', 't')",
        (str(out / "sofa" / "x.jpg"),),
    )
    db.commit()
    db.close()
    with CorrectionStore(db_path) as store:
        (c,) = store.all()
        assert (c.kind, c.output, c.status) == ("correction", out, "live")
    assert sqlite3.connect(db_path).execute("PRAGMA user_version").fetchone()[0] == 2


def test_on_a_volume_that_ignores_case_two_spellings_are_one_photo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, general_classifier
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(journal_module, "ignores_case", lambda folder: True)
    src = tmp_path / "photos"
    _photo(src, "chelsea.jpg")
    out = tmp_path / "out"
    drive(sort_folder(SortOptions(src, out), general_classifier), lambda e: None)
    photo = out.resolve() / "Animals" / "chelsea.jpg"
    with Journal.open(out, create=False, lock=False) as journal:
        assert journal.placement_at(Path(str(photo).upper())) == journal.placement_at(photo) is not None
    with CorrectionStore(tmp_path / "data" / "c.sqlite") as store:
        with pytest.raises(UsageError, match="already in 'Animals'"):
            correct(out, photo, "ANIMALS", store)
        done = correct(out, photo, "food & DRINK", store, ("Food & drink",))
    assert done.path.parent.name == "Food & drink", "a label differing only in case is the known one"


def test_a_folder_of_another_output_is_not_moved_out_of_it_nor_scanned(tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "photos"
    _photo(src, "chelsea.jpg")
    first = src / "sorted"  # an output inside the photos, sorted into before
    drive(sort_folder(SortOptions(src, first), general_classifier), lambda e: None)
    assert [c.path.name for c in scan(src)] == ["chelsea.jpg"], "the other output's photos are its own"
    with pytest.raises(UsageError, match="part of the sorted folder"):
        drive(
            sort_folder(SortOptions(first / "Animals", tmp_path / "other", move=True), general_classifier),
            lambda e: None,
        )
    summary = drive(sort_folder(SortOptions(first / "Animals", tmp_path / "other"), general_classifier), lambda e: None)
    assert summary.sorted == 1, "copying out of another output is allowed: it changes nothing there"
    with Journal.open(first, create=False, lock=False) as journal:
        assert [p.status for p in journal.placements(everything=True)] == [PlacementStatus.PLACED]
