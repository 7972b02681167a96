"""``sorter``: sort, undo and inspect models from a terminal, with no Qt and no fastai.

Exit status: 0 all done; 3 done but some photos failed (each listed with its reason);
2 usage error; 1 fatal error; 130 cancelled with Ctrl+C (run the same command to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sorter import __version__

EXIT_OK, EXIT_FATAL, EXIT_USAGE, EXIT_PARTIAL, EXIT_CANCELLED = 0, 1, 2, 3, 130
E = TypeVar("E")
R = TypeVar("R")


def drive(job: Generator[E, None, R], on_event: Callable[[E], None]) -> R:
    """Consume a job generator, handing each event on; returns the generator's value."""
    while True:
        try:
            event = next(job)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        on_event(event)


class Progress:
    """A one-line progress bar with rate and ETA on a terminal; silent elsewhere."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self._bar: Any = None

    def update(self, index: int, total: int, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="photo", file=self.stream, dynamic_ncols=True)
        self._bar.set_postfix_str(text[-40:], refresh=False)
        self._bar.update(index - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _print_json(data: dict[str, Any]) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_sort(args: argparse.Namespace) -> int:
    from sorter.core.classifier import Classifier
    from sorter.core.corrections import reviewed_photos
    from sorter.core.sorting import SortEvent, SortOptions, default_output, sort_folder
    from sorter.paths import cache_dir, corrections_db, resolve_model

    source = Path(args.source)
    output = Path(args.out) if args.out else default_output(source)
    classifier: Classifier
    if args.cluster:
        from sorter.cluster import ClusterClassifier, connect
        from sorter.model.bundle import load_bundle

        bundle = load_bundle(resolve_model(args.model))
        connect(args.cluster)
        classifier = ClusterClassifier(bundle, batch_size=args.batch_size)
    else:
        classifier = Classifier.load(
            resolve_model(args.model),
            args.device,
            backend=args.backend,
            cache_dir=cache_dir(),
            batch_size=args.batch_size,
        )
    options = SortOptions(
        source=source,
        output=output,
        move=args.move,
        threshold=args.threshold,
        dry_run=args.dry_run,
        precision=args.precision,
        other_folder=args.other_folder,
        reviewed=reviewed_photos(corrections_db()),
    )
    progress = Progress(sys.stderr, enabled=not args.json and sys.stderr.isatty())
    plan_lines: list[str] = []

    def on_event(ev: SortEvent) -> None:
        progress.update(ev.index, ev.total, ev.source.name)
        if ev.status == "planned":
            why = f"; {ev.reason}" if ev.reason else ""
            plan_lines.append(
                f"{ev.source}  ->  {', '.join(str(d) for d in ev.destinations)}  ({ev.confidence:.0%}{why})"
            )

    job = sort_folder(options, classifier)
    # Ray prints what happens on its workers (a lost worker, a retry) to stdout, which is for
    # --json: during a cluster run it goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.cluster else contextlib.nullcontext()
    try:
        with quiet:
            try:
                summary = drive(job, on_event)
            finally:
                if args.cluster:
                    from sorter.cluster import disconnect

                    disconnect()
    except KeyboardInterrupt:
        job.close()
        progress.close()
        print("Cancelled. Run the same command again to finish the rest.", file=sys.stderr)
        return EXIT_CANCELLED
    finally:
        progress.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        for line in plan_lines:
            print(line)
        verb = "Would sort" if options.dry_run else "Sorted"
        print(
            f"{verb} {summary.classified} of {summary.total} photos into {summary.output} "
            f"({summary.sorted} sorted, {summary.unsure} unsure, {summary.skipped} skipped, "
            f"{summary.failed} failed) in {summary.seconds:.1f} s "
            f"({summary.images_per_second:.1f} photos/s on {summary.device}, {summary.backend})."
        )
        for label, n in sorted(summary.per_label.items()):
            print(f"  {label}: {n}")
        for note in summary.notes:
            print(f"Note: {note}.", file=sys.stderr)
    for path, reason in summary.failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def cmd_undo(args: argparse.Namespace) -> int:
    from sorter.core.undo import undo_last_run

    report = undo_last_run(Path(args.output))
    if args.json:
        _print_json(report.to_json())
    else:
        print(f"Undid run {report.run_id}: removed {report.removed} copies, restored {report.restored} photos.")
    for path, reason in report.kept:
        print(f"kept: {path}: {reason}", file=sys.stderr)
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from sorter.errors import SorterError
    from sorter.model.bundle import read_config
    from sorter.paths import bundled_models_dir, find_models

    rows = []
    for path in find_models():
        try:
            config = read_config(path)
            rows.append(
                {
                    "name": path.stem,
                    "path": str(path),
                    "classes": len(config.classes),
                    "bundled": path.parent == bundled_models_dir(),
                    "error": None,
                }
            )
        except SorterError as exc:
            rows.append({"name": path.stem, "path": str(path), "classes": 0, "bundled": False, "error": str(exc)})
    if args.json:
        _print_json({"models": rows})
    else:
        for row in rows:
            where = "bundled" if row["bundled"] else "user"
            status = row["error"] or f"{row['classes']} classes"
            print(f"{row['name']:<24} {where:<8} {status}  {row['path']}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from sorter.model.bundle import describe, load_bundle
    from sorter.paths import resolve_model

    path = resolve_model(args.model)
    bundle = load_bundle(path)
    info = {"name": bundle.name, "path": str(path), **describe(bundle.config)}
    if args.json:
        _print_json(info)
    else:
        for key, value in info.items():
            if key != "training":
                print(f"{key}: {value}")
        for key, value in info["training"].items():
            print(f"training.{key}: {value}")
    return EXIT_OK


def _train_progress(enabled: bool) -> Callable[[Any], None]:
    """Progress for feature extraction and epochs, on stderr, from the train package's reports."""
    bars: dict[str, Any] = {}

    def report(p: Any) -> None:
        if not enabled:
            return
        if p.phase == "features":
            from tqdm import tqdm

            bar = bars.get("features") or bars.setdefault(
                "features", tqdm(total=p.total, desc="features", unit="batch", file=sys.stderr)
            )
            bar.update(p.step - bar.n)
            if p.step >= p.total:
                bar.close()
            return
        parts = [f"{p.phase} epoch {p.step}/{p.total}"]
        for name, value in (("train loss", p.train_loss), ("valid loss", p.valid_loss), ("metric", p.metric)):
            if value is not None:
                parts.append(f"{name} {value:.4f}")
        print("  ".join(parts), file=sys.stderr)

    return report


