"""The precision the last re-sort stated for a folder, kept beside the folders it made.

Estimating (:mod:`sorter.learn.estimate`) refits the adapted head once per part of the reviews:
about a second on a thousand photos, too slow for the review, which rebuilds its queue after
every click (issue 26 keeps that under half a second). So the re-sort states the estimate and
keeps it here, and the review shows it and decides as the re-sort did, for as long as the
folders are the ones it made: no run since, and that re-sort not undone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sorter.files.journal import STATE_DIR, Journal
from sorter.fsutil import replace_atomically
from sorter.learn.estimate import PrecisionEstimate
from sorter.usertypes import RunStatus

STATED_NAME = "stated.json"


def _newest_run(journal: Journal) -> tuple[int, str]:
    runs = journal.runs()
    return (runs[-1].id, runs[-1].status) if runs else (0, "")


def keep_stated(output: Path, journal: Journal, estimate: PrecisionEstimate | None, classes: Sequence[str]) -> None:
    """Keep what a re-sort of ``output`` just stated (None: it stated nothing; the old statement
    goes, since it no longer describes the folders), with the categories of the model that
    stated it: a temperature per category is read by name (see :func:`stated`)."""
    path = output / STATE_DIR / STATED_NAME
    if estimate is None:
        path.unlink(missing_ok=True)
        return
    record = {"after_run": _newest_run(journal)[0], "classes": list(classes), "estimate": estimate.to_record()}
    replace_atomically(path, json.dumps(record).encode())


def stated(output: Path, journal: Journal, classes: Sequence[str] | None = None) -> PrecisionEstimate | None:
    """What the last re-sort stated, if the folders are still the ones it made, read for a model
    with ``classes`` (a retrain since may have added a category, which shifts the others)."""
    path = output / STATE_DIR / STATED_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        newest, status = _newest_run(journal)
        if record["after_run"] != newest or status == RunStatus.UNDONE:
            return None
        return _for_classes(PrecisionEstimate.from_record(record["estimate"]), record.get("classes"), classes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        # Sorter's own note, rewritten by the next re-sort: a damaged one states nothing
        return None


def _for_classes(
    found: PrecisionEstimate, stated_for: Sequence[str] | None, classes: Sequence[str] | None
) -> PrecisionEstimate:
    """``found`` with its categories' temperatures in the order of ``classes``, matched by name; a
    category it was not stated for (new since) is read at the folder's temperature."""
    if found.class_bounds is None or classes is None:
        return found
    if stated_for is None or len(stated_for) != len(found.class_bounds):
        return replace(found, class_bounds=None)
    by_name = dict(zip(stated_for, found.class_bounds, strict=True))
    return replace(found, class_bounds=tuple(by_name.get(c, found.ratio_bound) for c in classes))
