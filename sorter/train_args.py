"""Training options, declared once for `sorter train`, the training script and the GUI.

Kept outside ``sorter.train`` so building the CLI parser never imports fastai.
"""

from __future__ import annotations

import argparse


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", default="efficientnet_lite0", help="timm architecture")
    parser.add_argument("--weights", help="local pretrained weights for the body (.safetensors or .pth)")
    parser.add_argument("--epochs", type=int, default=None, help="head epochs on cached features (default 12)")
    parser.add_argument(
        "--views", type=int, default=None, help="augmented views per training photo (default 3; 0: the clean view only)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one view of each photo and 8 epochs: about 3x faster, for a first try"
    )
    parser.add_argument("--fine-tune-epochs", type=int, default=0, help="unfrozen epochs (slow on CPU)")
    parser.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the head's loss")
    parser.add_argument("--mixup", type=float, default=0.0, help="mixup alpha for the head fit on features (0: off)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--valid-pct", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
