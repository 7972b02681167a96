"""Retrain a bundle with the user's corrections and compare it with the old one, side by side.

The validation photos are the old model's own (same data, same seed, same leak-free split; the
fingerprint proves it), and corrections only ever join the training side, so the two accuracies
are comparable. The old bundle is never touched: rolling back is picking it again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sorter.errors import UsageError
from sorter.files.corrections import CORRECTION, CorrectionStore
from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.jobs.reviews import plan_retrain
from sorter.knobs import knobs
from sorter.learn.datasets import LabelledData, Sample, fingerprint, load_origin, split
from sorter.learn.evaluate import measure
from sorter.model.bundle import Bundle, lineage, load_bundle
from sorter.model.replay import Replay
from sorter.train.features import recipes_for
from sorter.train.recipe import ProgressFn, TrainSettings
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
    confirmations: int = 0
    seconds: float = 0.0
    training_data: str = "photos"
    """``photos``: the original training photos; ``replay``: the features the old bundle keeps
    of them (the photos were not at hand)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "old_model": str(self.old_path),
            "new_model": str(self.new_path),
            "corrections": self.corrections,
            "confirmations": self.confirmations,
            "seconds": self.seconds,
            "same_validation_set": self.same_validation,
            "validation_accuracy": {"old": round(self.old_valid_accuracy, 4), "new": round(self.new_valid_accuracy, 4)},
            "corrected_accuracy": {
                "old": round(self.old_corrected_accuracy, 4),
                "new": round(self.new_corrected_accuracy, 4),
            },
            "new_classes": self.new_classes,
            "training_data": self.training_data,
        }


REPLAY_FOLDER = "replay"
"""Where a replay row's photo would be: never read (its features come from the bundle)."""
MAX_REPEATS = 10


def user_repeats(n_train: int, n_user: int, share: float | None = None) -> int:
    """How many times each user photo's rows are repeated so the user's photos make ``share``
    of each head epoch (default: the share the review's refit gives them,
    :attr:`~sorter.knobs.Knobs.user_share`), so thirty of them still count beside thousands of
    original photos (measured: benchmarks/correction_loop.py)."""
    share = knobs().user_share if share is None else share
    if n_user == 0:
        return 1
    return int(min(MAX_REPEATS, max(1, round(share * n_train / ((1.0 - share) * n_user)))))


