"""What the sorting job tells its consumer: one event per photo, and the run's summary.

The CLI's progress bar and the GUI's worker read the same events (:func:`sorter.jobs.sorting.sort_folder`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from sorter.names import OTHER_FOLDER, UNSURE_FOLDER

Status = Literal["sorted", "unsure", "skipped", "failed", "planned"]
E = TypeVar("E")
R = TypeVar("R")


@dataclass(frozen=True)
class SortEvent:
    """What happened to one photo. ``index`` counts from 1 up to ``total``."""

    index: int
    total: int
    source: Path
    status: Status
    labels: tuple[str, ...] = ()
    confidence: float = 0.0
    top: tuple[tuple[str, float], ...] = ()
    destinations: tuple[Path, ...] = ()
    duplicate: bool = False
    error: str | None = None
    elapsed: float = 0.0
    reason: str | None = None
    """Why a photo was not sorted into a category (unsure, or none of the categories)."""


@dataclass
class SortSummary:
    run_id: int | None
    source: Path
    output: Path
    device: str
    model: str
    dry_run: bool
    backend: str = "torch"
    total: int = 0
    sorted: int = 0
    unsure: int = 0
    skipped: int = 0
    failed: int = 0
    per_label: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    not_sorted: list[tuple[Path, str]] = field(default_factory=list)
    """Photos left out of the categories, with the reason."""
    notes: list[str] = field(default_factory=list)
    shift: dict[str, object] | None = None
    """How the folder compares with the training photos (:mod:`sorter.learn.shift`); None when
    the model keeps no features of them."""

    @property
    def classified(self) -> int:
        return self.sorted + self.unsure

    @property
    def images_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0

    def count(self, event: SortEvent) -> None:
        if event.status == "failed":
            self.failed += 1
            self.failures.append((event.source, event.error or "unknown error"))
        elif event.status == "skipped":
            self.skipped += 1
        elif event.status == "unsure" or (
            event.status == "planned" and event.labels in ((UNSURE_FOLDER,), (OTHER_FOLDER,))
        ):
            self.unsure += 1
            if event.reason:
                self.not_sorted.append((event.source, event.reason))
        else:
            self.sorted += 1
        if event.status in ("sorted", "unsure", "planned"):
            for label in event.labels:
                self.per_label[label] += 1

    def sentence(self) -> str:
        """What the run did, in one sentence that both the CLI and the window print: how many
        photos went into folders, how many were held back, and how many were done before."""
        if self.total and self.skipped == self.total:
            return f"All {self.total} photos in {self.source.name} were sorted before: nothing to do."
        held = self.per_label.get(UNSURE_FOLDER, 0)
        apart = self.per_label.get(OTHER_FOLDER, 0)
        would = "would go" if self.dry_run else "went"
        parts = [f"{self.sorted} {would} into folders"]
        if held:
            parts.append(f"{held} to {UNSURE_FOLDER} (not sure enough)")
        if apart:
            parts.append(f"{apart} to {OTHER_FOLDER} (fit no category)")
        if self.skipped:
            parts.append(f"{self.skipped} skipped (sorted before)")
        if self.failed:
            parts.append(f"{self.failed} could not be read")
        return f"Of {self.total} photos in {self.source.name}: " + ", ".join(parts) + f"; {self.seconds:.1f} s."

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source": str(self.source),
            "output": str(self.output),
            "model": self.model,
            "dry_run": self.dry_run,
            "total": self.total,
            "sorted": self.sorted,
            "unsure": self.unsure,
            "skipped": self.skipped,
            "failed": self.failed,
            "per_label": dict(sorted(self.per_label.items())),
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "device": self.device,
            "backend": self.backend,
            "failures": [{"path": str(p), "reason": r} for p, r in self.failures],
            "not_sorted": [{"path": str(p), "reason": r} for p, r in self.not_sorted],
            "notes": list(self.notes),
            "shift": self.shift,
        }


def drive(job: Generator[E, None, R], on_event: Callable[[E], None]) -> R:
    """Consume a job generator, handing each event on; returns the generator's value."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        on_event(event)
