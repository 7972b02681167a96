"""The ``sorter`` command line: its sub-commands and options, each bound to its command."""

from __future__ import annotations

import argparse

from sorter import __version__
from sorter.cli.commands import (
    cmd_confirm,
    cmd_correct,
    cmd_evaluate,
    cmd_info,
    cmd_models,
    cmd_resort,
    cmd_retrain,
    cmd_sort,
    cmd_train,
    cmd_undo,
)


def _add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """Where and with what the network runs, for the commands that classify photos."""
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="auto: ONNX Runtime on the CPU (faster), torch on a GPU",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sorter", description="Sort a folder of photos into per-category folders.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sort", help="sort a folder of photos")
    p.add_argument("source", help="folder of photos (searched recursively)")
    p.add_argument("--out", help="output folder (default: a sibling 'SOURCE (sorted)')")
    p.add_argument("--model", default="general", help="model name or .safetensors path (default: general)")
    _add_inference_arguments(p)
    p.add_argument("--move", action="store_true", help="move photos instead of copying them")
    p.add_argument(
        "--precision",
        type=float,
        help="sort a photo only when the model is this sure, as measured on its validation photos (default 0.95)",
    )
    p.add_argument("--threshold", type=float, help="one fixed confidence for every class (overrides --precision)")
    p.add_argument(
        "--other-folder", action="store_true", help="photos that fit none of the categories go to _other, not _unsure"
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="classify on a Ray cluster: auto (the one this machine belongs to), local (start one here) or "
        "its address; photos must be on storage the workers share (pip install 'sorter[cluster]')",
    )
    p.add_argument("--batch-size", type=int, default=16, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=cmd_sort)

    p = sub.add_parser("undo", help="revert the last run on an output folder")
    p.add_argument("output")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("models", help="list bundled and user models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    from sorter.train_args import add_train_arguments

    p = sub.add_parser("train", help="train a model from a labelled folder or CSV")
    p.add_argument("data", nargs="+", help="folder(s) of class folders (optionally train/ and valid/), or a CSV")
    p.add_argument("--out", required=True, help="new bundle, e.g. models/mine.safetensors")
    p.add_argument("--csv", help="CSV of labels; paths are relative to DATA")
    p.add_argument("--multi-label", action="store_true", help="several labels per photo")
    p.add_argument("--label-delim", help="separator of labels in the CSV (default: space when multi-label)")
    add_train_arguments(p)
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="compute the photos' features on a Ray cluster (auto, local or its address), then fit here; "
        "trains on the clean view of each photo (--views 0)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="measure a model on labelled photos")
    p.add_argument("model")
    p.add_argument("data", help="folder of class folders, or a CSV")
    p.add_argument("--csv")
    p.add_argument("--label-delim")
    p.add_argument("--threshold", type=float, help="multi-label threshold (default: the model's)")
    _add_inference_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("correct", help="move a sorted photo to the right category and remember it")
    p.add_argument("photo", help="a photo inside a sorted folder, e.g. OUT/chair/x.jpg")
    p.add_argument("label", help="the right category (a new one is allowed)")
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("confirm", help="mark sorted photos as rightly sorted (teaches like a correction)")
    p.add_argument("photos", nargs="+", help="photos inside a sorted folder, e.g. OUT/chair/x.jpg")
    p.set_defaults(func=cmd_confirm)

    p = sub.add_parser("resort", help="re-sort the photos you did not review, using your corrections")
    p.add_argument("output", help="a folder Sorter sorted into")
    p.add_argument("--model", help="model name or path (default: the one that sorted the folder)")
    p.add_argument("--precision", type=float, help="as for sort (default: what the folder was sorted with)")
    p.add_argument("--threshold", type=float, help="one fixed confidence for every class (default: as sorted)")
    p.add_argument(
        "--other-folder",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as for sort (default: what the folder was sorted with)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_resort)

    p = sub.add_parser("retrain", help="train a new version of a model with your corrections")
    p.add_argument("model")
    p.add_argument("--out", required=True, help="the new bundle (the old one is kept)")
    p.add_argument("--data", nargs="+", help="original training data, if it moved since training (read as photos)")
    p.add_argument(
        "--from-photos",
        action="store_true",
        help="train on the original photos again instead of the features the model keeps of them (slower)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "-y", "--yes", action="store_true", help="retrain without asking (the reviews it uses are listed first)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("info", help="show what a model bundle holds")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    return parser
