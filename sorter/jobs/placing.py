"""The sorting job's one writer: each photo placed in its folders and recorded, in input order.

Copies are staged in parallel (:func:`sorter.files.fileops.stage`); this runs on a single thread
that names them and records them in the journal, so two photos never race for one name and the
journal has one writer while a run lasts (as in Picard).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from sorter.errors import describe_os_error
from sorter.files.fileops import Staged, discard, is_destination_fault, stage
from sorter.files.images import Candidate
from sorter.files.journal import Journal, Placement
from sorter.files.ledger import Landed, SourceMark, copy_in, move_in, relocate
from sorter.usertypes import OpKind


@dataclass(frozen=True)
class Written:
    """What the writer did with one photo: where each label's copy is, or why it failed."""

    landed: list[Landed]
    error: str | None = None


def write_photo(
    journal: Journal,
    run_id: int,
    c: Candidate,
    output: Path,
    labels: tuple[str, ...],
    confidences: list[float],
    *,
    move: bool,
    staged: list[Future[Staged]],
    inside: Placement | None,
) -> Written:
    """Place one photo in every label's folder and record it, on the one writer thread (each
    copy is recorded as it lands, so a later label's failure leaves none unrecorded). In move
    mode the last label gets the photo itself: moved in from outside, or moved between folders
    when it already is a photo of the output (``inside``). A fault of the output (a full disk)
    propagates and stops the run; a fault of this photo is recorded as its failure."""
    landed: list[Landed] = []
    mark = SourceMark(c.size, c.mtime_ns)
    try:
        for i, label in enumerate(labels):
            last = i == len(labels) - 1
            folder = output / label
            if move and last:
                if inside is not None:
                    landed.append(
                        relocate(journal, inside, folder, label, OpKind.MOVE, run_id=run_id, confidence=confidences[i])
                    )
                    with journal.transaction() as db:
                        journal.mark_source(db, run_id, c.path, c.size, c.mtime_ns)
                else:
                    landed.append(move_in(journal, run_id, c.path, folder, label, confidences[i], mark))
                continue
            copy = staged[i].result() if i < len(staged) else stage(c.path, folder)
            landed.append(copy_in(journal, run_id, c.path, folder, label, confidences[i], copy, mark if last else None))
    except OSError as exc:
        for future in staged[len(landed) + 1 :]:
            try:
                discard(future.result())
            except OSError:
                continue
        if is_destination_fault(exc, c.path):
            raise
        journal.record_failure(run_id, c.path, c.size, c.mtime_ns, describe_os_error(exc))
        return Written(landed, describe_os_error(exc))
    return Written(landed)
