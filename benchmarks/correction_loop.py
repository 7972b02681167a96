"""Does correcting Sorter make it better on the user's own photos? Prints a table.

Simulates a user whose photos come from another source than the model's training photos:
train a model on source A; sort the user's folder (source B) with ``sort_folder``; review the N
first photos of the review dialog's queue (least confident and diverse first, with a spot check
of a confident photo every ``--spot-every``), correcting the wrong ones (``correct``)
and confirming the right ones (``confirm``); then measure, on the photos *not* reviewed:

* ``before``: top-1 accuracy of the model as it sorted;
* ``memory``: top-1 of the instant re-score with the reviewed photos as exemplar memory alone;
* ``adapted``: the same with the head refitted to the reviewed photos too (``sorter.learn.adapt``),
  what the review dialog and ``sorter resort`` use, with no retrain;
* ``retrained``: top-1 of ``sorter retrain``'s new bundle (user photos oversampled + memory);
* ``valid old/new``: accuracy on the original validation split (what it knew);
* ``retrain s``: seconds of the retrain, with the training features already cached.
* with ``--replay``, a second table: the retrain from the bundle's feature replay alone (as on a
  machine without the training photos) against the retrain with the photos.

A second table shows what the folders hold at the default 95 % precision target, on the photos
not reviewed: the share auto-sorted into a category and how many of those are right, as sorted,
as re-scored with the validation calibration, and as re-scored with the calibration updated by
the reviewed photos (``recalibrated``, what ``sorter resort`` and the review dialog use).

Splits, all from ``../shared/datasets`` (real photos):

* ``search-chairs``: trained on furniture7 without its search-engine chairs (``image_N``); the
  user's folder is furniture7_extra's 98 search-engine chairs plus 50 beds and 50 sofas;
* ``product-scene``: bed/chair/sofa, trained on product shots (white background), the user's
  folder is room scenes;
* ``f7-extra``: trained on furniture7's bed/chair/sofa, the user's folder is furniture7_extra
  (same source: a control).

Run: ``python benchmarks/correction_loop.py [--splits search-chairs,product-scene] [--n 10,30,60]
[--views 1] [--user 200]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sorter.files.corrections import CorrectionStore, confirm, correct
from sorter.files.journal import Journal
from sorter.jobs.policy import NONE_OF_THESE, policy_for
from sorter.jobs.rescore import rescore
from sorter.jobs.review_queue import build_queue, photos_in_order
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.knobs import DEFAULT, overridden
from sorter.learn.datasets import LabelledData, Sample, load_data
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.train.recipe import TrainSettings
from sorter.train.retrain import retrain
from sorter.train.train import fit_and_export

DATASETS = Path(os.environ.get("SORTER_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
F7 = DATASETS / "furniture7" / "images"
EXTRA = DATASETS / "furniture7_extra" / "images"
BCS = ("bed", "chair", "sofa")


def white_background(path: Path) -> bool:
    """A product shot: most of the photo's border is near white."""
    with Image.open(path) as img:
        img.draft("RGB", (128, 128))
        a = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.float32)
    border = np.concatenate(
        [a[:4].reshape(-1, 3), a[-4:].reshape(-1, 3), a[:, :4].reshape(-1, 3), a[:, -4:].reshape(-1, 3)]
    )
    return bool((border.min(axis=1) > 225).mean() > 0.6)


def samples(folder: Path, classes: tuple[str, ...]) -> list[Sample]:
    return [Sample(p, (c,)) for c in classes for p in sorted((folder / c).iterdir())]


