"""Can the folders be believed on photos unlike the training photos? Prints one table.

For each pair, a model is trained on one source (or the shipped one is used) and sorts a folder,
as a user would, through ``sort_folder`` at the default setting ("sort only when at least 95 %
sure"). Then a simulated user reviews the photos in the review dialog's own order
(``build_queue``; wrong ones corrected, right ones confirmed), 10, then 30, then 60 of them, and
``resort`` re-sorts the rest after each step. Measured on the photos *not* reviewed: the share
sorted into a category folder (coverage), the share of those that are right (precision), and
top-1 accuracy of the re-scored probabilities, and the oracle: the most any cut of their
confidence could sort at 90 % right (after a review; no rule that sorts by confidence beats it).
Then a retrain from the bundle's replay on a fresh data folder (nothing cached), timed.

Pairs:

* ``pacs-art``: trained on 80 % of ``pacs_photo`` (7 classes), sorts the 1,050 ``pacs_art``
  paintings (shifted);
* ``pacs-sketch``: the same model sorts the 680 ``pacs_sketch`` sketches (a second shifted set:
  a rule is chosen on both, never on one);
* ``pacs-photo``: the same model sorts the other 20 % of ``pacs_photo`` (in-source control);
* ``product-scene``: trained on furniture product shots (white background), sorts room scenes
  of the same three classes (shifted);
* ``furniture-valid``: the shipped furniture model's own validation photos, scored from the
  features its bundle keeps (in-source control of the shipped model, at its 97 % open-set target).

One sequence of reviews is one draw: which photos the review shows next depends on every answer
before it, and after 30 reviews the paintings' estimate sorted 37 to 67 % of the photos it decided
in eight draws. ``--subsets 1,2,...`` runs each pair once per seed on a random 80 % of its photos
and prints, per pair and N, the mean share sorted, the smallest, and the precision of all the
runs' sorted photos together: a rule is chosen on those, on both shifted sets.

``--per-click``: the simulated user's queue is built again after every review, as the review
dialog builds it after every click, instead of once per step (10, 30, 60).

``--recipe default`` trains the models as a default ``sorter train`` does (the 5-minute budget
kept Lite1@240 for ``pacs_photo``), not with the head alone on Lite0: a rule is chosen with both.

Run: ``python benchmarks/trust.py [--pairs pacs-art,pacs-sketch,pacs-photo,product-scene,furniture-valid]
[--recipe head|default] [--subsets 1,2,3,4,5,6,7,8] [--n 10,30,60] [--per-click] [--work DIR]
[--plot docs/trust.png]``
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.correction_loop import BCS, EXTRA, F7, samples, white_background  # noqa: E402
from sorter.files.corrections import CorrectionStore, confirm, correct  # noqa: E402
from sorter.files.journal import Journal  # noqa: E402
from sorter.jobs.events import drive  # noqa: E402
from sorter.jobs.policy import policy_for  # noqa: E402
from sorter.jobs.rescore import Rescored, Rescoring, rescore  # noqa: E402
from sorter.jobs.resort import resort  # noqa: E402
from sorter.jobs.review_queue import build_queue, photos_in_order  # noqa: E402
from sorter.jobs.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.knobs import DEFAULT, overridden  # noqa: E402
from sorter.learn.datasets import LabelledData, Sample, load_data  # noqa: E402
from sorter.learn.evidence import gather  # noqa: E402
from sorter.learn.shift import TypicalityIndex, folder_shift  # noqa: E402
from sorter.model.bundle import Bundle, load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402
from sorter.model.scoring import score  # noqa: E402
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER  # noqa: E402
from sorter.train.recipe import TrainSettings  # noqa: E402
from sorter.train.retrain import retrain  # noqa: E402
from sorter.train.train import fit_and_export, get_args_parser, settings_from_args  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
NOT_SORTED = (UNSURE_FOLDER, OTHER_FOLDER)


@dataclass
class Row:
    pair: str
    n: int
    photos: int
    shifted: bool | None
    atypical: float
    coverage: float
    precision: float
    accuracy: float
    plain: tuple[float, float] = (float("nan"), float("nan"))
    """Coverage and precision of the same re-score without holding back atypical photos."""
    stated: tuple[float, float] = (float("nan"), float("nan"))
    """The precision the re-sort stated (expected, lower bound); NaN: it stated none."""
    oracle: float = float("nan")
    """The most a confidence cut could sort at 90 % right, knowing the truth (see :func:`_oracle`)."""
    retrain_s: float = float("nan")
    notes: list[str] = field(default_factory=list)


def split_source(data: LabelledData, held_share: float, seed: int = 3) -> tuple[list[Sample], list[Sample]]:
    """Per class, ``held_share`` of the photos held out of training (an in-source folder)."""
    rng = random.Random(seed)
    by: dict[str, list[Sample]] = {}
    for s in data.samples:
        by.setdefault(s.labels[0], []).append(s)
    train, held = [], []
    for _, group in sorted(by.items()):
        group = sorted(group, key=lambda s: s.path.name)
        rng.shuffle(group)
        k = int(len(group) * held_share)
        held += group[:k]
        train += group[k:]
    return train, held


def recipe_settings(recipe: str) -> TrainSettings:
    """``head``: the head alone on Lite0 (what the tables before 2026-12-06 used); ``default``:
    what ``sorter train DIR --out M`` builds on this machine (the 5-minute budget: Lite1 if it is
    not worse, then the fine-tune if the time left allows)."""
    if recipe == "head":
        return TrainSettings()
    parser = get_args_parser()
    return settings_from_args(parser.parse_args(["unused", "--out", "unused"]))


def train_model(name: str, train: list[Sample], work: Path, recipe: str = "head") -> Path:
    out = work / (f"{name}.safetensors" if recipe == "head" else f"{name}-{recipe}.safetensors")
    if out.exists():
        return out
    classes = tuple(sorted({s.labels[0] for s in train}))
    data = LabelledData(tuple(train), classes, False, f"folder:{work / 'not-here'}")
    started = time.perf_counter()
    trained = fit_and_export(data, out, recipe_settings(recipe), feature_cache=work / "train-features.sqlite")
    kept = [a.get("recipe") for a in trained.report.get("tried", []) if a.get("kept")]
    print(f"[{name}] {recipe}: kept {kept or 'the head'}, validation {trained.evaluation.accuracy:.1%}", flush=True)
    print(f"[{name}] trained on {len(train)} photos in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def user_folder(samples_: Sequence[Sample], folder: Path) -> dict[str, str]:
    """Copies the photos under neutral names; returns name → true label."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, s in enumerate(samples_):
        name = f"{i:05d}{s.path.suffix.lower()}"
        shutil.copy2(s.path, folder / name)
        truth[name] = s.labels[0]
    return truth


