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


class OpStatus(StrEnum):
    """What one journaled placement did."""

    COPIED = "copied"
    MOVED = "moved"
    DUPLICATE = "duplicate"
    UNDONE = "undone"
    KEPT = "kept"
