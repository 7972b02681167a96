"""Retrain a bundle with the user's corrections and compare it with the old one, side by side.

The validation photos are the old model's own (same data, same seed, same leak-free split; the
fingerprint proves it), and corrections only ever join the training side, so the two accuracies
are comparable. The old bundle is never touched: rolling back is picking it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sorter.core.classifier import Classifier
from sorter.core.corrections import CorrectionStore
from sorter.core.datasets import LabelledData, Sample, fingerprint, load_origin, split
from sorter.core.evaluate import evaluate
from sorter.errors import UsageError
from sorter.model.bundle import load_bundle
from sorter.train.engine import ProgressFn, TrainSettings
from sorter.train.train import fit_and_export


@dataclass
class RetrainResult:
    old_path: Path
    new_path: Path
    corrections: int
    same_validation: bool
    old_valid_accuracy: float
    new_valid_accuracy: float
    old_corrected_accuracy: float
    new_corrected_accuracy: float
    new_classes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "old_model": str(self.old_path),
            "new_model": str(self.new_path),
            "corrections": self.corrections,
            "same_validation_set": self.same_validation,
            "validation_accuracy": {"old": round(self.old_valid_accuracy, 4), "new": round(self.new_valid_accuracy, 4)},
            "corrected_accuracy": {
                "old": round(self.old_corrected_accuracy, 4),
                "new": round(self.new_corrected_accuracy, 4),
            },
            "new_classes": self.new_classes,
        }


def _accuracy_on(classifier: Classifier, samples: list[Sample]) -> float:
    if not samples:
        return 0.0
    return evaluate(classifier, samples).accuracy


def retrain(
    model_path: Path,
    out: Path,
    store: CorrectionStore,
    *,
    data: LabelledData | None = None,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    settings: TrainSettings | None = None,
) -> RetrainResult:
    old = load_bundle(model_path)
    facts = dict(old.config.training)
    data = data or load_origin(str(facts.get("data", "")))
    seed = int(facts.get("seed", 42))
    valid_pct = float(facts.get("valid_pct", 0.2))
    train_idx, valid_idx = split(data, valid_pct, seed)
    valid = [data.samples[i] for i in valid_idx]
    same = fingerprint(valid) == facts.get("valid_fingerprint")

    corrections = store.latest_per_photo()
    if not corrections:
        raise UsageError("There are no corrections yet: correct some photos first.")
    corrected = [Sample(c.stored, (c.corrected,)) for c in corrections]
    valid_names = {s.path.name for s in valid}
    training_extra = [s for s in corrected if s.path.name not in valid_names]
    classes = tuple(sorted({*data.classes, *(s.labels[0] for s in corrected)}))
    combined = LabelledData((*data.samples, *training_extra), classes, data.multi_label, data.origin)
    extra_idx = list(range(len(data.samples), len(combined.samples)))

    settings = settings or TrainSettings(
        architecture=old.config.architecture,
        size=old.config.input_size[0],
        resize=old.config.resize,
        epochs=int(facts.get("epochs", 12)),
        views=int(facts.get("views", 3)),
        fine_tune_epochs=int(facts.get("fine_tune_epochs", 0)),
        seed=seed,
        device=device,
        mean=old.config.mean,
        std=old.config.std,
    )
    trained = fit_and_export(
        combined,
        out,
        settings,
        progress=progress,
        split_override=(train_idx + extra_idx, valid_idx),
        init_state=old.state,
        valid_pct=valid_pct,
        extra_facts={"retrained_from": str(model_path), "corrections": len(corrections)},
    )
    dev = torch.device(device)
    old_cls = Classifier(old, dev)
    new_cls = Classifier(load_bundle(trained.path), dev)
    return RetrainResult(
        old_path=model_path,
        new_path=trained.path,
        corrections=len(corrections),
        same_validation=same,
        old_valid_accuracy=evaluate(old_cls, valid).accuracy,
        new_valid_accuracy=trained.evaluation.accuracy,
        old_corrected_accuracy=_accuracy_on(old_cls, corrected),
        new_corrected_accuracy=_accuracy_on(new_cls, corrected),
        new_classes=[c for c in classes if c not in old.config.classes],
    )
