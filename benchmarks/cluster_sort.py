"""What does sorting through Ray cost, and what does it buy? Prints one table from one run.

The same photos (default 2,000 real ones from ``../shared/datasets``) are sorted three ways, into
fresh output folders, copies and journal included:

* ``local``: ``sort_folder`` with the local :class:`~sorter.model.classifier.Classifier` (ONNX
  Runtime on every core, decoding in a thread pool), as ``sorter sort`` does;
* ``cluster local``: the same job with ``--cluster local``'s
  :class:`~sorter.cluster.ClusterClassifier` on a Ray started on this machine: one single-threaded
  actor per CPU, results streamed back to the same writer;
* ``actor alone``: one actor's work (decode + classify, no Ray, no writing) on one thread: the
  per-actor rate that a cluster multiplies by its actor count;
* ``writer alone``: the same job replaying the local run's predictions (no decoding, no network):
  what this process's single writer (hashing, copying, journaling, keeping features) can place
  per second, the bound a cluster of any size meets.

Ray's start-up is reported apart; each cluster row also says when the first result came (the
actors start: a Python process each, torch, the model and its ONNX export) and the steady rate
over the second half of the results. Run:
``python benchmarks/cluster_sort.py [--count 2000] [--model furniture] [--photos DIR] [--actors 1,2,4]`` after
``pip install -e '.[cluster]'``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(ROOT))

from sorter.cluster import ClusterClassifier, _Predictor, connect, disconnect  # noqa: E402
from sorter.jobs.events import drive  # noqa: E402
from sorter.jobs.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier, Prediction  # noqa: E402
from sorter.paths import resolve_model  # noqa: E402

T = TypeVar("T")


def photos(count: int, root: Path, source: Path | None) -> Path:
    """``count`` real photos copied into one folder (a user's folder, not the dataset's tree)."""
    if source is not None:
        found = sorted(p for p in source.rglob("*") if p.is_file())
    else:
        found = sorted(
            p for d in ("furniture7", "furniture7_extra", "hymenoptera") for p in (DATASETS / d / "images").rglob("*.*")
        )
    if len(found) < count:
        raise SystemExit(f"only {len(found)} photos there")
    step = len(found) / count
    src = root / "photos"
    src.mkdir()
    for i in range(count):
        p = found[int(i * step)]
        shutil.copy2(p, src / f"{i:05d}_{p.name}")
    return src


class Replay(Classifier):
    """The local run's predictions again, by path: the writer's work without the classifier's."""

    def __init__(self, classifier: Classifier, predictions: dict[Path, Prediction[Any]]) -> None:
        self.__dict__.update(classifier.__dict__)
        self.predictions = predictions
        self.backend = "replay"

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        for item in items:
            p = self.predictions[path_of(item)]
            yield Prediction(item, p.probs, p.error, p.features, p.fit)


class Clocked(ClusterClassifier):
    """Records when the first and the last result arrived: start-up apart from streaming."""

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        self.times: list[float] = [time.perf_counter()]
        for p in super().classify(items, path_of):
            self.times.append(time.perf_counter())
            yield p


def timed_sort(src: Path, out: Path, classifier: Classifier) -> tuple[float, int]:
    started = time.perf_counter()
    summary = drive(sort_folder(SortOptions(src, out), classifier), lambda _: None)
    return time.perf_counter() - started, summary.classified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--model", default="furniture")
    parser.add_argument(
        "--photos", type=Path, help="photos to use (e.g. 12 MP ones made by ../shared/tools/make_large_photos.py)"
    )
    parser.add_argument("--actors", help="actor counts to try, e.g. 1,2,4,8 (default: one per CPU or GPU)")
    args = parser.parse_args()
    bundle = load_bundle(resolve_model(args.model))
    cpus = os.cpu_count() or 1
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="sorter-cluster-bench-") as tmp:
        root = Path(tmp)
        os.environ["SORTER_DATA_DIR"] = str(root / "data")
        src = photos(args.count, root, args.photos)

        local = Classifier(bundle, torch.device("cpu"))
        seconds, n = timed_sort(src, root / "local", local)
        local_rate = n / seconds
        rows.append(("local", local_rate, f"{local.backend}, {torch.get_num_threads()} threads"))
        every = sorted(p for p in src.iterdir())
        predictions = {p.item: p for p in local.classify(every, lambda p: p)}
        seconds, n = timed_sort(src, root / "replay", Replay(local, predictions))
        rows.append(("writer alone", n / seconds, "replayed predictions: hash, copy, journal, features"))

        started = time.perf_counter()
        connect("local")
        startup = time.perf_counter() - started
        try:
            for actors in [int(a) for a in args.actors.split(",")] if args.actors else [None]:
                cluster = Clocked(bundle, actors=actors)
                seconds, n = timed_sort(src, root / f"cluster-{actors}", cluster)
                t = cluster.times
                half = len(t) // 2  # results queue up while actors start: the second half is steady
                first, steady = t[1] - t[0], (len(t) - 1 - half) / max(1e-9, t[-1] - t[half])
                rows.append(("cluster local", n / seconds, f"{cluster.backend}; first result after {first:.1f} s"))
                rows.append(("  steady", steady, "rate over the second half of the results"))
        finally:
            disconnect()

        torch.set_num_threads(1)
        actor = _Predictor(str(bundle.path), "cpu", 1)
        names = sorted(str(p) for p in src.iterdir())[:200]
        started = time.perf_counter()
        for i in range(0, len(names), 16):
            chunk = np.array(names[i : i + 16], dtype=object)
            actor({"index": np.arange(len(chunk)), "path": chunk})
        rows.append(("actor alone", len(names) / (time.perf_counter() - started), "1 thread, decode + classify"))

    print()
    print(f"{args.count} photos, model {bundle.name}, {cpus} CPUs; Ray started in {startup:.1f} s (apart)")
    print(f"{'how':<14} {'photos/s':>9} {'vs local':>9}  notes")
    for name, rate, note in rows:
        print(f"{name:<14} {rate:>9.1f} {rate / local_rate:>8.2f}x  {note}")


if __name__ == "__main__":
    main()
