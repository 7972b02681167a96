"""Training speed: the head fitted on cached body features against a full (unfrozen) fine-tune.

Prints one table from one run of ``sorter.train.engine.train`` on real furniture7 photos:
seconds for the one pass that caches body features, seconds per head epoch on those features,
and seconds per unfrozen fine-tune epoch over the images (forward and backward through the whole
network, with augmentation), and the ratio. A fixed learning rate skips ``lr_find`` so that only
epochs are timed.

Run: ``python benchmarks/train_speed.py [--per-class 20] [--epochs 5] [--fine-tune-epochs 1]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sorter.learn.datasets import load_data  # noqa: E402
from sorter.learn.datasets import split as split_data  # noqa: E402
from sorter.train.engine import train  # noqa: E402
from sorter.train.recipe import TrainSettings  # noqa: E402

FURNITURE = ROOT.parent / "shared" / "datasets" / "furniture7" / "images"


def subset(per_class: int, into: Path) -> Path:
    """A folder of links to the first ``per_class`` photos of every class."""
    for cls in sorted(p for p in FURNITURE.iterdir() if p.is_dir()):
        (into / cls.name).mkdir(parents=True)
        for photo in sorted(cls.iterdir())[:per_class]:
            (into / cls.name / photo.name).symlink_to(photo)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = load_data([subset(args.per_class, Path(tmp) / "data")])
        train_idx, valid_idx = split_data(data, 0.2, 42)
        settings = TrainSettings(views=1, epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, lr=3e-3)
        result = train(data, train_idx, valid_idx, settings)
    head_epoch = result.head_seconds / args.epochs
    fine_epoch = result.fine_tune_seconds / max(1, args.fine_tune_epochs)
    print(
        f"{len(train_idx)} training and {len(valid_idx)} validation photos from furniture7 "
        f"({len(data.classes)} classes), {settings.architecture} at {settings.size} px, "
        f"batch {settings.batch_size}, torch threads {torch.get_num_threads()}, cores {os.cpu_count()}"
    )
    rows = [
        ("feature cache: one pass over train + valid (once)", result.feature_seconds),
        (f"head on cached features, per epoch ({args.epochs} epochs)", head_epoch),
        (f"full fine-tune, per epoch ({args.fine_tune_epochs} epochs)", fine_epoch),
    ]
    print(f"{'':<58}{'seconds':>10}")
    for name, value in rows:
        print(f"{name:<58}{value:>10.2f}")
    print(f"{'fine-tune epoch / head epoch':<58}{fine_epoch / head_epoch:>9.0f}x")
    first = result.feature_seconds + head_epoch
    print(f"{'fine-tune epoch / (feature pass + head epoch)':<58}{fine_epoch / first:>9.1f}x")


if __name__ == "__main__":
    main()
