"""Every change to where a photo is, done together with its record: the intent, the act, the record.

The one way Sorter touches a photo in an output folder. A move (into the folder, between its
folders, or back out on undo) and a removal first record their intent durably in the journal,
then act on the files (a new name is made durable before the old one is unlinked), then record
the result and drop the intent in one transaction. A crash anywhere leaves either the old state
or an intent that :meth:`~sorter.files.journal.Journal.recover` completes or drops when the journal is
next opened: a photo
always has a name, and the journal always finds it. A copy needs no intent: until its record is
written it is an unrecorded file with the source's content, which the next run adopts.

A target that *is* the photo (the same file, under this or another spelling) means the photo is
already where it belongs: nothing is touched. Nothing is ever overwritten: a name taken by
another file gets the next ``name (N).ext``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sorter.files.fileops import (
    Staged,
    candidate_names,
    copy_to_temp,
    discard,
    same_content,
    sha256_of,
    unlink_quietly,
    with_retry,
)
from sorter.files.journal import Intent, Journal, Placement
from sorter.fsutil import fsync_folder, rename_no_clobber, same_file
from sorter.usertypes import Arrival, OpKind, PlacementStatus

log = logging.getLogger(__name__)

IN_PLACE = "in place"
FOUND = "found"
"""Already there: a copy or move an interrupted run made, now recorded."""


@dataclass(frozen=True)
class SourceMark:
    """The source file a sorting run finishes with this placement (its last label's), so that
    resuming skips it; recorded in the placement's own transaction."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Landed:
    """Where a photo is after one operation, and what the operation did."""

    path: Path
    outcome: str
    """``copied``, ``moved``, :data:`IN_PLACE` or :data:`FOUND`."""
    sha256: str
    size: int
    placement_id: int | None = None
    """The journal's placement (None: a file already in place that Sorter never placed)."""


def _mark(journal: Journal, run_id: int, source: Path, mark: SourceMark | None) -> None:
    if mark is not None:
        with journal.transaction() as db:
            journal.mark_source(db, run_id, source, mark.size, mark.mtime_ns)


def _link_into(source: Path, target: Path) -> None:
    """Give ``source``'s content the new name ``target`` without touching ``source``: a hard link
    where the volume has them, else a synced copy renamed into place. Never replaces a file.

    Raises:
        FileExistsError: ``target`` is taken.
    """
    try:
        os.link(source, target)
        return
    except FileExistsError:
        raise
    except OSError:
        if not source.exists():
            raise
    tmp, _, _ = copy_to_temp(source, target.parent)
    try:
        rename_no_clobber(tmp, target)
    finally:
        unlink_quietly(tmp)


def copy_in(
    journal: Journal,
    run_id: int,
    source: Path,
    folder: Path,
    label: str,
    confidence: float,
    staged: Staged,
    mark: SourceMark | None,
) -> Landed:
    """Name a staged copy of ``source`` in ``folder`` and record it (copy mode)."""
    if staged.folder != folder:
        discard(staged)
        raise ValueError(f"{staged.temporary} was staged for another folder than {folder}")
    sha, size = staged.sha256, staged.size
    known = journal.placed_from(source, label, sha)
    if known is not None:  # an interrupted run of this source got this far
        discard(staged)
        _mark(journal, run_id, source, mark)
        return Landed(known.path, FOUND, sha, size, known.id)
    for candidate in candidate_names(source.name):
        target = folder / candidate
        if os.path.lexists(target):
            if same_file(target, source):  # sorting a folder of the output: it is where it belongs
                discard(staged)
                _mark(journal, run_id, source, mark)
                here = journal.placement_at(source)
                return Landed(source, IN_PLACE, sha, size, here.id if here is not None else None)
            if journal.placement_at(target) is None and same_content(target, size, sha):
                discard(staged)  # renamed into place by a run that stopped before recording it
                placement_id = _record(
                    journal, run_id, source, target, sha, size, label, confidence, Arrival.COPIED, mark
                )
                return Landed(target, FOUND, sha, size, placement_id)
            continue
        try:
            with_retry(rename_no_clobber, staged.temporary, target)
        except FileExistsError:
            continue
        placement_id = _record(journal, run_id, source, target, sha, size, label, confidence, Arrival.COPIED, mark)
        return Landed(target, "copied", sha, size, placement_id)
    discard(staged)
    raise FileExistsError(f"too many files are named like {source.name} in {folder}")


def _record(
    journal: Journal,
    run_id: int,
    source: Path,
    target: Path,
    sha: str,
    size: int,
    label: str,
    confidence: float,
    how: Arrival,
    mark: SourceMark | None,
) -> int:
    with journal.transaction() as db:
        placement_id = journal.add_placement(
            db,
            run_id=run_id,
            source=source,
            path=target,
            sha256=sha,
            size=size,
            label=label,
            confidence=confidence,
            how=how,
        )
        if mark is not None:
            journal.mark_source(db, run_id, source, mark.size, mark.mtime_ns)
    return placement_id


def move_in(
    journal: Journal, run_id: int, source: Path, folder: Path, label: str, confidence: float, mark: SourceMark
) -> Landed:
    """Move ``source`` (a photo outside the output) into ``folder``, recorded (move mode)."""
    sha, size = sha256_of(source), source.stat().st_size
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in candidate_names(source.name):
        target = folder / candidate
        adopt = False
        if os.path.lexists(target):
            if same_file(target, source):
                _mark(journal, run_id, source, mark)
                return Landed(source, IN_PLACE, sha, size, None)
            adopt = journal.placement_at(target) is None and same_content(target, size, sha)
            if not adopt:
                continue
        intent = journal.intend(
            OpKind.PLACE,
            run_id=run_id,
            placement_id=None,
            from_path=source,
            to_path=target,
            sha256=sha,
            size=size,
            label=label,
            confidence=confidence,
        )
        if not adopt:
            try:
                _link_into(source, target)
            except FileExistsError:
                journal.drop_intent(intent)
                continue
            except BaseException:
                journal.drop_intent(intent)
                raise
        _finish_move(journal, intent, made=not adopt)
        placement_id = journal.complete(intent, mark.size, mark.mtime_ns)
        return Landed(target, FOUND if adopt else "moved", sha, size, placement_id)
    raise FileExistsError(f"too many files are named like {source.name} in {folder}")


def _finish_move(journal: Journal, intent: Intent, *, made: bool) -> None:
    """The new name exists: make it durable, then remove the old one. If the old one cannot go,
    the new name goes instead and nothing has changed (a move happens whole or not at all)."""
    fsync_folder(intent.to_path.parent)
    try:
        with_retry(os.unlink, intent.from_path)
    except BaseException:
        if made:
            unlink_quietly(intent.to_path)
        journal.drop_intent(intent)
        raise


def relocate(
    journal: Journal,
    placement: Placement,
    folder: Path,
    label: str,
    kind: OpKind,
    *,
    run_id: int | None = None,
    confidence: float | None = None,
    name: str | None = None,
) -> Landed:
    """Move a photo of the output to ``folder`` (a re-sort, a correction, or undo putting it back
    where a run found it; ``name`` defaults to its own)."""
    current = placement.path
    folder.mkdir(parents=True, exist_ok=True)
    for candidate in candidate_names(name or current.name):
        target = folder / candidate
        if os.path.lexists(target):
            if same_file(target, current):
                return Landed(current, IN_PLACE, placement.sha256, placement.size, placement.id)
            continue
        intent = journal.intend(
            kind,
            run_id=run_id,
            placement_id=placement.id,
            from_path=current,
            to_path=target,
            sha256=placement.sha256,
            size=placement.size,
            label=label,
            confidence=placement.confidence if confidence is None else confidence,
        )
        try:
            _link_into(current, target)
        except FileExistsError:
            journal.drop_intent(intent)
            continue
        except BaseException:
            journal.drop_intent(intent)
            raise
        _finish_move(journal, intent, made=True)
        journal.complete(intent)
        _drop_if_empty(journal, current.parent)
        return Landed(target, "moved", placement.sha256, placement.size, placement.id)
    raise FileExistsError(f"too many files are named like {current.name} in {folder}")


def _drop_if_empty(journal: Journal, folder: Path) -> None:
    """A category folder of the output that a move left empty goes (Sorter made it; an empty one
    would come back as a category in the next review)."""
    if folder.parent == journal.output:
        with contextlib.suppress(OSError):
            folder.rmdir()


def return_to_source(journal: Journal, placement: Placement, run_id: int) -> Landed:
    """Undo of a move: the photo goes back to where it came from (``name (N)`` if that is taken)."""
    source = placement.source
    if os.path.lexists(source) and same_content(source, placement.size, placement.sha256):
        remove(journal, placement, run_id, kind=OpKind.RETURN)  # the original is back already
        return Landed(source, IN_PLACE, placement.sha256, placement.size, placement.id)
    source.parent.mkdir(parents=True, exist_ok=True)
    landed = relocate(
        journal, placement, source.parent, placement.label, OpKind.RETURN, run_id=run_id, name=source.name
    )
    return landed


def remove(journal: Journal, placement: Placement, run_id: int, *, kind: OpKind = OpKind.REMOVE) -> bool:
    """Undo of a copy: remove it if it is still Sorter's copy. A copy the user changed is kept
    (and recorded as theirs); returns whether the file was removed."""
    path = placement.path
    if os.path.lexists(path) and not same_content(path, placement.size, placement.sha256):
        with journal.transaction() as db:
            journal.set_placement(db, placement.id, status=PlacementStatus.KEPT)
            journal.add_op(db, run_id, placement.id, OpKind.KEEP, path, None, placement.label)
        return False
    intent = journal.intend(
        kind,
        run_id=run_id,
        placement_id=placement.id,
        from_path=path,
        to_path=path,
        sha256=placement.sha256,
        size=placement.size,
        label=placement.label,
    )
    try:
        with_retry(os.unlink, path)
    except FileNotFoundError:
        pass
    except BaseException:
        journal.drop_intent(intent)
        raise
    journal.complete(intent)
    return True