def retrain(
    model_path: Path,
    out: Path,
    store: CorrectionStore,
    *,
    data: LabelledData | None = None,
    device: str = "cpu",
    progress: ProgressFn | None = None,
    settings: TrainSettings | None = None,
    feature_cache: Path | None = None,
    from_photos: bool = False,
) -> RetrainResult:
    """A new bundle from the old one's training data plus the user's corrected and confirmed
    photos: they are oversampled to a fixed share of each epoch and kept as its exemplar memory.

    The old training data comes from the features the bundle keeps of it (its replay), so only
    the user's photos go through the network and a retrain takes seconds; the photos themselves
    are read only when asked (``from_photos``, or ``data`` given) or when the bundle keeps no
    replay.

    Args:
        feature_cache: features of unchanged photos are read from (and added to) this cache.
        from_photos: train on the original photos again (slow without their cached features).
    """
    old = load_bundle(model_path)
    facts = dict(old.config.training)
    seed = int(facts.get("seed", 42))
    replay = None
    if data is None:
        data, replay = _original_data(old, str(facts.get("data", "")), from_photos=from_photos)
    source = "photos" if replay is None else "replay"
    valid_pct = float(facts.get("valid_pct", 0.2))
    train_idx, valid_idx = split(data, valid_pct, seed)
    valid = [data.samples[i] for i in valid_idx]
    # the replay's validation rows are the old model's validation photos by construction
    same = source == "replay" or fingerprint(valid) == facts.get("valid_fingerprint")

    reviewed = list(plan_retrain(store, model_path).reviews)
    if not reviewed:
        raise UsageError(
            f"No photo that '{model_path.stem}' sorted has been corrected or confirmed yet: review some first."
        )
    user = [Sample(c.stored, (c.label,)) for c in reviewed]
    valid_names = {s.path.name for s in valid}
    training_extra = [s for s in user if s.path.name not in valid_names]
    classes = tuple(sorted({*data.classes, *(s.labels[0] for s in user)}))
    combined = LabelledData((*data.samples, *training_extra), classes, data.multi_label, data.origin)
    extra_idx = list(range(len(data.samples), len(combined.samples)))
    times = user_repeats(len(train_idx), len(extra_idx))

    scratch = None
    if replay is not None:
        # The replay's rows go into the feature cache under the keys training asks for (they are
        # the very features it computed: one view each), so only the user's photos run through
        # the network, and only once: the cache keeps them for the next retrain.
        if feature_cache is None:
            scratch = tempfile.TemporaryDirectory(prefix="sorter-replay-")
            feature_cache = Path(scratch.name) / "features.sqlite"
        _seed_cache(feature_cache, old, data, replay, seed)
    settings = settings or TrainSettings(
        architecture=old.config.architecture,
        size=old.config.input_size[0],
        resize=old.config.resize,
        # the replay holds one view of each photo: as many head steps as all its views gave
        epochs=int(facts.get("epochs", 12)) * (max(1, int(facts.get("views", 3))) if replay is not None else 1),
        views=1 if replay is not None else int(facts.get("views", 3)),
        # the body is kept, fine-tuned or not: a retrain refits the head (seconds, not minutes)
        fine_tune_epochs=0,
        seed=seed,
        device=device,
        mean=old.config.mean,
        std=old.config.std,
        people_folder=old.config.people.folder if old.config.people is not None else None,
    )
    corrections = sum(1 for c in reviewed if c.kind == CORRECTION)
    try:
        trained = fit_and_export(
            combined,
            out,
            settings,
            progress=progress,
            split_override=(train_idx + extra_idx, valid_idx),
            init_state=old.state,
            valid_pct=valid_pct,
            extra_facts={
                "retrained_from": str(model_path),
                "lineage": lineage(model_path),
                "corrections": corrections,
                "confirmations": len(reviewed) - corrections,
                "user_repeats": times,
                "training_data": source,
                # the body the old bundle's recipe made (its last blocks trained, perhaps) is kept
                # as it is; only the head is fitted again, in seconds
                "body_recipe": str(facts.get("body_recipe", facts.get("recipe", "head"))),
            },
            feature_cache=feature_cache,
            repeats=dict.fromkeys(extra_idx, times),
            memory_idx=extra_idx,
        )
    finally:
        if scratch is not None:
            scratch.cleanup()
    new = load_bundle(trained.path)
    features = trained.result.features if trained.result is not None else None
    corrected = [s for s, c in zip(user, reviewed, strict=True) if c.kind == CORRECTION]
    corrected_set = set(corrected)
    corrected_idx = [i for i, s in zip(extra_idx, training_extra, strict=True) if s in corrected_set]
    same_body = features is not None and old.feature_recipe == new.feature_recipe
    # The body did not change: both models are scored from the same cached features.
    xv = np.stack([features.clean[i].numpy() for i in valid_idx]) if features is not None and same_body else None
    xc = None
    if features is not None and same_body and corrected_idx:
        xc = np.stack([features.clean[i].numpy() for i in corrected_idx])
    samples = [combined.samples[i] for i in corrected_idx] if same_body else corrected
    old_valid = measure(old, valid, xv, device=device).accuracy
    old_corrected = measure(old, samples, xc, device=device).accuracy if samples else 0.0
    # Without the memory: each corrected photo is in it and would only find itself.
    new_corrected = measure(new, samples, xc, memory=False, device=device).accuracy if samples else 0.0
    return RetrainResult(
        old_path=model_path,
        new_path=trained.path,
        corrections=corrections,
        same_validation=same,
        old_valid_accuracy=old_valid,
        new_valid_accuracy=trained.evaluation.accuracy,
        old_corrected_accuracy=old_corrected,
        new_corrected_accuracy=new_corrected,
        new_classes=[c for c in classes if c not in old.config.classes],
        confirmations=len(reviewed) - corrections,
        seconds=trained.report["timings"]["total_seconds"],
        training_data=source,
    )


def _original_data(old: Bundle, origin: str, *, from_photos: bool = False) -> tuple[LabelledData, Replay | None]:
    """The features the old bundle keeps of its training photos (returned too), or the photos
    themselves when asked or when it keeps none; neither: the one sentence of :func:`load_origin`."""
    replay = None if from_photos else old.read_replay()
    if replay is None:
        return load_origin(origin), None
    classes = old.config.classes
    samples = tuple(
        Sample(
            Path(REPLAY_FOLDER) / replay.hex(row),
            (classes[int(replay.labels[row])],),
            is_valid=bool(replay.valid[row]),
            sha256=replay.hex(row),
        )
        for row in range(len(replay))
    )
    labels = tuple(sorted({s.labels[0] for s in samples}))
    return LabelledData(samples, labels, False, origin), replay


def _seed_cache(path: Path, old: Bundle, data: LabelledData, replay: Replay, seed: int) -> None:
    """Store the replay's rows (the rows of ``data``) under the keys the training will ask for:
    training photos as their first augmented view, validation photos as their clean view."""
    recipes = recipes_for(old.feature_recipe, seed)
    augmented, clean = {}, {}
    for row, sample in enumerate(data.samples):
        key_sha = sample.sha256 or ""
        if sample.is_valid:
            clean[(key_sha, CLEAN_VIEW)] = replay.features[row]
        else:
            augmented[(key_sha, 0)] = replay.features[row]
    with FeatureCache.open(path) as cache:
        for recipe, rows in ((recipes["augmented"], augmented), (recipes["clean"], clean)):
            have = cache.get_many(recipe, list(rows))
            cache.put_many(recipe, {key: row for key, row in rows.items() if key not in have})
