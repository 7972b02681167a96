"""Enums for the words Sorter's layers pass each other: exit codes, run modes, run and operation
statuses. One definition each, in the manner of qutebrowser's ``usertypes``; they are ``str`` and
``int`` enums, so the journal stores and compares them as the plain values they always were."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """The CLI's exit status."""

    OK = 0
    FATAL = 1
    USAGE = 2
    PARTIAL = 3
    """Done, but some photos failed (each listed with its reason)."""
    CANCELLED = 130
    """Ctrl+C: running the same command resumes."""


class RunMode(StrEnum):
    """What a journaled run did to the photos."""

    COPY = "copy"
    MOVE = "move"
    RESORT = "resort"
    """Moved sorted copies between folders inside the output (never touches the source)."""


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    UNDONE = "undone"


class OpKind(StrEnum):
    """What one line of a journal's history did to a photo in the output folder."""

    PLACE = "place"
    """A run put the photo in the folder (copied or moved in; see :class:`Arrival`)."""
    MOVE = "move"
    """A run moved it to another folder of the output (a re-sort, or sorting a folder of the output)."""
    CORRECT = "correct"
    """The user moved it to the right folder."""
    UNCORRECT = "uncorrect"
    """The user took a correction back."""
    REVERT = "revert"
    """Undo moved it back to where the run found it."""
    REMOVE = "remove"
    """Undo removed a copy."""
    RETURN = "return"
    """Undo returned a moved photo to where it came from."""
    KEEP = "keep"
    """Undo kept a copy the user changed after sorting."""


class Arrival(StrEnum):
    """How a photo came into the output folder: what undoing it means."""

    COPIED = "copied"
    MOVED = "moved"


class PlacementStatus(StrEnum):
    """Whether a photo Sorter placed is still in the output folder."""

    PLACED = "placed"
    UNDONE = "undone"
    KEPT = "kept"
    """Undone, but the user had changed it, so it stays (and is no longer Sorter's)."""


class ReviewStatus(StrEnum):
    """Whether a correction or confirmation still stands."""

    LIVE = "live"
    WITHDRAWN = "withdrawn"
    """Taken back by the user, or its run was undone: kept in the history, used for nothing."""