def measure(out: Path, truth: dict[str, str], reviewed: set[str], accuracy: float) -> tuple[float, float, float]:
    """Coverage and precision of the folders, over the photos not reviewed, as they lie now."""
    with Journal.open(out, create=False, lock=False) as journal:
        where = {p.source.name: p.path.parent.name for p in journal.placements() if p.path.exists()}
    rest = [name for name in where if name not in reviewed]
    placed = [name for name in rest if where[name] not in NOT_SORTED]
    right = sum(where[name] == truth[name] for name in placed)
    return len(placed) / max(1, len(rest)), right / max(1, len(placed)), accuracy


def review(
    out: Path,
    bundle: Bundle,
    store: CorrectionStore,
    truth: dict[str, str],
    reviewed: set[str],
    n: int,
    per_click: bool,
) -> None:
    """The simulated user reviews photos of the review's queue until ``n`` are reviewed: wrong ones
    corrected, right ones confirmed. The queue is taken once, or (``per_click``) built again after
    every review, as the review dialog does."""
    while len(reviewed) < n:
        queue = photos_in_order(build_queue(out, bundle, store))
        with Journal.open(out, create=False, lock=False) as journal:
            source_of = {p.path: p.source.name for p in journal.placements()}
        todo = [path for path in queue if source_of[path] not in reviewed]
        if not todo:
            return
        for path in todo[: 1 if per_click else n - len(reviewed)]:
            name = source_of[path]
            reviewed.add(name)
            if path.parent.name != truth[name]:
                correct(out, path, truth[name], store)
            else:
                confirm(out, path, store)
        if not per_click:
            return


