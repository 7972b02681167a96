"""What the review's buttons do, and the one sentence each says afterwards, without Qt.

The review dialog runs these on its single writer thread; each returns the photos it moved
(so the main window's list follows them) and a sentence for the user: how many moved, or why
none did. A click never ends in silence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sorter.files.corrections import CorrectionStore, confirm, correct, undo_correction
from sorter.jobs.resort import ResortReport, resort
from sorter.model.bundle import Bundle
from sorter.names import HOLDING_FOLDERS, UNSURE_FOLDER


@dataclass
class Done:
    """The outcome of one review action."""

    message: str
    moved: list[tuple[Path, Path]] = field(default_factory=list)
    """(where it was, where it is now) for each photo that moved."""


def _photos(n: int) -> str:
    return f"{n} photo" if n == 1 else f"{n} photos"


def correct_photos(output: Path, paths: list[Path], label: str, db: Path, known: tuple[str, ...] = ()) -> Done:
    """Move each photo to ``label`` (a new category is allowed) and log the corrections."""
    moved = []
    with CorrectionStore(db) as store:
        for path in paths:
            if path.parent.name != label:
                moved.append((path, correct(output, path, label, store, known).path))
    target = moved[0][1].parent.name if moved else label
    if not moved:
        return Done(f"{'It is' if len(paths) == 1 else 'They are'} already in {label}.")
    return Done(f"Moved {_photos(len(moved))} to {target}; the next retrain learns from it.", moved)


def confirm_photos(output: Path, paths: list[Path], db: Path, offered: dict[Path, str] | None = None) -> Done:
    """Record that these photos are in the right folder. A photo in _unsure or _other cannot be;
    one the review ``offered`` a category for ("_unsure → dog?") is moved there instead, as the
    user said that category is right."""
    offered = offered or {}
    held = {p for p in paths if p.parent.name in HOLDING_FOLDERS}
    accepted = {p: offered[p] for p in held if offered.get(p) not in (None, *HOLDING_FOLDERS)}
    usable = [p for p in paths if p not in held]
    if not usable and not accepted:
        return Done(f"Photos in {UNSURE_FOLDER} cannot be confirmed: move them to their category instead.")
    moved = []
    with CorrectionStore(db) as store:
        for path in usable:
            confirm(output, path, store)
        for path, label in accepted.items():
            moved.append((path, correct(output, path, label, store).path))
    said = []
    if usable:
        said.append(f"Confirmed {_photos(len(usable))}: they stay where they are, and teach the next retrain.")
    if moved:
        folders = sorted({new.parent.name for _, new in moved})
        said.append(
            f"Moved {_photos(len(moved))} to {', '.join(folders)}, as you confirmed; the next retrain learns from it."
        )
    return Done(" ".join(said), moved)


def resort_rest(output: Path, bundle: Bundle, db: Path) -> Done:
    """Move the photos not reviewed where the re-score now puts them (``sorter resort``)."""
    with CorrectionStore(db) as store:
        report = resort(output, bundle, store)
    return Done(resort_sentence(report, bundle), list(report.moved))


def resort_sentence(report: ResortReport, bundle: Bundle) -> str:
    """How many moved, or why none did, and what the folders are now worth."""
    worth = f" {report.worth()}" if report.worth() else ""
    if report.moved:
        return (
            f"Re-sorted: {_photos(len(report.moved))} moved to the folders your reviews suggest "
            f"(Undo in the main window takes it back).{worth}"
        )
    why = (
        f"No photo moved: the {_photos(report.unchanged)} you have not reviewed are already where the model, "
        f"with your {_photos(report.reviewed)} reviewed, puts them."
    )
    if bundle.config.replay is None:
        why += (
            f" The model '{bundle.name}' keeps no features of its training photos, so your reviews move only "
            "photos that look nearly the same; Train… makes a model that learns from them."
        )
    if report.without_features:
        why += f" {_photos(report.without_features)} have no kept features and were left alone."
    return why + worth


def undo_last_correction(output: Path, db: Path) -> Done:
    """Take back the newest correction (or confirmation) of this folder."""
    with CorrectionStore(db) as store:
        last = store.last_in(output.expanduser().resolve())
        back = undo_correction(output, store)
    if last is None or last.sorted_path == back:
        return Done(f"Took back the confirmation of {back.name}.")
    return Done(f"Put {back.name} back in {back.parent.name}.", [(last.sorted_path, back)])
