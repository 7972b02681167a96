"""The CLI's commands: each takes the parsed arguments and returns an exit status.

Every import of the heavier layers is inside the command that needs it, so ``sorter --help`` and
``sorter undo`` start without loading torch.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from sorter.cli.output import Progress, print_json, train_progress
from sorter.jobs.events import drive
from sorter.usertypes import ExitCode


def cmd_sort(args: argparse.Namespace) -> int:
    from sorter.jobs.events import SortEvent
    from sorter.jobs.reviews import reviews_for_sorting
    from sorter.jobs.sorting import SortOptions, sort_folder
    from sorter.model.classifier import Classifier
    from sorter.paths import cache_dir, corrections_db, default_output, resolve_model

    source = Path(args.source)
    output = Path(args.out) if args.out else default_output(source)
    model = resolve_model(args.model)
    classifier: Classifier
    if args.cluster:
        from sorter.cluster import ClusterClassifier, connect
        from sorter.model.bundle import load_bundle

        bundle = load_bundle(model)
        connect(args.cluster)
        classifier = ClusterClassifier(bundle, batch_size=args.batch_size)
    else:
        classifier = Classifier.load(
            model,
            args.device,
            backend=args.backend,
            cache_dir=cache_dir(),
            batch_size=args.batch_size,
        )
    reviewed, kept = reviews_for_sorting(corrections_db(), model, output)
    options = SortOptions(
        source=source,
        output=output,
        move=args.move,
        threshold=args.threshold,
        dry_run=args.dry_run,
        precision=args.precision,
        other_folder=args.other_folder,
        reviewed=reviewed,
        kept=kept,
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
        return ExitCode.CANCELLED
    finally:
        progress.close()
    if args.json:
        print_json(summary.to_json())
    else:
        for line in plan_lines:
            print(line)
        print(summary.sentence())
        print(
            f"Output: {summary.output} ({summary.images_per_second:.1f} photos/s on {summary.device}, "
            f"{summary.backend})."
        )
        for label, n in sorted(summary.per_label.items()):
            print(f"  {label}: {n}")
        for note in summary.notes:
            print(f"Note: {note}.", file=sys.stderr)
    for path, reason in summary.failures:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return ExitCode.PARTIAL if summary.failed else ExitCode.OK


def cmd_undo(args: argparse.Namespace) -> int:
    from sorter.files.corrections import CorrectionStore
    from sorter.files.undo import undo_last_run
    from sorter.paths import corrections_db

    with CorrectionStore(corrections_db()) as store:
        report = undo_last_run(Path(args.output), store)
    if args.json:
        print_json(report.to_json())
    else:
        withdrawn = (
            f"; withdrew {report.reviews_withdrawn} of your corrections and confirmations of those photos"
            if report.reviews_withdrawn
            else ""
        )
        print(
            f"Undid run {report.run_id}: removed {report.removed} copies, restored {report.restored} photos{withdrawn}."
        )
    for path, reason in report.kept:
        print(f"kept: {path}: {reason}", file=sys.stderr)
    return ExitCode.OK


def cmd_models(args: argparse.Namespace) -> int:
    from sorter.model.catalogue import catalogue
    from sorter.paths import bundled_models_dir, model_search_dirs

    rows = [entry.to_json() for entry in catalogue(model_search_dirs(), bundled_models_dir())]
    if args.json:
        print_json({"models": rows})
    else:
        for row in rows:
            where = "bundled" if row["bundled"] else "user"
            status = row["error"] or f"{row['classes']} classes"
            print(f"{row['name']:<24} {where:<8} {status}  {row['path']}")
    return ExitCode.OK


def cmd_info(args: argparse.Namespace) -> int:
    from sorter.model.bundle import describe, load_bundle
    from sorter.paths import resolve_model

    path = resolve_model(args.model)
    bundle = load_bundle(path)
    info = {"name": bundle.name, "path": str(path), **describe(bundle.config)}
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            if key != "training":
                print(f"{key}: {value}")
        for key, value in info["training"].items():
            print(f"training.{key}: {value}")
    return ExitCode.OK


def cmd_train(args: argparse.Namespace) -> int:
    from sorter.paths import feature_cache
    from sorter.train.train import main as train_main

    if args.cluster:
        _features_on_cluster(args, feature_cache(), quiet=args.json)
    trained = train_main(args, progress=train_progress(not args.json), feature_cache=feature_cache())
    summary = {k: v for k, v in trained.report.items() if k != "valid_files"}
    if args.json:
        print_json(summary)
    else:
        ev = trained.evaluation
        print(f"Wrote {trained.path} ({len(ev.classes)} classes); report {trained.report_path}")
        print(f"Validation accuracy {ev.accuracy:.1%} on {ev.n} photos; unsure threshold {summary['threshold']}")
        for step in summary.get("tried", []):
            accuracy = step["valid_accuracy"]
            measured = f"validation {accuracy:.1%}" if accuracy is not None else step.get("note", "")
            print(
                f"  tried {step['recipe']:<5} {measured} (at {step['seconds']:.0f} s)"
                f"{'  <- kept' if step['kept'] else ''}"
            )
        for cls, row in ev.per_class.items():
            print(f"  {cls:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  (n={row['n']})")
    return ExitCode.OK


def _features_on_cluster(args: argparse.Namespace, cache_path: Path, *, quiet: bool) -> None:
    """``train --cluster``: the clean features of every photo computed on the cluster, into the
    feature cache that training then reads (it computes none itself)."""
    import tempfile

    from sorter.cluster import Pool, connect, disconnect, precompute_features
    from sorter.errors import SorterError, UsageError
    from sorter.files.feature_cache import FeatureCache
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
    from sorter.learn.datasets import load_data
    from sorter.learn.evaluate import evaluate
    from sorter.model.classifier import Classifier
    from sorter.paths import cache_dir, resolve_model

    classifier = Classifier.load(resolve_model(args.model), args.device, backend=args.backend, cache_dir=cache_dir())
    delim = args.label_delim if args.label_delim is not None else (" " if classifier.config.multi_label else None)
    data = load_data(args.data, csv_file=Path(args.csv) if args.csv else None, label_delim=delim)
    result = evaluate(classifier, data.samples, threshold=args.threshold)
    if args.json:
        print_json(result.to_json())
    else:
        extra = f", F2 {result.fbeta:.3f}" if result.fbeta is not None else ""
        print(f"{result.n} photos: accuracy {result.accuracy:.1%}{extra}")
        for cls, row in result.per_class.items():
            print(f"  {cls:<20} precision {row['precision']:.2f}  recall {row['recall']:.2f}  (n={row['n']})")
    return ExitCode.PARTIAL if result.failed else ExitCode.OK


def _output_of(photo: Path) -> Path:
    """The sorted folder a photo lies in: the nearest parent holding a Sorter journal."""
    from sorter.errors import UsageError
    from sorter.files.journal import is_output_folder

    for parent in photo.expanduser().resolve().parents:
        if is_output_folder(parent):
            return parent
    raise UsageError(f"'{photo}' is not inside a folder Sorter sorted.")


def cmd_correct(args: argparse.Namespace) -> int:
    from sorter.files.corrections import CORRECTION, CorrectionStore, correct
    from sorter.paths import corrections_db

    photo = Path(args.photo)
    with CorrectionStore(corrections_db()) as store:
        done = correct(_output_of(photo), photo, args.label, store)
        count = store.count(CORRECTION)
    print(f"Moved to {done.path}; {count} corrections are saved for retraining.")
    return ExitCode.OK


def cmd_confirm(args: argparse.Namespace) -> int:
    from sorter.files.corrections import CONFIRMATION, CorrectionStore, confirm
    from sorter.paths import corrections_db

    with CorrectionStore(corrections_db()) as store:
        for photo in args.photos:
            path = Path(photo)
            confirm(_output_of(path), path, store)
        count = store.count(CONFIRMATION)
    print(f"Confirmed {len(args.photos)} photo(s); {count} confirmations are saved for retraining.")
    return ExitCode.OK


def cmd_resort(args: argparse.Namespace) -> int:
    from sorter.files.corrections import CorrectionStore
    from sorter.files.journal import Journal
    from sorter.jobs.rescore import sorted_with
    from sorter.jobs.resort import resort, sorting_model
    from sorter.model.bundle import load_bundle
    from sorter.paths import corrections_db, resolve_model

    output = Path(args.output).expanduser().resolve()
    bundle = load_bundle(resolve_model(args.model or sorting_model(output)))
    with Journal.open(output, create=False, lock=False) as journal:
        choices = sorted_with(journal).overridden(
            threshold=args.threshold, precision=args.precision, other_folder=args.other_folder
        )
    policy = choices.policy(bundle.config)
    with CorrectionStore(corrections_db()) as store:
        report = resort(output, bundle, store, policy)
    if args.json:
        print_json(report.to_json())
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
                f"Confidence recalibrated on {report.calibrated_on} "
                f"{'photo' if report.calibrated_on == 1 else 'photos'} you reviewed"
                + (f"; thresholds now: {', '.join(changed)}." if changed else "; no threshold changed.")
            )
        if report.worth():
            print(report.worth())
        if report.without_features:
            print(
                f"{report.without_features} photos have no stored features for this model and were left alone.",
                file=sys.stderr,
            )
    for path, reason in report.failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    return ExitCode.PARTIAL if report.failed else ExitCode.OK


def cmd_retrain(args: argparse.Namespace) -> int:
    from sorter.files.corrections import CorrectionStore
    from sorter.jobs.reviews import plan_retrain
    from sorter.learn.datasets import load_data
    from sorter.model.classifier import resolve_device
    from sorter.paths import corrections_db, feature_cache, resolve_model
    from sorter.train.retrain import retrain

    model = resolve_model(args.model)
    data = load_data(args.data) if args.data else None
    with CorrectionStore(corrections_db()) as store:
        plan = plan_retrain(store, model)
        if not args.json:
            for line in plan.sentences():
                print(line, file=sys.stderr)
        if plan.reviews and not args.yes and not args.json and sys.stdin.isatty():
            answer = input("Retrain with these? [y/N] ").strip().casefold()
            if answer not in ("y", "yes"):
                print("Nothing was retrained.", file=sys.stderr)
                return ExitCode.CANCELLED
        result = retrain(
            model,
            Path(args.out),
            store,
            data=data,
            device=str(resolve_device(args.device)),
            progress=train_progress(not args.json),
            feature_cache=feature_cache(),
            from_photos=args.from_photos,
        )
    if args.json:
        print_json({**result.to_json(), "plan": plan.to_json()})
    else:
        same = "same" if result.same_validation else "CHANGED (data differs from the old training)"
        print(
            f"Wrote {result.new_path} from {result.corrections} corrections and {result.confirmations} "
            f"confirmations in {result.seconds:.0f} s; old model kept at {result.old_path}."
        )
        if result.training_data == "replay":
            print(
                "Trained on the features the old model keeps of its training photos, and on your photos "
                "(--from-photos reads the photos again)."
            )
        print(f"Validation photos ({same}): old {result.old_valid_accuracy:.1%} -> new {result.new_valid_accuracy:.1%}")
        print(
            f"Corrected photos: old {result.old_corrected_accuracy:.1%} -> new {result.new_corrected_accuracy:.1%} "
            "(new: its head alone, since its memory holds them)"
        )
        if result.new_classes:
            print(f"New classes: {', '.join(result.new_classes)}")
    return ExitCode.OK
