"""How fast does Sorter sort camera-sized photos, against the seeds' one-at-a-time fastai loop?

Prints one table from one run (ratios are what to compare; machines are noisy):

* ``seeds' loop``: fastai ``Learner.predict`` on one photo at a time (what the notebooks did after
  ``load_learner``; the same network, so only the loop differs);
* ``decode only``: Sorter's decoder (JPEG draft decoding, thread pool) with no network;
* ``model only``: the network on already-decoded batches, for each backend (torch and ONNX Runtime);
* ``Sorter end to end``: ``sort_folder`` in copy mode, copying and journaling included, per backend;
  and in move mode (onnx), whose every move is an intent synced to disk before the unlink;
* ``without the face detector``: the same with the bundle's ``people`` rule removed, so the cost of
  finding people (issue 21: at most 20 %) is a ratio from one run.

Each rate is the median of ``--repeat`` runs over the same photos (the seeds' loop runs once).

The bound is what decode and model allow together: on a CPU they share the cores, so
``1 / (1/decode + 1/model)``; with perfect overlap on separate resources it would be
``min(decode, model)``.

Run: ``python benchmarks/sort_speed.py [--photos DIR] [--count 40] [--repeat 3] [--scale]``
(``--scale`` adds 1,000- and 10,000-photo runs of small images for time and peak memory.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from sorter.files.images import scan  # noqa: E402
from sorter.jobs.events import drive  # noqa: E402
from sorter.jobs.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402

MODEL = ROOT / "models" / "general.safetensors"


def large_photos(count: int) -> Path:
    cache = Path(tempfile.gettempdir()) / f"sorter-bench-12mp-{count}"
    if not cache.exists():
        subprocess.run(
            [
                sys.executable,
                str(SHARED / "tools" / "make_large_photos.py"),
                str(SHARED / "datasets" / "furniture7" / "images"),
                str(cache),
                "--count",
                str(count),
            ],
            check=True,
        )
    return cache


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def seeds_loop(classifier: Classifier, paths: list[Path]) -> float:
    """fastai Learner.predict, one photo at a time, as the seed notebooks did."""
    import fastai.callback.progress  # noqa: F401  (patches no_bar onto Learner)
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import Normalize
    from fastai.learner import Learner
    from fastai.vision.augment import Resize
    from fastai.vision.data import ImageBlock

    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(classifier.classes))),
        get_y=lambda p: classifier.classes[0],
        item_tfms=Resize(224, method="squish"),
        batch_tfms=Normalize.from_stats([0.5] * 3, [0.5] * 3),
    )
    dls = block.dataloaders(paths[:4], bs=1, num_workers=0)
    net = classifier.bundle.build_model()
    net.head = torch.nn.Linear(net.num_features, len(classifier.classes))  # fastai wants a plain head
    learn = Learner(dls, net)
    started = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        for p in paths:
            learn.predict(p)
    return rate(len(paths), time.perf_counter() - started)


def decode_only(classifier: Classifier, paths: list[Path]) -> float:
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(classifier.decode_threads) as pool:
        for _ in pool.map(classifier.preprocess, paths):
            pass
    return rate(len(paths), time.perf_counter() - started)


def model_only(classifier: Classifier, paths: list[Path]) -> float:
    arrays = [classifier.preprocess(p) for p in paths]
    classifier.predict_arrays(arrays[: classifier.batch_size])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(arrays), classifier.batch_size):
        classifier.predict_arrays(arrays[i : i + classifier.batch_size])
    return rate(len(arrays), time.perf_counter() - started)


def end_to_end(classifier: Classifier, source: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        summary = drive(sort_folder(SortOptions(source, Path(tmp) / "out"), classifier), lambda e: None)
    return rate(summary.classified, summary.seconds)


def end_to_end_move(classifier: Classifier, source: Path) -> float:
    """Move mode from a fresh copy of the photos (made before the clock starts): each move is
    recorded as an intent synced to disk before its source is unlinked."""
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        shutil.copytree(source, photos)
        summary = drive(sort_folder(SortOptions(photos, Path(tmp) / "out", move=True), classifier), lambda e: None)
    return rate(summary.classified, summary.seconds)


def median_of(repeat: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeat))


def scale_run(count: int) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of a child process sorting ``count`` small photos."""
    src = Path(tempfile.gettempdir()) / f"sorter-bench-small-{count}"
    if not src.exists():
        photos = sorted((SHARED / "datasets" / "furniture7_extra" / "images").rglob("*.jpg"))
        for i in range(count):
            dst = src / f"{i // 1000:02d}" / f"{i:05d}.jpg"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photos[i % len(photos)], dst)
    with tempfile.TemporaryDirectory() as tmp:
        code = (
            "import resource, sys, time\n"
            "from sorter.cli import main\n"
            "t = time.perf_counter()\n"
            f"rc = main(['sort', {str(src)!r}, '--out', {tmp + '/out'!r}, '--device', 'cpu'])\n"
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        )
        env = {**os.environ, "SORTER_DATA_DIR": tmp + "/data"}  # a first run: the ONNX export included
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
    seconds, peak = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="folder of photos (default: 12 MP JPEGs made from furniture7)")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="runs per rate; the median is printed")
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--skip-seeds", action="store_true", help="skip the slow fastai loop")
    args = parser.parse_args()
    source = args.photos or large_photos(args.count)
    paths = [c.path for c in scan(source) if c.problem is None]
    cache = Path(tempfile.mkdtemp(prefix="sorter-bench-cache-"))
    backends = {
        name: Classifier.load(MODEL, "cpu", backend=name, cache_dir=cache, batch_size=args.batch_size)
        for name in ("onnx", "torch")
    }
    onnx = backends["onnx"]
    plain = load_bundle(MODEL)
    plain = replace(plain, config=replace(plain.config, people=None))
    faceless = Classifier(plain, torch.device("cpu"), backend="onnx", cache_dir=cache, batch_size=args.batch_size)
    print(
        f"{len(paths)} photos from {source}; torch threads {torch.get_num_threads()}, "
        f"decode threads {onnx.decode_threads}, batch {onnx.batch_size}, cores {os.cpu_count()}, "
        f"median of {args.repeat}"
    )

    decode = median_of(args.repeat, lambda: decode_only(onnx, paths))
    rows: list[tuple[str, float]] = [("decode only", decode)]
    results = {}
    for name, classifier in backends.items():
        model = median_of(args.repeat, lambda c=classifier: model_only(c, paths))  # type: ignore[misc]
        sorter = median_of(args.repeat, lambda c=classifier: end_to_end(c, source))  # type: ignore[misc]
        bound = 1 / (1 / decode + 1 / model)
        results[name] = (sorter, bound, min(decode, model))
        rows += [
            (f"[{name}] model only", model),
            (f"[{name}] bound, shared cores: 1/(1/decode+1/model)", bound),
            (f"[{name}] Sorter end to end (copy mode)", sorter),
        ]
        if name == "onnx":
            moving = median_of(args.repeat, lambda c=classifier: end_to_end_move(c, source))  # type: ignore[misc]
            rows.append((f"[{name}] Sorter end to end (move mode)", moving))
    if onnx.faces is not None:
        # alternate the two, so that the machine's drift falls on both alike
        with_faces, without = [], []
        for _ in range(args.repeat):
            with_faces.append(end_to_end(onnx, source))
            without.append(end_to_end(faceless, source))
        rows += [
            (
                "[onnx] decode only, without the face detector",
                median_of(args.repeat, lambda: decode_only(faceless, paths)),
            ),
            ("[onnx] end to end, without the face detector", statistics.median(without)),
            ("[onnx] end to end, with it (alternating runs)", statistics.median(with_faces)),
        ]
        cost = 1 - statistics.median(with_faces) / statistics.median(without)
    seeds = float("nan") if args.skip_seeds else seeds_loop(onnx, paths)
    rows.insert(0, ("seeds' loop (fastai predict, 1 at a time)", seeds))
    print(f"{'':<54}{'photos/s':>10}")
    for label, value in rows:
        print(f"{label:<54}{value:>10.1f}")
    for name, (sorter, bound, overlap) in results.items():
        print(f"{f'[{name}] Sorter / seeds':<54}{sorter / seeds:>10.2f}x")
        print(f"{f'[{name}] Sorter / shared-cores bound':<54}{sorter / bound:>10.0%}")
        print(f"{f'[{name}] Sorter / perfect-overlap bound':<54}{sorter / overlap:>10.0%}")
    if onnx.faces is not None:
        print(f"{'[onnx] slower with the face detector (target <= 20 %)':<54}{cost:>10.0%}")
    shutil.rmtree(cache, ignore_errors=True)
    if args.scale:
        print(f"\n{'photos':>8}{'seconds':>10}{'s/1000':>9}{'peak MB':>9}")
        for count in (1000, 10000):
            seconds, peak = scale_run(count)
            print(f"{count:>8}{seconds:>10.1f}{seconds / count * 1000:>9.1f}{peak:>9.0f}")


if __name__ == "__main__":
    main()
