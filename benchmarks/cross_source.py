"""Does a furniture model work on photos from another source? Prints a table.

furniture7 mixes sources: ``0000xxxx.jpg`` files come from one scrape (product and room photos)
and ``image_N.jpeg`` files from an image search; only the chair class has both. This trains on
everything *except* the search-engine chairs and then measures:

* ``search chairs``: recall on the held-out search-engine chairs (furniture7 + furniture7_extra);
* ``pixabay top-1``: the share of the 10 real Pixabay room photos whose top class is one of their
  labels (chair / sofa / table);
* ``valid``: accuracy on the usual leak-free validation split of the training data.

Run: ``python benchmarks/cross_source.py [--variants plain,augmented,fine-tuned] [--extra]``
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sorter.learn.datasets import LabelledData, Sample, load_data
from sorter.learn.evaluate import evaluate
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.train.recipe import TrainSettings
from sorter.train.train import fit_and_export

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

VARIANTS = {
    "plain": TrainSettings(views=1, epochs=12),
    "augmented": TrainSettings(views=3, epochs=12),
    "fine-tuned": TrainSettings(views=3, epochs=12, fine_tune_epochs=1),
}


def search_chair(path: Path) -> bool:
    return path.parent.name == "chair" and path.name.startswith("image_")


def pixabay() -> list[tuple[Path, set[str]]]:
    root = DATASETS / "multilabel_furniture" / "pixabay_real"
    with (root / "labels.csv").open() as fh:
        return [(root / r["filename"], set(r["labels"].split())) for r in csv.DictReader(fh)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="plain,augmented")
    parser.add_argument("--extra", action="store_true", help="also train on furniture7_extra (bed/chair/sofa)")
    args = parser.parse_args()
    folders = [DATASETS / "furniture7" / "images"]
    if args.extra:
        folders.append(DATASETS / "furniture7_extra" / "images")
    full = load_data(folders)
    held_out = [s for s in full.samples if search_chair(s.path)]
    held_out += [
        Sample(p, ("chair",))
        for p in sorted((DATASETS / "furniture7_extra" / "images" / "chair").glob("image_*"))
        if not args.extra
    ]
    train_data = LabelledData(
        tuple(s for s in full.samples if not search_chair(s.path)), full.classes, False, full.origin
    )
    scenes = pixabay()
    rows = []
    for name in args.variants.split(","):
        settings = VARIANTS[name]
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            trained = fit_and_export(train_data, Path(tmp) / f"{name}.safetensors", settings)
            seconds = time.perf_counter() - started
            classifier = Classifier(load_bundle(trained.path), torch.device("cpu"))
            chairs = evaluate(classifier, held_out)
            preds = [p.probs for p in classifier.classify([p for p, _ in scenes], lambda p: p)]
            hits = sum(
                classifier.classes[int(np.argmax(pr))] in labels for pr, (_, labels) in zip(preds, scenes, strict=True)
            )
        rows.append(
            (name, trained.evaluation.accuracy, chairs.per_class["chair"]["recall"], hits / len(scenes), seconds)
        )
    n_train, n_chairs, n_scenes = len(train_data.samples), len(held_out), len(scenes)
    print(f"training photos: {n_train}; held-out search-engine chairs: {n_chairs}; pixabay scenes: {n_scenes}")
    print(f"{'variant':<12} {'valid':>7} {'search chairs':>14} {'pixabay top-1':>14} {'train s':>8}")
    for name, valid, chair, pix, seconds in rows:
        print(f"{name:<12} {valid:>7.1%} {chair:>14.1%} {pix:>14.1%} {seconds:>8.0f}")


if __name__ == "__main__":
    main()
