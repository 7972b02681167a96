"""Which of the user's reviews teach which model, and what a retrain would take from them.

A review (a correction or a confirmation) is about a photo that some model sorted. It teaches
that model's *family*: the model first trained and every model retrained from it
(:func:`sorter.model.bundle.lineage`). A furniture model therefore never learns a class from a
folder the general model sorted, and a review whose run was undone is no longer in the store's
standing reviews at all (:mod:`sorter.files.undo`). A retrain lists what it takes, folder by
folder, and any new class by name, before the user confirms (:class:`RetrainPlan`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sorter.files.corrections import CONFIRMATION, CORRECTION, Correction, CorrectionStore
from sorter.model.bundle import lineage, read_config


def family_reviews(store: CorrectionStore, model: Path) -> tuple[list[Correction], int]:
    """The last standing word on each photo that ``model``'s family sorted, and how many standing
    reviews were left out because another family sorted their photo."""
    family = lineage(model)
    families: dict[str, str] = {}

    def of(c: Correction) -> str:
        if c.model not in families:
            families[c.model] = lineage(c.model) if c.model else ""
        return families[c.model]

    standing = store.all()
    mine = [c for c in standing if of(c) == family]
    latest: dict[str, Correction] = {}
    for c in mine:
        latest[c.sha256] = c
    left_out = len({c.sha256 for c in standing} - {c.sha256 for c in mine})
    return sorted(latest.values(), key=lambda c: c.id), left_out


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain of ``model`` would learn from: shown before the user confirms."""

    model: Path
    reviews: tuple[Correction, ...]
    new_classes: tuple[str, ...]
    left_out: int = 0
    """Standing reviews of photos that other models sorted (never used here)."""
    folders: dict[str, Counter[str]] = field(default_factory=dict)
    """Per sorted folder: how many corrections and confirmations."""
    trained_here: bool = True
    """Whether the model keeps (or names) what it was trained on: the embedded general model does
    not, so it cannot be retrained, only replaced by a model trained on the user's folders."""

    @property
    def corrections(self) -> int:
        return sum(1 for c in self.reviews if c.kind == CORRECTION)

    @property
    def confirmations(self) -> int:
        return sum(1 for c in self.reviews if c.kind == CONFIRMATION)

    def sentences(self) -> list[str]:
        """The plan in a person's words, a line each."""
        if not self.trained_here:
            return [
                f"'{self.model.stem}' was not trained here: there is no record of its training photos to retrain "
                "it from. Train a new model instead, from your reviewed folder (its category folders) or any "
                "folder of category folders."
            ]
        if not self.reviews:
            lines = [f"No photo that '{self.model.stem}' sorted has been corrected or confirmed yet."]
        else:
            lines = [
                f"A retrain of '{self.model.stem}' learns from {_count(self.corrections, 'correction')} and "
                f"{_count(self.confirmations, 'confirmation')}:"
            ]
            for folder, counts in sorted(self.folders.items()):
                lines.append(f"  {folder}: {counts[CORRECTION]} corrected, {counts[CONFIRMATION]} confirmed")
            if self.new_classes:
                lines.append(f"New categories: {', '.join(self.new_classes)}.")
        if self.left_out:
            lines.append(
                f"{_count(self.left_out, 'reviewed photo')} that other models sorted "
                f"{'is' if self.left_out == 1 else 'are'} left out: they teach those models."
            )
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "model": str(self.model),
            "corrections": self.corrections,
            "confirmations": self.confirmations,
            "folders": {k: dict(v) for k, v in sorted(self.folders.items())},
            "new_classes": list(self.new_classes),
            "left_out": self.left_out,
        }


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def plan_retrain(store: CorrectionStore, model: Path) -> RetrainPlan:
    """The reviews a retrain of ``model`` would use."""
    config = read_config(model)
    classes = config.classes
    trained_here = config.replay is not None or bool(config.training.get("data"))
    reviews, left_out = family_reviews(store, model)
    folders: dict[str, Counter[str]] = {}
    for c in reviews:
        folders.setdefault(str(c.output) if c.output else "(folder not recorded)", Counter())[c.kind] += 1
    new = tuple(sorted({c.label for c in reviews} - set(classes)))
    return RetrainPlan(model, tuple(reviews), new, left_out, folders, trained_here)


def reviews_for_sorting(db: Path, model: Path, output: Path) -> tuple[tuple[Correction, ...], tuple[Path, ...]]:
    """For a sort with ``model`` into ``output``: the reviews that recalibrate the model (its
    family's), and the photos of ``output`` the user reviewed, which sorting a folder of the
    output leaves where the user put them. Nothing (and no store made) before any review."""
    if not db.exists():
        return (), ()
    with CorrectionStore(db) as store:
        family, _ = family_reviews(store, model)
        here = tuple(c.sorted_path for c in store.standing_in(output.expanduser().resolve()))
    return tuple(family), here
