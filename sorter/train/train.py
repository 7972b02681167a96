"""Train a bundle from labelled photos: split, fit, measure through the sorting path, export.

Shaped like torchvision's classification reference: ``get_args_parser()`` and ``main(args)``, with
small functions for each step so the CLI, the GUI's train dialog and the tests share them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sorter.files.feature_cache import FeatureCache
from sorter.fsutil import replace_atomically
from sorter.learn.calibration import fit_temperature, precision_table
from sorter.learn.datasets import LabelledData, fingerprint, load_data, split
from sorter.learn.evaluate import Evaluation, choose_threshold, measure
from sorter.learn.memory import tune_memory
from sorter.learn.ood import class_means, fit_threshold
from sorter.learn.replay import cap_rows, sha_bytes
from sorter.model.bundle import Head, load_bundle, save_bundle
from sorter.model.calibration import Calibration
from sorter.model.config import OodSettings
from sorter.model.memory import MAX_EXEMPLARS, ExemplarMemory
from sorter.model.people import PeopleRule
from sorter.model.replay import Replay
from sorter.model.scoring import score_features
from sorter.train.engine import TrainResult, train
from sorter.train.features import sample_sha
from sorter.train.finetune import fine_tune_step
from sorter.train.ladder import STRONGER, climb
from sorter.train.recipe import ProgressFn, TrainSettings
from sorter.train_args import DEFAULT_BUDGET_S, add_train_arguments


@dataclass
class Trained:
    path: Path
    report_path: Path
    report: dict[str, Any]
    evaluation: Evaluation
    result: TrainResult | None = None


def fit_and_export(
    data: LabelledData,
    out: Path,
    settings: TrainSettings,
    *,
    progress: ProgressFn | None = None,
    split_override: tuple[list[int], list[int]] | None = None,
    init_state: Any = None,
    valid_pct: float = 0.2,
    extra_facts: dict[str, Any] | None = None,
    overwrite: bool = False,
    feature_cache: Path | None = None,
    repeats: dict[int, int] | None = None,
    memory_idx: list[int] | None = None,
) -> Trained:
    """Train, choose the unsure threshold on validation photos, write bundle and report.

    Args:
        feature_cache: the on-disk feature cache (None computes every feature).
        repeats: sample index → weight of its rows in each head epoch (the user's photos).
        memory_idx: samples to keep as the bundle's exemplar memory (the user's photos).
    """
    from sorter.errors import UsageError

    out = out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")
    if out.exists() and not overwrite:
        raise UsageError(f"'{out}' already exists; choose another name (the old model is kept).")
    if settings.people_folder is not None and (data.multi_label or settings.people_folder not in data.classes):
        raise UsageError(
            f"Photos of people can go only to one of the categories ({', '.join(data.classes)}), "
            f"not to '{settings.people_folder}'."
        )
    train_idx, valid_idx = split_override or split(data, valid_pct, settings.seed)
    cache = FeatureCache.open(feature_cache) if feature_cache is not None else None
    started = time.perf_counter()

    def train_step(step: TrainSettings) -> TrainResult:
        return train(
            data,
            train_idx,
            valid_idx,
            step,
            progress,
            init_state=init_state,
            feature_cache=cache,
            repeats=repeats,
            memory_idx=memory_idx,
        )

    try:
        result = train_step(settings)
        if settings.ladder and init_state is None:
            result = climb(result, settings, started, train_step, progress)
        if (settings.fine_tune_epochs > 0 or settings.fine_tune_budget) and init_state is None:
            with tempfile.TemporaryDirectory(prefix="sorter-fine-tune-") as scratch:
                result = fine_tune_step(
                    result, data, train_idx, valid_idx, memory_idx or [], settings, started, progress, scratch
                )
    finally:
        if cache is not None:
            cache.close()
    valid = [data.samples[i] for i in valid_idx]
    memory = _memory(data, result, valid_idx, memory_idx or [])
    anchors, statistics = _statistics(data, result, train_idx, valid_idx, settings, memory)
    result.config = replace(result.config, **statistics)
    replay = _replay(data, result, train_idx, valid_idx, memory_idx or [], settings.seed)

    # Measure exactly what sorting will do: the bundle as written, loaded back, scored by the
    # sorting code (from the validation photos' cached features when the body did not change).
    with tempfile.TemporaryDirectory(prefix="sorter-export-") as tmp:
        draft = load_bundle(
            save_bundle(
                Path(tmp) / "draft.safetensors", result.model, result.config, memory=memory, ood_anchors=anchors
            )
        )
        xv = None
        if result.features is not None:
            xv = np.stack([result.features.clean[i].numpy() for i in valid_idx])
        measured = measure(draft, valid, xv, device=settings.device)
        evaluation = measured.at()
        threshold = choose_threshold(evaluation)
        if result.config.multi_label:
            evaluation = measured.at(threshold)
    facts = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": data.origin,
        "seed": settings.seed,
        "valid_pct": valid_pct,
        "n_train": len(train_idx),
        "n_valid": len(valid_idx),
        "valid_fingerprint": fingerprint(valid),
        "epochs": settings.epochs,
        "views": settings.views,
        "fine_tune_epochs": settings.fine_tune_epochs,
        "recipe": result.recipe,
        "tail_epochs": settings.tail_epochs if result.recipe == "tail" else 0,
        "budget_s": settings.budget_s,
        "tried": [a.to_json() for a in result.attempts],
        "lr": result.lr,
        "weights": str(settings.weights) if settings.weights else f"embedded {result.config.architecture} ImageNet",
        "metrics": {
            "accuracy": round(evaluation.accuracy, 4),
            **({"fbeta": round(evaluation.fbeta or 0.0, 4)} if evaluation.multi_label else {}),
        },
        "seconds": round(result.seconds, 1),
        "features_computed": result.computed_features,
        # the family a model's reviews belong to: a retrain passes its model's on (sorter.jobs.reviews)
        "lineage": uuid.uuid4().hex,
        **(extra_facts or {}),
    }
    config = replace(result.config.with_training(**facts), threshold=threshold)
    if settings.people_folder is not None:
        config = replace(config, people=PeopleRule(settings.people_folder))
    path = save_bundle(
        out, result.model, config, overwrite=overwrite, memory=memory, ood_anchors=anchors, replay=replay
    )
    report = {
        **evaluation.to_json(),
        "model": str(path),
        "threshold": threshold,
        "valid_fingerprint": facts["valid_fingerprint"],
        "valid_files": [str(s.path) for s in valid],
        "timings": {
            "total_seconds": round(result.seconds, 1),
            "feature_seconds": round(result.feature_seconds, 1),
            "head_seconds": round(result.head_seconds, 1),
            "fine_tune_seconds": round(result.fine_tune_seconds, 1),
        },
        "recipe": result.recipe,
        "tried": [a.to_json() for a in result.attempts],
        "training": facts,
    }
    report_path = path.with_suffix(".report.json")
    replace_atomically(report_path, json.dumps(report, indent=2).encode())
    if not evaluation.multi_label:
        plot_confusion(evaluation, path.with_suffix(".confusion.png"))
    return Trained(path, report_path, report, evaluation, result)


def _memory(
    data: LabelledData, result: TrainResult, valid_idx: list[int], memory_idx: list[int]
) -> ExemplarMemory | None:
    """The user's photos as an exemplar memory, its strength tuned on them and the validation set."""
    if not memory_idx or result.features is None or result.config.multi_label:
        return None
    memory_idx = memory_idx[-MAX_EXEMPLARS:]  # the most recent photos, should a user label thousands
    index = {c: i for i, c in enumerate(result.config.classes)}
    keys = np.stack([result.features.clean[i].numpy() for i in memory_idx]).astype(np.float32)
    labels = np.array([index[data.samples[i].labels[0]] for i in memory_idx], dtype=np.int64)
    return tune_memory(
        keys,
        labels,
        _head(result),
        np.stack([result.features.clean[i].numpy() for i in valid_idx]),
        np.array([index[data.samples[i].labels[0]] for i in valid_idx]),
    )