def make_split(name: str, n_user: int) -> tuple[list[Sample], list[Sample]]:
    rng = random.Random(7)
    if name == "search-chairs":
        train = [s for s in load_data(F7).samples if not (s.labels[0] == "chair" and s.path.name.startswith("image_"))]
        user = [s for s in samples(EXTRA, ("chair",)) if s.path.name.startswith("image_")]
        others = [s for s in samples(EXTRA, ("bed", "sofa"))]
        half = max(1, (n_user - len(user)) // 2)
        user += rng.sample([s for s in others if s.labels[0] == "bed"], half)
        user += rng.sample([s for s in others if s.labels[0] == "sofa"], half)
        return train, user
    if name == "product-scene":
        pool = [s for s in samples(F7, BCS) + samples(EXTRA, BCS) if not s.path.name.startswith("image_")]
        product = [s for s in pool if white_background(s.path)]
        scene = [s for s in pool if not white_background(s.path)]
        return product, rng.sample(scene, min(n_user, len(scene)))
    if name == "f7-extra":
        return samples(F7, BCS), rng.sample(samples(EXTRA, BCS), n_user)
    raise SystemExit(f"unknown split {name}")


def top1(probs: np.ndarray, classes: tuple[str, ...], truth: list[str]) -> float:
    return float(np.mean([classes[int(np.argmax(p))] == t for p, t in zip(probs, truth, strict=True)]))


def coverage(sorted_as: list[str | None], truth: list[str]) -> tuple[float, float]:
    """Share of photos sorted into a category, and the share of those that are right."""
    placed = [(s, t) for s, t in zip(sorted_as, truth, strict=True) if s is not None]
    right = sum(s == t for s, t in placed)
    return len(placed) / max(1, len(truth)), right / max(1, len(placed))


def run_split(
    name: str,
    ns: list[int],
    views: int,
    n_user: int,
    root: Path,
    do_retrain: bool = True,
    spot: float = 0.0,
    spot_every: tuple[int, ...] = (DEFAULT.spot_every,),
    replay: bool = False,
) -> list[tuple[object, ...]]:
    train_samples, user_samples = make_split(name, n_user)
    classes = tuple(sorted({s.labels[0] for s in train_samples}))
    data = LabelledData(tuple(train_samples), classes, False, f"folder:{root / 'none'}")
    cache = root / "features.sqlite"
    started = time.perf_counter()
    trained = fit_and_export(data, root / f"{name}.safetensors", TrainSettings(views=views), feature_cache=cache)
    print(
        f"[{name}] trained on {len(train_samples)} photos in {time.perf_counter() - started:.0f} s; "
        f"user folder {len(user_samples)} photos",
        flush=True,
    )
    src = root / f"{name}-photos"
    truth_of: dict[str, str] = {}
    for i, s in enumerate(user_samples):
        src.mkdir(parents=True, exist_ok=True)
        target = src / f"{i:04d}{s.path.suffix.lower()}"
        shutil.copy2(s.path, target)
        truth_of[target.name] = s.labels[0]
    rows = []
    for n, every in [(n, e) for n in ns for e in spot_every]:
        out = root / f"{name}-sorted-{n}-{every}"
        store_path = root / f"{name}-{n}-{every}" / "corrections.sqlite"
        store_path.parent.mkdir(parents=True, exist_ok=True)
        classifier = Classifier(load_bundle(trained.path), torch.device("cpu"))
        job = sort_folder(SortOptions(src, out), classifier)
        for _ in job:
            pass
        # the review dialog's queue, with its spot checks (one in `every`; 0: none)
        with CorrectionStore(store_path) as store, overridden(spot_every=every):
            queue = build_queue(out, load_bundle(trained.path), store)
        with Journal.open(out, create=False, lock=False) as journal:
            by_path = {p.path: p for p in journal.placements()}
        ops = [by_path[p] for p in photos_in_order(queue)]
        spots = round(n * spot)
        head = ops[: n - spots]
        tail = ops[n - spots :]
        picked = set(random.Random(n).sample(range(len(tail)), min(spots, len(tail))))
        reviewed = head + [op for i, op in enumerate(tail) if i in picked]
        rest = [op for i, op in enumerate(tail) if i not in picked]
        wrong = 0
        with CorrectionStore(store_path) as store:
            for op in reviewed:
                truth = truth_of[op.source.name]
                if op.path.parent.name != truth:
                    correct(out, op.path, truth, store)
                    wrong += 1
                else:
                    confirm(out, op.path, store)
            bundle = load_bundle(trained.path)
            rest_truth = [truth_of[op.source.name] for op in rest]
            rest_src = [op.source for op in rest]
            before = top1(np.stack([p.probs for p in classifier.classify(rest_src, lambda p: p)]), classes, rest_truth)
            found = rescore(out, bundle, store)  # as the review does: the head adapted to the reviews
            by_sha = {r.placement.sha256: r for r in found.photos}
            with overridden(adapt=False):
                memory_only = {r.placement.sha256: r for r in rescore(out, bundle, store).photos}
            head = found.adapted
            adapted = (
                f"head on {head.user_rows}, valid {head.valid_before:.1%}->{head.valid_after:.1%}"
                if head is not None
                else "not adapted"
            )
            base = policy_for(bundle.config)
            folders = {"_unsure", "_other"}
            as_sorted = [None if op.path.parent.name in folders else op.path.parent.name for op in rest]
            plain = []
            for op in rest:
                r = by_sha[op.sha256]
                k = int(np.argmax(r.probs))
                ok = r.reason != NONE_OF_THESE and r.probs[k] >= base.thresholds[k]
                plain.append(bundle.config.classes[k] if ok else None)
            recal = [None if by_sha[op.sha256].suggested in folders else by_sha[op.sha256].suggested for op in rest]
            cover = (coverage(as_sorted, rest_truth), coverage(plain, rest_truth), coverage(recal, rest_truth))
            # top-1 of the re-scored probabilities, like the other columns (thresholds aside):
            # with the memory alone, and with the adapted head too
            instant = tuple(
                float(
                    np.mean(
                        [
                            bundle.config.classes[int(np.argmax(scored[op.sha256].probs))] == t
                            for op, t in zip(rest, rest_truth, strict=True)
                        ]
                    )
                )
                for scored in (memory_only, by_sha)
            )
            if not do_retrain:
                rows.append(
                    (name, n, every, wrong, len(rest), before, instant, float("nan"), 0.0, 0.0, 0.0, cover, None)
                )
                print(f"[{name}] N={n} spot {_every(every)}: before {before:.1%} cover {cover}", flush=True)
                continue
            t0 = time.perf_counter()
            result = retrain(
                trained.path, root / f"{name}-retrained-{n}-{every}.safetensors", store, data=data, feature_cache=cache
            )
            seconds = time.perf_counter() - t0
            from_replay = None
            if replay:
                # as on a user's machine: the training photos are not there (the bundle's recorded
                # origin does not exist), so the retrain fits on the features the bundle keeps
                t0 = time.perf_counter()
                alone = retrain(trained.path, root / f"{name}-replay-{n}-{every}.safetensors", store)
                assert alone.training_data == "replay"
                replayed = Classifier(load_bundle(alone.new_path), torch.device("cpu"))
                got = np.stack([p.probs for p in replayed.classify(rest_src, lambda p: p)])
                from_replay = (
                    top1(got, replayed.classes, rest_truth),
                    alone.new_valid_accuracy,
                    time.perf_counter() - t0,
                )
        new = Classifier(load_bundle(result.new_path), torch.device("cpu"))
        after = top1(np.stack([p.probs for p in new.classify(rest_src, lambda p: p)]), new.classes, rest_truth)
        rows.append(
            (
                name,
                n,
                every,
                wrong,
                len(rest),
                before,
                instant,
                after,
                result.old_valid_accuracy,
                result.new_valid_accuracy,
                seconds,
                cover,
                from_replay,
            )
        )
        print(
            f"[{name}] N={n} spot {_every(every)}: before {before:.1%} memory {instant[0]:.1%} "
            f"adapted {instant[1]:.1%} ({adapted}) retrained {after:.1%} "
            f"valid {result.old_valid_accuracy:.1%}->{result.new_valid_accuracy:.1%} retrain {seconds:.1f} s",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="search-chairs,product-scene,f7-extra")
    parser.add_argument("--n", default="10,30,60")
    parser.add_argument("--views", type=int, default=3, help="augmented views per training photo")
    parser.add_argument("--user", type=int, default=200, help="photos in the user's folder")
    parser.add_argument("--no-retrain", action="store_true", help="only the instant re-score columns")
    parser.add_argument(
        "--spot", type=float, default=0.0, help="share of reviewed photos drawn at random (extra spot checks)"
    )
    parser.add_argument(
        "--spot-every",
        default=str(DEFAULT.spot_every),
        help="queues to compare: one spot check in every K photos of the dialog's queue (0: none), e.g. 0,4",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="also retrain from the bundle's feature replay alone (the training photos not at hand)",
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    ns = [int(x) for x in args.n.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sorter-loop-") as tmp:
        os.environ["SORTER_DATA_DIR"] = str(Path(tmp) / "data")
        for name in args.splits.split(","):
            rows += run_split(
                name,
                ns,
                args.views,
                args.user,
                Path(tmp),
                not args.no_retrain,
                args.spot,
                tuple(int(x) for x in args.spot_every.split(",")),
                args.replay,
            )
    print()
    print(
        f"{'split':<14} {'N':>3} {'spot':>5} {'wrong':>5} {'rest':>5} {'before':>7} {'memory':>7} {'adapted':>8} "
        f"{'retrained':>10} "
        f"{'valid old':>10} {'valid new':>10} {'retrain s':>10}"
    )
    for name, n, every, wrong, rest, before, instant, after, vo, vn, sec, _, _ in rows:
        print(
            f"{name:<14} {n:>3} {_every(every):>5} {wrong:>5} {rest:>5} {before:>7.1%} {instant[0]:>7.1%} "
            f"{instant[1]:>8.1%} {after:>10.1%} "
            f"{vo:>10.1%} {vn:>10.1%} {sec:>10.1f}"
        )
    if args.replay:
        print()
        print("Retrained from the feature replay alone (no training photos), against the retrain with photos:")
        header = f"{'split':<14} {'N':>3} {'spot':>5} {'photos':>8} {'replay':>8}"
        print(f"{header} {'valid photos/replay':>20} {'replay s':>9}")
        for name, n, every, *_, after, _vo, vn, _sec, _cover, from_replay in rows:
            if from_replay is not None:
                top, valid, secs = from_replay
                print(
                    f"{name:<14} {n:>3} {_every(every):>5} {after:>8.1%} {top:>8.1%} "
                    f"{vn:>13.1%}/{valid:.1%} {secs:>9.1f}"
                )
    print()
    print("At the 95 % target, photos not reviewed: share sorted into a category / precision of those")
    print(f"{'split':<14} {'N':>3} {'spot':>5} {'as sorted':>16} {'re-scored':>16} {'recalibrated':>16}")
    for name, n, every, *_, cover, _ in rows:
        cells = " ".join(f"{c:>7.1%} / {p:>6.1%}" for c, p in cover)
        print(f"{name:<14} {n:>3} {_every(every):>5} {cells}")


def _every(every: object) -> str:
    return f"1/{every}" if every else "none"


if __name__ == "__main__":
    main()