def cmd_train(args: argparse.Namespace) -> int:
    from sorter.paths import feature_cache
    from sorter.train.train import main as train_main

    if args.cluster:
        _features_on_cluster(args, feature_cache(), quiet=args.json)
    trained = train_main(args, progress=_train_progress(not args.json), feature_cache=feature_cache())
    summary = {k: v for k, v in trained.report.items() if k != "valid_files"}
    if args.json:
        _print_json(summary)
    else:
        ev = trained.evaluation
        print(f"Wrote {trained.path} ({len(ev.classes)} classes); report {trained.report_path}")
        print(f"Validation accuracy {ev.accuracy:.1%} on {ev.n} photos; unsure threshold {summary['threshold']}")
        for cls, row in ev.per_class.items():
            print(f"  {cls:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  (n={row['n']})")
    return EXIT_OK


def _features_on_cluster(args: argparse.Namespace, cache_path: Path, *, quiet: bool) -> None:
    """``train --cluster``: the clean features of every photo computed on the cluster, into the
    feature cache that training then reads (it computes none itself)."""
    import tempfile

    from sorter.cluster import Pool, connect, disconnect, precompute_features
    from sorter.errors import SorterError, UsageError
    from sorter.learn.feature_cache import FeatureCache
    from sorter.train.engine import initial_bundle
    from sorter.train.train import load_training_data, settings_from_args

    if args.views not in (None, 0) or args.fine_tune_epochs:
        raise UsageError("--cluster trains on the clean view of each photo: leave out --views and --fine-tune-epochs.")
    args.views = 0
    data = load_training_data(args)
    with tempfile.TemporaryDirectory(prefix="sorter-cluster-") as tmp:
        bundle = initial_bundle(data, settings_from_args(args), Path(tmp) / "initial.safetensors")
        connect(args.cluster)
        try:
            with contextlib.redirect_stdout(sys.stderr), FeatureCache.open(cache_path) as cache:
                report = precompute_features(bundle, [s.path for s in data.samples], cache, Pool.for_cluster())
        finally:
            disconnect()
    if report.failed:
        path, reason = report.failed[0]
        raise SorterError(
            f"{len(report.failed)} training photo(s) could not be read on the cluster, e.g. {path}: {reason}."
        )
    if not quiet:
        print(
            f"Features of {report.computed} photos computed on the cluster ({report.cached} already cached) "
            f"in {report.seconds:.1f} s.",
            file=sys.stderr,
        )


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sorter.core.classifier import Classifier
    from sorter.core.datasets import load_data
    from sorter.core.evaluate import evaluate
    from sorter.paths import cache_dir, resolve_model

    classifier = Classifier.load(resolve_model(args.model), args.device, backend=args.backend, cache_dir=cache_dir())
    delim = args.label_delim if args.label_delim is not None else (" " if classifier.config.multi_label else None)
    data = load_data(args.data, csv_file=Path(args.csv) if args.csv else None, label_delim=delim)
    result = evaluate(classifier, data.samples, threshold=args.threshold)
    if args.json:
        _print_json(result.to_json())
    else:
        extra = f", F2 {result.fbeta:.3f}" if result.fbeta is not None else ""
        print(f"{result.n} photos: accuracy {result.accuracy:.1%}{extra}")
        for cls, row in result.per_class.items():
            print(f"  {cls:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  (n={row['n']})")
    return EXIT_PARTIAL if result.failed else EXIT_OK