def _replay(
    data: LabelledData,
    result: TrainResult,
    train_idx: list[int],
    valid_idx: list[int],
    user_idx: list[int],
    seed: int,
) -> Replay | None:
    """The rows a later retrain fits on instead of the photos (see :mod:`sorter.learn.replay`):
    the first feature view of every original training photo, the clean view of every validation
    photo. The user's own photos are left out: the corrections store brings them back."""
    if result.features is None or result.config.multi_label or not valid_idx:
        return None
    index = {c: i for i, c in enumerate(result.config.classes)}
    user = set(user_idx)
    train_rows = [(row, i) for row, i in enumerate(train_idx) if i not in user]
    order = [i for _, i in train_rows] + list(valid_idx)
    labels = np.array([index[data.samples[i].labels[0]] for i in order], dtype=np.int64)
    valid = np.array([False] * len(train_rows) + [True] * len(valid_idx))
    keep = [int(k) for k in cap_rows(labels, valid, seed=seed)]  # first: a capped set hashes no more

    cached = result.features

    def feature(k: int) -> torch.Tensor:
        return cached.train[train_rows[k][0]] if k < len(train_rows) else cached.clean[order[k]]

    shas = cached.shas
    features = torch.stack([feature(k) for k in keep]).numpy()
    sha = np.stack([sha_bytes(shas.get(order[k]) or sample_sha(data.samples[order[k]])) for k in keep])
    return Replay(features.astype(np.float16), labels[keep], valid[keep], sha)


