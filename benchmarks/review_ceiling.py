"""How much of a shifted folder could *any* rule sort after N labelled photos? Prints one table.

Issue 25 asks for >= 50 % of the photos not reviewed sorted at >= 90 % right after 30 reviews, on
paintings (``pacs_art``) and on sketches (``pacs_sketch``), by a model trained on ``pacs_photo``.
``trust.py`` measures Sorter's re-sort against that, and beside it an oracle: the most that any cut
of the re-scored confidence could sort at 90 % right. This script asks whether the *features*
allow it at all, whatever the rule and whichever photos the user labelled:

* the body features of every photo of the folder are computed once with the trained bundle;
* N photos are drawn at random (``--draws`` times): a random sample is the fairest the review
  could be, not the least confident first;
* a multinomial logistic regression is fitted to the bundle's training replay plus the N photos
  (weighted x10), and, separately, to the N photos alone;
* label propagation over the folder's 10-nearest-neighbour graph, seeded with the N photos and the
  first fit's probabilities as its prior, is the transductive variant;
* the ceiling is the oracle's: sort the rest by the fit's confidence and take the longest run that
  stays >= 90 % right (no threshold chosen without the labels can do better).

The model is the one ``trust.py`` trains (same split of ``pacs_photo``, same recipes); pass
``--work`` to reuse ``trust.py``'s folder.

Run: ``python benchmarks/review_ceiling.py [--recipe head|default] [--n 30,60,120] [--draws 3]
[--work DIR]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sklearn.linear_model import LogisticRegression  # noqa: E402

from benchmarks.trust import DATASETS, oracle_share, split_source, train_model  # noqa: E402
from sorter.learn.datasets import Sample, load_data  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402

PRECISION = 0.9
USER_WEIGHT = 10.0
"""How much one labelled photo of the folder counts against one training row in the fit."""


def features_of(classifier: Classifier, samples: list[Sample]) -> np.ndarray:
    """Body features of every photo, through the classifier's own batched path, as sorting keeps them."""
    rows = []
    for found in classifier.classify([s.path for s in samples], lambda p: p):
        if found.features is None:
            raise SystemExit(f"{found.item}: {found.error or 'no features'}")
        rows.append(found.features)
    return np.stack(rows).astype(np.float32)


def propagate(features: np.ndarray, prior: np.ndarray, seeds: dict[int, int], k: int = 10) -> np.ndarray:
    """Label propagation (symmetric normalisation, alpha 0.9, 30 steps) over the k-NN cosine graph."""
    x = features / np.linalg.norm(features, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argsort(-sim, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(x)), k)
    weights = np.zeros_like(sim)
    weights[rows, nearest.ravel()] = np.exp(20.0 * (sim[rows, nearest.ravel()] - 1.0))
    weights = np.maximum(weights, weights.T)
    degree = np.sqrt(np.maximum(weights.sum(1), 1e-12))
    step = weights / degree[:, None] / degree[None, :]
    start = 0.3 * prior
    for i, c in seeds.items():
        start[i] = 0.0
        start[i, c] = 1.0
    spread = start.copy()
    for _ in range(30):
        spread = 0.9 * step @ spread + 0.1 * start
    spread = np.maximum(spread, 1e-12)
    return spread / spread.sum(1, keepdims=True)


def fit(x: np.ndarray, y: np.ndarray, weight: np.ndarray, classes: int, apply_to: np.ndarray) -> np.ndarray:
    model = LogisticRegression(C=0.5, max_iter=500).fit(x, y, sample_weight=weight)
    probs = np.zeros((len(apply_to), classes))
    probs[:, model.classes_] = model.predict_proba(apply_to)
    return probs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", choices=["head", "default"], default="default")
    parser.add_argument("--n", default="30,60,120", help="labelled photos per draw")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--work", help="keeps trained models between runs (trust.py's --work works)")
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sorter-ceiling-"))
    work.mkdir(parents=True, exist_ok=True)
    train, _ = split_source(load_data([DATASETS / "pacs_photo" / "images"]), 0.2)
    model = train_model("pacs", train, work, args.recipe)
    bundle = load_bundle(model)
    classes = list(bundle.config.classes)
    replay = bundle.read_replay()
    if replay is None:
        raise SystemExit(f"{model} keeps no training replay")
    xs, ys = replay.features.astype(np.float32), replay.labels
    classifier = Classifier.load(model, device="cpu")
    arch = bundle.config.architecture
    print(f"model: {model.name} ({arch}); >= {PRECISION:.0%} right; mean (least) of {args.draws} draws")
    print(f"{'folder':12} {'N':>4} {'fit':28} {'top-1':>7} {'ceiling':>16}")
    for name in ("pacs_art", "pacs_sketch"):
        samples = list(load_data([DATASETS / name / "images"]).samples)
        feats = features_of(classifier, samples)
        truth = np.array([classes.index(s.labels[0]) for s in samples])
        for n in (int(v) for v in args.n.split(",")):
            results: dict[str, list[tuple[float, float]]] = {}
            for draw in range(args.draws):
                chosen = np.random.default_rng(draw).choice(len(samples), n, replace=False)
                rest = np.ones(len(samples), dtype=bool)
                rest[chosen] = False
                both = fit(
                    np.concatenate([xs, feats[chosen]]),
                    np.concatenate([ys, truth[chosen]]),
                    np.concatenate([np.ones(len(ys)), np.full(n, USER_WEIGHT)]),
                    len(classes),
                    feats,
                )
                alone = fit(feats[chosen], truth[chosen], np.ones(n), len(classes), feats)
                spread = propagate(feats, both, {int(i): int(truth[i]) for i in chosen})
                for label, probs in (
                    ("training photos + labelled", both),
                    ("labelled photos alone", alone),
                    ("+ label propagation", spread),
                ):
                    right = (probs.argmax(1) == truth)[rest]
                    ceiling = oracle_share(probs.max(1)[rest], right, PRECISION)
                    results.setdefault(label, []).append((right.mean(), ceiling))
            for label, got in results.items():
                top1 = np.array([a for a, _ in got])
                ceiling = np.array([c for _, c in got])
                print(
                    f"{name:12} {n:4d} {label:28} {top1.mean():7.1%} {ceiling.mean():7.1%} ({ceiling.min():5.1%})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