def _output_of(photo: Path) -> Path:
    """The sorted folder a photo lies in: the nearest parent holding a Sorter journal."""
    from sorter.core.journal import is_output_folder
    from sorter.errors import UsageError

    for parent in photo.expanduser().resolve().parents:
        if is_output_folder(parent):
            return parent
    raise UsageError(f"'{photo}' is not inside a folder Sorter sorted.")


def cmd_correct(args: argparse.Namespace) -> int:
    from sorter.core.corrections import CORRECTION, CorrectionStore, correct
    from sorter.paths import corrections_db

    photo = Path(args.photo)
    with CorrectionStore(corrections_db()) as store:
        done = correct(_output_of(photo), photo, args.label, store)
        count = store.count(CORRECTION)
    print(f"Moved to {done.path}; {count} corrections are saved for retraining.")
    return EXIT_OK


def cmd_confirm(args: argparse.Namespace) -> int:
    from sorter.core.corrections import CONFIRMATION, CorrectionStore, confirm
    from sorter.paths import corrections_db

    with CorrectionStore(corrections_db()) as store:
        for photo in args.photos:
            path = Path(photo)
            confirm(_output_of(path), path, store)
        count = store.count(CONFIRMATION)
    print(f"Confirmed {len(args.photos)} photo(s); {count} confirmations are saved for retraining.")
    return EXIT_OK


