"""Training options, declared once for `sorter train`, the training script and the GUI.

Kept outside ``sorter.train`` so building the CLI parser never imports fastai.
"""

from __future__ import annotations

import argparse
import re

DEFAULT_BUDGET_S = 300.0
"""What ``sorter train`` spends on a CPU unless told otherwise: five minutes."""
TAIL_EPOCHS = 5
"""Epochs of the tail step that ``benchmarks/recipes.py`` measured (``--tail-epochs`` chooses its own)."""


def parse_budget(text: str) -> float:
    """``5m``, ``90s``, ``1h``, ``300`` (seconds) or ``0`` (the head alone) → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"'{text}' is not a time: write for example 5m, 90s or 0")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch", default=None, help="timm architecture (default efficientnet_lite0, then Lite1 within the budget)"
    )
    parser.add_argument("--weights", help="local pretrained weights for the body (.safetensors or .pth)")
    parser.add_argument("--epochs", type=int, default=None, help="head epochs on cached features (default 12)")
    parser.add_argument(
        "--views", type=int, default=None, help="augmented views per training photo (default 3; 0: the clean view only)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one view of each photo, 8 epochs, the head alone: about 3x faster, for a first try",
    )
    parser.add_argument(
        "--budget",
        type=parse_budget,
        default=None,
        help="time training may take, e.g. 5m (the default on a CPU): after the default network, a stronger one "
        "(EfficientNet-Lite1) trains if the time left allows, then the whole network is fine-tuned for the time "
        "still left; each is kept unless the validation photos say it is worse beyond chance; 0: the default "
        "network alone. A GPU trains the stronger one at once.",
    )
    parser.add_argument(
        "--tail-epochs",
        type=int,
        default=0,
        help="then train the network's last blocks for up to N epochs within the budget; kept only if clearly "
        "better on the validation photos",
    )
    parser.add_argument(
        "--people",
        metavar="CATEGORY",
        help="photos where a face is prominent go to this category (a face detector beside the classifier)",
    )
    parser.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=0,
        help="fine-tune the whole network for exactly N epochs, whatever the budget (slow on a CPU)",
    )
    parser.add_argument("--size", type=int, default=None, help="input size (default 224; 240 for Lite1)")
    parser.add_argument("--valid-pct", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
