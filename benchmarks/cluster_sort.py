"""What does sorting through Ray cost, and what does it buy? Prints one table from one run.

The same photos (default 2,000 real ones from ``../shared/datasets``) are sorted three ways, into
fresh output folders, copies and journal included:

* ``local``: ``sort_folder`` with the local :class:`~sorter.core.classifier.Classifier` (ONNX
  Runtime on every core, decoding in a thread pool), as ``sorter sort`` does;
* ``cluster local``: the same job with ``--cluster local``'s
  :class:`~sorter.cluster.ClusterClassifier` on a Ray started on this machine: one single-threaded
  actor per CPU, results streamed back to the same writer;
* ``actor alone``: one actor's work (decode + classify, no Ray, no writing) on one thread: the
  per-actor rate that a cluster multiplies by its actor count.

Ray's start-up (about ten seconds) is reported apart from the sorting rate. Run:
``python benchmarks/cluster_sort.py [--count 2000] [--model furniture]`` after
``pip install -e '.[cluster]'``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(ROOT))

from sorter.cli import drive  # noqa: E402
from sorter.cluster import ClusterClassifier, _Predictor, connect, disconnect  # noqa: E402
from sorter.core.classifier import Classifier  # noqa: E402
from sorter.core.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.paths import resolve_model  # noqa: E402


def photos(count: int, root: Path) -> Path:
    """``count`` real photos copied into one folder (a user's folder, not the dataset's tree)."""
    found = sorted(
        p for d in ("furniture7", "furniture7_extra", "hymenoptera") for p in (DATASETS / d / "images").rglob("*.*")
    )
    if len(found) < count:
        raise SystemExit(f"only {len(found)} photos in {DATASETS}")
    step = len(found) / count
    src = root / "photos"
    src.mkdir()
    for i in range(count):
        p = found[int(i * step)]
        shutil.copy2(p, src / f"{i:05d}_{p.name}")
    return src


def timed_sort(src: Path, out: Path, classifier: Classifier) -> tuple[float, int]:
    started = time.perf_counter()
    summary = drive(sort_folder(SortOptions(src, out), classifier), lambda _: None)
    return time.perf_counter() - started, summary.classified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--model", default="furniture")
    args = parser.parse_args()
    bundle = load_bundle(resolve_model(args.model))
    cpus = os.cpu_count() or 1
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="sorter-cluster-bench-") as tmp:
        root = Path(tmp)
        os.environ["SORTER_DATA_DIR"] = str(root / "data")
        src = photos(args.count, root)

        local = Classifier(bundle, torch.device("cpu"))
        seconds, n = timed_sort(src, root / "local", local)
        local_rate = n / seconds
        rows.append(("local", local_rate, f"{local.backend}, {torch.get_num_threads()} threads"))

        started = time.perf_counter()
        connect("local")
        cluster = ClusterClassifier(bundle)
        startup = time.perf_counter() - started
        try:
            seconds, n = timed_sort(src, root / "cluster", cluster)
        finally:
            disconnect()
        rows.append(("cluster local", n / seconds, f"{cluster.backend}; Ray start {startup:.1f} s apart"))

        torch.set_num_threads(1)
        actor = _Predictor(str(bundle.path), "cpu", 1)
        names = sorted(str(p) for p in src.iterdir())[:200]
        started = time.perf_counter()
        for i in range(0, len(names), 16):
            chunk = np.array(names[i : i + 16], dtype=object)
            actor({"index": np.arange(len(chunk)), "path": chunk})
        rows.append(("actor alone", len(names) / (time.perf_counter() - started), "1 thread, decode + classify"))

    print()
    print(f"{args.count} photos, model {bundle.name}, {cpus} CPUs")
    print(f"{'how':<14} {'photos/s':>9} {'vs local':>9}  notes")
    for name, rate, note in rows:
        print(f"{name:<14} {rate:>9.1f} {rate / local_rate:>8.2f}x  {note}")


if __name__ == "__main__":
    main()