def cmd_resort(args: argparse.Namespace) -> int:
    from sorter.core.corrections import CorrectionStore
    from sorter.core.journal import Journal
    from sorter.core.rescore import resort
    from sorter.core.sorting import policy_for
    from sorter.model.bundle import load_bundle
    from sorter.paths import corrections_db, resolve_model

    output = Path(args.output).expanduser().resolve()
    model = args.model
    if model is None:
        with Journal.open(output, create=False, lock=False) as journal:
            runs = [r for r in journal.runs() if r.mode != "resort" and r.status != "undone"]
        if not runs:
            from sorter.errors import UsageError

            raise UsageError(f"Nothing was sorted in '{output}'.")
        model = runs[-1].model
        if not Path(model).exists() and not model.replace("_", "").replace("-", "").isalnum():
            from sorter.errors import UsageError

            raise UsageError(f"The model that sorted '{output}' ({model}) is gone; choose one with --model.")
    bundle = load_bundle(resolve_model(model))
    with CorrectionStore(corrections_db()) as store:
        policy = policy_for(
            bundle.config, threshold=args.threshold, precision=args.precision, other_folder=args.other_folder
        )
        report = resort(output, bundle, store, policy)
    if args.json:
        _print_json(report.to_json())
    else:
        for old, new in report.moved:
            print(f"{old.relative_to(output)}  ->  {new.relative_to(output)}")
        print(
            f"Re-sorted with {bundle.name}: moved {len(report.moved)}, unchanged {report.unchanged}, "
            f"kept {report.reviewed} reviewed photos where you put them."
        )
        if report.adapted_on:
            print(
                f"The model's head was adapted to the {report.adapted_on} photos you reviewed "
                "(sorter retrain makes it a model of its own)."
            )
        changed = [
            f"{c} {before:.0%} -> {report.thresholds[c]:.0%}"
            for c, before in zip(policy.classes, policy.thresholds, strict=True)
            if abs(report.thresholds.get(c, before) - round(float(before), 2)) >= 0.005
        ]
        if report.calibrated_on:
            print(
                f"Confidence recalibrated on {report.calibrated_on} photos you reviewed"
                + (f"; thresholds now: {', '.join(changed)}." if changed else "; no threshold changed.")
            )
        if report.without_features:
            print(
                f"{report.without_features} photos have no stored features for this model and were left alone.",
                file=sys.stderr,
            )
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return EXIT_PARTIAL if report.failed else EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from sorter.core.classifier import resolve_device
    from sorter.core.corrections import CorrectionStore
    from sorter.core.datasets import load_data
    from sorter.paths import corrections_db, feature_cache, resolve_model
    from sorter.train.retrain import retrain

    data = load_data(args.data) if args.data else None
    with CorrectionStore(corrections_db()) as store:
        result = retrain(
            resolve_model(args.model),
            Path(args.out),
            store,
            data=data,
            device=str(resolve_device(args.device)),
            progress=_train_progress(not args.json),
            feature_cache=feature_cache(),
        )
    if args.json:
        _print_json(result.to_json())
    else:
        same = "same" if result.same_validation else "CHANGED (data differs from the old training)"
        print(
            f"Wrote {result.new_path} from {result.corrections} corrections and {result.confirmations} "
            f"confirmations in {result.seconds:.0f} s; old model kept at {result.old_path}."
        )
        if result.training_data == "replay":
            print(
                "The original training photos are not here: trained on the features the old model keeps of them, "
                "and on your photos."
            )
        print(f"Validation photos ({same}): old {result.old_valid_accuracy:.1%} -> new {result.new_valid_accuracy:.1%}")
        print(
            f"Corrected photos: old {result.old_corrected_accuracy:.1%} -> new {result.new_corrected_accuracy:.1%} "
            "(new: its head alone, since its memory holds them)"
        )
        if result.new_classes:
            print(f"New classes: {', '.join(result.new_classes)}")
    return EXIT_OK


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
    p.add_argument("--precision", type=float, help="as for sort (default 0.95)")
    p.add_argument("--threshold", type=float, help="one fixed confidence for every class")
    p.add_argument("--other-folder", action="store_true", help="as for sort")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_resort)

    p = sub.add_parser("retrain", help="train a new version of a model with your corrections")
    p.add_argument("model")
    p.add_argument("--out", required=True, help="the new bundle (the old one is kept)")
    p.add_argument("--data", nargs="+", help="original training data, if it moved since training")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("info", help="show what a model bundle holds")
    p.add_argument("model")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from sorter.errors import SorterError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except SorterError as exc:
        print(f"sorter: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("Cancelled.", file=sys.stderr)
        return EXIT_CANCELLED


if __name__ == "__main__":
    raise SystemExit(main())
