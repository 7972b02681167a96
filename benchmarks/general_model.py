"""What the embedded general model does with real photos, as a user's first sort meets it. Prints tables.

Each folder is sorted with ``sort_folder`` (a dry run: the same decisions, nothing written), so the
face detector, the grouping and the threshold all act as they do for a user. For every class of
``../shared/datasets/pacs_photo`` (and, with ``--sets``, hymenoptera and furniture7): the share of
its photos that reach the folder a person would expect, a wrong folder, or ``_unsure``; the
people targets of issue 21 (at least 90 % of the people in ``People``, at most 2 % of the other
classes); and where each photo of ``assets/samples/`` goes.

Run: ``python benchmarks/general_model.py [--sets pacs_photo hymenoptera furniture7] [--model general]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from sorter.jobs.events import SortEvent, drive
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.classifier import Classifier
from sorter.names import UNSURE_FOLDER
from sorter.paths import resolve_model

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"

EXPECTED = {
    "pacs_photo": {
        "dog": "Animals",
        "elephant": "Animals",
        "giraffe": "Animals",
        "horse": "Animals",
        "guitar": "Music",
        "house": "Buildings & places",
        "person": "People",
    },
    "hymenoptera": {"ants": "Animals", "bees": "Animals"},
    "furniture7": {
        "bed": "Furniture & home",
        "chair": "Furniture & home",
        "cupboard": "Furniture & home",
        "sofa": "Furniture & home",
        "table": "Furniture & home",
        "tv": "Electronics",
    },
}
SAMPLES_EXPECTED = {
    "astronaut": "People",
    "camera": "Electronics",
    "chelsea": "Animals",
    "coffee": "Food & drink",
    "rocket": "Vehicles",
}
"""The samples with one right folder; brick, grass and the Hubble deep field have none (only
``_unsure`` is right for them)."""


def sort_dry(classifier: Classifier, folder: Path) -> list[SortEvent]:
    events: list[SortEvent] = []
    with tempfile.TemporaryDirectory() as tmp:
        drive(sort_folder(SortOptions(folder, Path(tmp) / "out", dry_run=True), classifier), events.append)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="general")
    parser.add_argument(
        "--sets", nargs="*", default=["pacs_photo"], choices=list(EXPECTED), help="labelled sets to sort"
    )
    args = parser.parse_args()
    classifier = Classifier.load(resolve_model(args.model), "cpu")
    sets = args.sets
    print(f"model {args.model}, {classifier.backend} on the CPU; decisions as `sorter sort` makes them\n")
    print(
        f"{'set':<12} {'class':<9} {'photos':>6}  {'expected folder':<20} "
        f"{'right':>6} {'wrong':>6} {'unsure':>6}  {'in People':>9}"
    )
    people_hits: dict[bool, list[bool]] = defaultdict(list)
    for name in sets:
        root = DATASETS / name / "images"
        with tempfile.TemporaryDirectory() as tmp:
            for cls, expected in EXPECTED[name].items():
                # one class at a time, so the job's shift check and timing see one kind of photo
                folder = Path(tmp) / cls
                shutil.copytree(root / cls, folder)
                started = time.perf_counter()
                events = sort_dry(classifier, folder)
                seconds = time.perf_counter() - started
                where = Counter(e.labels[0] if e.labels else "failed" for e in events)
                n = len(events)
                right, unsure = where[expected], where[UNSURE_FOLDER]
                wrong = n - right - unsure
                if name == "pacs_photo":
                    people_hits[cls == "person"] += [e.labels[:1] == ("People",) for e in events]
                print(
                    f"{name:<12} {cls:<9} {n:>6}  {expected:<20} {right / n:>6.1%} {wrong / n:>6.1%} "
                    f"{unsure / n:>6.1%}  {where['People'] / n:>9.1%}   ({n / seconds:.0f} photos/s)"
                )
    people, others = people_hits[True], people_hits[False]
    if people and others:
        print(
            f"\npacs_photo people in People: {sum(people)}/{len(people)} = {sum(people) / len(people):.1%} "
            "(target >= 90 %); "
            f"other classes in People: {sum(others)}/{len(others)} = {sum(others) / len(others):.1%} (target <= 2 %)"
        )
    print("\nassets/samples:")
    events = sort_dry(classifier, ROOT / "assets" / "samples")
    wrong = sorted_n = 0
    for e in sorted(events, key=lambda e: e.source.name):
        label = e.labels[0] if e.labels else "failed"
        expected = SAMPLES_EXPECTED.get(e.source.stem)
        verdict = "unsure" if label == UNSURE_FOLDER else ("right" if label == expected else "WRONG")
        sorted_n += label != UNSURE_FOLDER
        wrong += verdict == "WRONG"
        print(f"  {e.source.name:<24} {label:<20} {e.confidence or 0:5.2f}  {verdict}  {e.reason or ''}")
    print(f"  {sorted_n} of {len(events)} sorted, {wrong} into a wrong folder")
    note = classifier.bundle.lacks_statistics
    print(f"\nthe run's note: {note}")


if __name__ == "__main__":
    main()