def _statistics(
    data: LabelledData,
    result: TrainResult,
    train_idx: list[int],
    valid_idx: list[int],
    settings: TrainSettings,
    memory: ExemplarMemory | None,
) -> tuple[torch.Tensor | None, dict[str, Any]]:
    """Class means for the fit ("none of these") and the calibration, from cached features.

    Means come from the training photos' features, the fit threshold and the calibration from
    the validation photos', so neither is measured on the photos it was made from.
    """
    if result.features is None or result.config.multi_label or not valid_idx:
        return None, {}
    index = {c: i for i, c in enumerate(result.config.classes)}
    k = len(result.config.classes)
    # as many rows a photo as the features have views (a fine-tune computes one view again)
    views = len(result.features.train) // max(1, len(train_idx))
    train_labels = np.array([index[data.samples[i].labels[0]] for i in train_idx] * views)
    means = class_means(result.features.train.numpy(), train_labels, k)
    xv = np.stack([result.features.clean[i].numpy() for i in valid_idx])
    yv = np.array([index[data.samples[i].labels[0]] for i in valid_idx])
    head = _head(result)
    logits = xv @ head.weight.T + head.bias
    temperature = fit_temperature(logits, yv)
    scored = score_features(xv, head, memory=memory, temperature=temperature, anchors=means)
    per_class, overall = precision_table(scored.probs, yv)
    calibration = Calibration(temperature, per_class, overall)
    ood = OodSettings(threshold=round(fit_threshold(scored.fit), 4), anchors="means", size=k)
    return torch.from_numpy(means), {"ood": ood, "calibration": calibration.to_json()}


def _head(result: TrainResult) -> Head:
    head = result.model.head
    return Head(head.weight.detach().float().numpy(), head.bias.detach().float().numpy())


def plot_confusion(evaluation: Evaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    matrix = np.array(evaluation.confusion)
    k = len(evaluation.classes)
    # wide enough for its title whatever the number of classes (a two-class matrix cut it off)
    side = max(3.6, 1.0 + 0.7 * k)
    fig, ax = plt.subplots(figsize=(side, side), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(k), evaluation.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), evaluation.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(f"accuracy {evaluation.accuracy:.1%}\non {evaluation.n} validation photos", fontsize=10)
    top = matrix.max() if matrix.size else 0
    for i in range(k):
        for j in range(k):
            ax.text(
                j, i, str(matrix[i, j]), ha="center", va="center", color="white" if matrix[i, j] > top / 2 else "black"
            )
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    replace_atomically(path, png.getvalue())


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """The recipe the options ask for. With a time budget (5 minutes by default on a CPU), the
    head on the default body first, then on the stronger one if the time left allows
    (:mod:`sorter.train.ladder`); a GPU trains the stronger one at once. ``--quick``,
    ``--budget 0``, cluster features and a chosen ``--arch``, ``--size`` or ``--weights`` train
    that one body alone. ``--tail-epochs`` adds the last blocks (:mod:`sorter.train.tail`). Then,
    within the budget (or at once on a GPU), the whole network is fine-tuned
    (:mod:`sorter.train.finetune`) unless the run is plain."""
    from sorter.model.classifier import resolve_device

    device = resolve_device(args.device)
    budget = getattr(args, "budget", None)
    plain = args.quick or budget == 0 or getattr(args, "cluster", None) or args.views == 0
    chosen = args.arch is not None or args.size is not None or args.weights
    if budget is None and device.type == "cpu":
        budget = DEFAULT_BUDGET_S
    strong_at_once = device.type != "cpu" and not chosen and not plain
    architecture = args.arch or (STRONGER[0] if strong_at_once else "efficientnet_lite0")
    size = args.size or (STRONGER[1] if strong_at_once else 224)
    return TrainSettings(
        architecture=architecture,
        weights=Path(args.weights) if args.weights else None,
        size=size,
        epochs=args.epochs if args.epochs is not None else (8 if args.quick else 12),
        views=args.views if args.views is not None else (1 if args.quick else 3),
        fine_tune_epochs=args.fine_tune_epochs,
        seed=args.seed,
        device=str(device),
        tail_epochs=0 if plain else getattr(args, "tail_epochs", 0),
        ladder=not plain and not chosen and device.type == "cpu",
        fine_tune_budget=not plain and not args.fine_tune_epochs,
        people_folder=getattr(args, "people", None),
        budget_s=None if plain else budget,
    )


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train a Sorter model bundle")
    parser.add_argument("data", nargs="+", help="folder(s) of class folders, or a CSV file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--csv", help="CSV of labels (paths relative to DATA)")
    parser.add_argument("--multi-label", action="store_true")
    parser.add_argument("--label-delim", default=None)
    add_train_arguments(parser)
    return parser


def load_training_data(args: argparse.Namespace) -> LabelledData:
    delim = args.label_delim if args.label_delim is not None else (" " if args.multi_label else None)
    return load_data(args.data, csv_file=Path(args.csv) if args.csv else None, label_delim=delim)


def main(args: argparse.Namespace, progress: ProgressFn | None = None, feature_cache: Path | None = None) -> Trained:
    data = load_training_data(args)
    return fit_and_export(
        data,
        Path(args.out),
        settings_from_args(args),
        progress=progress,
        valid_pct=args.valid_pct,
        feature_cache=feature_cache,
    )