def run_pair(
    pair: str, model: Path, photos: Sequence[Sample], ns: list[int], work: Path, per_click: bool = False
) -> list[Row]:
    src, out = work / f"{pair}-photos", work / f"{pair}-sorted"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    truth = user_folder(photos, src)
    bundle = load_bundle(model)
    summary = drive(sort_folder(SortOptions(src, out), Classifier(bundle, torch.device("cpu"))), lambda e: None)
    shift = summary.shift or {}
    store_path = work / f"{pair}-corrections.sqlite"
    store_path.unlink(missing_ok=True)
    rows = []
    reviewed: set[str] = set()
    with CorrectionStore(store_path) as store:
        found = rescore(out, bundle, store)
        acc = _accuracy(found.photos, bundle.config.classes, truth, reviewed)
        shifted = bool(shift["shifted"]) if "shifted" in shift else None
        atypical = float(shift["atypical_share"]) if "atypical_share" in shift else float("nan")  # type: ignore[arg-type]
        rows.append(Row(pair, 0, len(truth), shifted, atypical, *measure(out, truth, reviewed, acc)))
        rows[-1].plain = _plain(found, truth, reviewed)
        print(f"[{pair}] cold: {rows[-1]}", flush=True)
        for n in ns:
            review(out, bundle, store, truth, reviewed, n, per_click)
            report = resort(out, bundle, store)
            found = rescore(out, bundle, store)
            acc = _accuracy(found.photos, bundle.config.classes, truth, reviewed)
            shifted = found.shift.shifted if found.shift is not None else None
            atypical = found.shift.share if found.shift is not None else float("nan")
            row = Row(pair, n, len(truth), shifted, atypical, *measure(out, truth, reviewed, acc))
            row.plain = _plain(found, truth, reviewed)
            row.oracle = _oracle(found.photos, bundle.config.classes, truth, reviewed)
            if found.estimate is not None:
                row.stated = (found.estimate.expected, found.estimate.bound)
                row.notes.append(found.estimate.sentence())
            row.notes.append(f"moved {len(report.moved)}")
            rows.append(row)
            print(f"[{pair}] N={n}: {row}", flush=True)
        with tempfile.TemporaryDirectory(prefix="sorter-trust-retrain-") as tmp:
            started = time.perf_counter()
            result = retrain(model, Path(tmp) / "new.safetensors", store, feature_cache=Path(tmp) / "f.sqlite")
            rows[-1].retrain_s = time.perf_counter() - started
            rows[-1].notes.append(f"retrain from {result.training_data}")
    return rows


def _plain(found: Rescoring, truth: dict[str, str], reviewed: set[str]) -> tuple[float, float]:
    """What the same re-score would sort without holding back photos unlike the training ones."""
    policy = replace(found.policy, typical_threshold=None)
    rest = [r for r in found.photos if r.placement.source.name not in reviewed]
    chosen = [(policy.decide(r.probs, r.fit)[0][0], truth[r.placement.source.name]) for r in rest]
    placed = [(c, t) for c, t in chosen if c not in NOT_SORTED]
    return len(placed) / max(1, len(rest)), sum(c == t for c, t in placed) / max(1, len(placed))


def _oracle(
    photos: Sequence[Rescored], classes: tuple[str, ...], truth: dict[str, str], reviewed: set[str], at: float = 0.9
) -> float:
    """The largest share of the photos not reviewed that a cut of the re-scored confidence could
    sort with ``at`` of them right, the cut chosen knowing every photo's truth: what no rule that
    sorts by confidence can beat."""
    confidence, right = _top1(photos, classes, truth, reviewed)
    return oracle_share(confidence, right, at) if len(right) else float("nan")


def oracle_share(confidence: np.ndarray, right: np.ndarray, at: float = 0.9) -> float:
    """The largest share of photos (at least one) that a cut of ``confidence`` sorts with ``at``
    of them ``right``."""
    hits = right[np.argsort(-confidence, kind="stable")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    good = np.flatnonzero(precision >= at)
    return float((good[-1] + 1) / len(hits)) if len(good) else 0.0


def _top1(
    photos: Sequence[Rescored], classes: tuple[str, ...], truth: dict[str, str], reviewed: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Over the photos not reviewed: each one's re-scored confidence, and whether its top class is right."""
    rest = [r for r in photos if r.placement.source.name not in reviewed]
    confidence = np.array([r.confidence for r in rest], dtype=np.float64)
    right = np.array([classes[int(np.argmax(r.probs))] == truth[r.placement.source.name] for r in rest], dtype=bool)
    return confidence, right


def _accuracy(photos: Sequence[Rescored], classes: tuple[str, ...], truth: dict[str, str], reviewed: set[str]) -> float:
    """Top-1 of the re-scored probabilities over the photos not reviewed (thresholds aside)."""
    _, right = _top1(photos, classes, truth, reviewed)
    return float(right.mean()) if len(right) else float("nan")


def furniture_valid(target: float = 0.97) -> Row:
    """The shipped model on its own validation photos, from the features its bundle keeps."""
    bundle = load_bundle(ROOT / "models" / "furniture.safetensors")
    replay = bundle.read_replay()
    assert replay is not None
    feats = replay.features[replay.valid].astype(np.float32)
    labels = replay.labels[replay.valid]
    index = TypicalityIndex.from_replay(replay)
    assert index is not None
    scored = score(bundle, feats, bundle.memory)
    evidence = gather(bundle.config, scored.probs, scored.fit, feats, None, index)
    assert evidence.untaught is not None
    shift = folder_shift(evidence.untaught)
    policy = policy_for(bundle.config, precision=target).under_shift(shift.shifted)
    decided = [policy.decide(*evidence.row(i))[0][0] for i in range(len(evidence))]
    classes = bundle.config.classes
    placed = [(d, classes[y]) for d, y in zip(decided, labels, strict=True) if d not in NOT_SORTED]
    accuracy = float((evidence.probs.argmax(1) == labels).mean())
    return Row(
        f"furniture-valid@{target:.0%}",
        0,
        len(labels),
        shift.shifted,
        shift.share,
        len(placed) / len(labels),
        sum(d == t for d, t in placed) / max(1, len(placed)),
        accuracy,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="pacs-art,pacs-sketch,pacs-photo,product-scene,furniture-valid")
    parser.add_argument("--n", default="10,30,60")
    parser.add_argument("--work", help="keeps trained models between runs (default: a temporary folder)")
    parser.add_argument("--plot", help="write a precision-coverage plot here (PNG)")
    parser.add_argument(
        "--recipe",
        choices=("head", "default"),
        default="head",
        help="how the models are trained: the head alone on Lite0, or what a default `sorter train` builds",
    )
    parser.add_argument(
        "--per-click",
        action="store_true",
        help="the simulated user's queue is built again after every review, as the review dialog's is",
    )
    parser.add_argument("--subsets", default="", help="seeds: run each pair on a random 80 %% of its photos per seed")
    parser.add_argument(
        "--knob",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="variant: decide with a constant of sorter.knobs.Knobs changed, e.g. adapt_after=10 (repeatable)",
    )
    args = parser.parse_args()
    changes = {name: _knob(name, value) for name, value in (k.split("=", 1) for k in args.knob)}
    with overridden(**changes) as tuned:
        if changes:
            print(f"variant: {changes}", flush=True)
        print(f"head adapts in a shifted folder after {tuned.adapt_after} reviews", flush=True)
        _run(args)


def _knob(name: str, value: str) -> object:
    """A knob's value from the command line, in the type of its default."""
    default = getattr(DEFAULT, name)
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(default, tuple):
        return tuple(type(default[0])(v) for v in value.split(","))
    return type(default)(value)


def _run(args: argparse.Namespace) -> None:
    ns = [int(x) for x in args.n.split(",")]
    pairs = args.pairs.split(",")
    seeds = [int(x) for x in args.subsets.split(",") if x]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sorter-trust-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    if {"pacs-art", "pacs-sketch", "pacs-photo"} & set(pairs):
        photo = load_data([DATASETS / "pacs_photo" / "images"])
        train, held = split_source(photo, 0.2)
        model = train_model("pacs", train, work, args.recipe)
        if "pacs-art" in pairs:
            rows += _runs(
                "pacs-art",
                model,
                load_data([DATASETS / "pacs_art" / "images"]).samples,
                ns,
                work,
                seeds,
                args.per_click,
            )
        if "pacs-sketch" in pairs:
            sketches = load_data([DATASETS / "pacs_sketch" / "images"]).samples
            rows += _runs("pacs-sketch", model, sketches, ns, work, seeds, args.per_click)
        if "pacs-photo" in pairs:
            rows += _runs("pacs-photo", model, held, ns, work, seeds, args.per_click)
    if "product-scene" in pairs:
        pool = [s for s in samples(F7, BCS) + samples(EXTRA, BCS) if not s.path.name.startswith("image_")]
        product = [s for s in pool if white_background(s.path)]
        scene = random.Random(7).sample([s for s in pool if not white_background(s.path)], 200)
        model = train_model("product", product, work, args.recipe)
        rows += _runs("product-scene", model, scene, ns, work, seeds, args.per_click)
    if "furniture-valid" in pairs:
        rows.append(furniture_valid())
    print()
    print(
        f"{'pair':<22} {'N':>3} {'photos':>6} {'shifted':>7} {'atypical':>8} {'sorted':>7} {'precision':>9} "
        f"{'accuracy':>8} {'stated (bound)':>15} {'no hold-back':>15} {'oracle':>6} {'retrain s':>9}  notes"
    )
    for r in rows:
        print(
            f"{r.pair:<22} {r.n:>3} {r.photos:>6} {r.shifted!s:>7} {r.atypical:>8.1%} {r.coverage:>7.1%} "
            f"{r.precision:>9.1%} {r.accuracy:>8.1%} {r.stated[0]:>6.1%} ({r.stated[1]:>6.1%}) "
            f"{r.plain[0]:>6.1%} / {r.plain[1]:>6.1%} {r.oracle:>6.1%} {r.retrain_s:>9.1f}  "
            f"{'; '.join(r.notes)}"
        )
    if seeds:
        pooled(rows)
    if args.plot:
        plot(rows, Path(args.plot))


def _runs(
    pair: str, model: Path, photos: Sequence[Sample], ns: list[int], work: Path, seeds: list[int], per_click: bool
) -> list[Row]:
    """One run on all of ``photos``, or one per seed on a random 80 % of them."""
    if not seeds:
        return run_pair(pair, model, photos, ns, work, per_click)
    rows = []
    for seed in seeds:
        subset = random.Random(seed).sample(list(photos), int(0.8 * len(photos)))
        rows += run_pair(f"{pair}~{seed}", model, subset, ns, work, per_click)
    return rows


def pooled(rows: list[Row]) -> None:
    """Per pair and N over the seeds' runs: the mean and smallest share sorted, and the precision
    of every run's sorted photos together (a run that sorts three photos weighs three photos)."""
    print()
    print(f"{'pair':<16} {'N':>3} {'runs':>4} {'sorted':>7} {'least':>6} {'≥ 50 %':>6} {'precision':>9} {'stated':>6}")
    groups: dict[tuple[str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.pair.split("~")[0], r.n), []).append(r)
    for (pair, n), mine in groups.items():
        placed = np.array([r.coverage * (r.photos - n) for r in mine])
        right = np.array([r.precision * p for r, p in zip(mine, placed, strict=True)])
        stated = [r.stated[0] for r in mine if r.stated[0] == r.stated[0]]
        print(
            f"{pair:<16} {n:>3} {len(mine):>4} {np.mean([r.coverage for r in mine]):>7.1%} "
            f"{min(r.coverage for r in mine):>6.1%} {sum(r.coverage >= 0.5 for r in mine):>6} "
            f"{right.sum() / max(1.0, placed.sum()):>9.1%} {np.mean(stated) if stated else float('nan'):>6.1%}"
        )


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for pair in dict.fromkeys(r.pair for r in rows):
        mine = [r for r in rows if r.pair == pair]
        (line,) = ax.plot([r.coverage for r in mine], [r.precision for r in mine], marker="o", label=pair)
        for r in mine:
            ax.annotate(str(r.n), (r.coverage, r.precision), textcoords="offset points", xytext=(4, 4), fontsize=8)
        plain = [r for r in mine if r.plain[0] == r.plain[0]]  # not NaN
        if plain:  # the same re-scores without holding back: where the folders were before
            ax.plot(
                [r.plain[0] for r in plain],
                [r.plain[1] for r in plain],
                marker="o",
                fillstyle="none",
                linestyle=":",
                color=line.get_color(),
            )
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("share of photos not reviewed sorted into a category")
    ax.set_ylabel("share of those that are right")
    ax.set_title("At 'sort only when 95 % sure': cold (0), then after N reviews\n(hollow: without holding back)")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0.5, 1.01)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
