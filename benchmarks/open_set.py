"""Photos of none of the categories: how many does a model sort into one, and at what cost?

For a model with the statistics of "none of these" (fit to class means) and calibrated
confidence, one run prints, over precision targets, and saves a precision–coverage plot:

* ``in-domain sorted``: share of the model's own validation photos (its report's ``valid_files``)
  put into a category, and the ``precision`` of those;
* ``out-of-domain sorted``: share of photos of other things put into a category: hymenoptera
  (ants and bees), the sample photos in ``assets/samples``, and furniture7 photos of the classes
  the model does not know when it knows only some (``--unknown``);
* the same without the fit test (softmax threshold alone), to show what the fit adds;
* ``held out``: the calibration and fit threshold fitted again on one half of the validation
  photos and measured on the other half (both ways, summed), so the in-domain figures are not
  measured on the photos they were fitted on.

The general model has no validation photos here; for it the script prints where each sample photo
goes and why.

Run: ``python benchmarks/open_set.py [--model models/furniture.safetensors] [--plot docs/open_set.png]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sorter.jobs.policy import Policy, policy_for  # noqa: E402
from sorter.learn.calibration import calibrate  # noqa: E402
from sorter.learn.ood import fit_threshold  # noqa: E402
from sorter.model.bundle import load_bundle  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402

DATASETS = Path(os.environ.get("SORTER_DATASETS", ROOT.parent / "shared" / "datasets"))
PRECISIONS = (0.80, 0.85, 0.90, 0.93, 0.95, 0.97, 0.98, 0.99)


def predict(classifier: Classifier, paths: list[Path]) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    probs, fits, kept = [], [], []
    for p in classifier.classify(paths, lambda p: p):
        if p.probs is not None:
            probs.append(p.probs)
            fits.append(p.fit)
            kept.append(p.item)
    return np.stack(probs), np.array(fits), kept


def sorted_mask(
    classifier: Classifier, probs: np.ndarray, fits: np.ndarray, precision: float, use_fit: bool
) -> np.ndarray:
    policy = policy_for(classifier.config, precision=precision)
    if not use_fit:
        policy = policy.__class__(policy.classes, policy.thresholds, policy.multi_label, None, policy.other_folder)
    return np.array([policy.decide(p, float(f))[1] is None for p, f in zip(probs, fits, strict=True)])


def _tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def held_out(
    classes: tuple[str, ...],
    vp: np.ndarray,
    vf: np.ndarray,
    truth: np.ndarray,
    groups: dict[str, tuple[np.ndarray, np.ndarray]],
    targets: tuple[float, ...] = (0.95, 0.97),
) -> None:
    """Two-fold check: calibrate on half the validation photos, measure on the other half."""
    halves = [np.arange(len(vp)) % 2 == k for k in (0, 1)]
    print()
    print("held out (calibration and fit threshold refitted on one half of the validation photos,")
    print("measured on the other; both ways):")
    columns = " ".join(f"{n + ' sorted':>24}" for n in groups)
    print(f"{'target':>7} {'in-domain sorted':>17} {'precision':>10} {columns}")
    for target in targets:
        sorted_n = right_n = n = 0
        outside = dict.fromkeys(groups, 0)
        for fit_on, measure in ((halves[0], halves[1]), (halves[1], halves[0])):
            cal = calibrate(np.log(np.clip(vp[fit_on], 1e-12, 1.0)), truth[fit_on])
            policy = Policy(classes, cal.thresholds(target), False, fit_threshold(vf[fit_on]))
            probs = _tempered(vp[measure], cal.temperature)
            mask = np.array([policy.decide(p, float(f))[1] is None for p, f in zip(probs, vf[measure], strict=True)])
            n += len(mask)
            sorted_n += int(mask.sum())
            right_n += int((probs.argmax(1) == truth[measure])[mask].sum())
            for name, (gp, gf) in groups.items():
                tp = _tempered(gp, cal.temperature)
                outside[name] += sum(policy.decide(p, float(f))[1] is None for p, f in zip(tp, gf, strict=True))
        print(
            f"{target:>7.0%} {sorted_n / n:>17.1%} {right_n / max(1, sorted_n):>10.1%} "
            + " ".join(f"{outside[g] / (2 * len(groups[g][0])):>24.1%}" for g in groups)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "furniture.safetensors"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "open_set.png"))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    model = Path(args.model)
    classifier = Classifier(load_bundle(model), torch.device("cpu"))
    config = classifier.config
    print(
        f"model {model.name}: fit threshold {config.ood.threshold if config.ood else None}, "
        f"temperature {config.temperature:.2f}"
    )
    samples = sorted((ROOT / "assets" / "samples").glob("*.jpg"))
    report = model.with_suffix(".report.json")
    if not report.exists() or config.calibration is None:
        probs, fits, kept = predict(classifier, samples)
        policy = policy_for(config)
        for path, p, f in zip(kept, probs, fits, strict=True):
            labels, reason = policy.decide(p, float(f))
            print(f"  {path.name:<24} -> {labels[0]:<20} {p.max():.0%} fit {f:.3f}  {reason or ''}")
        return
    valid = [Path(p) for p in json.loads(report.read_text())["valid_files"]]
    truth = [config.classes.index(p.parent.name) for p in valid]
    outside = sorted((DATASETS / "hymenoptera" / "images").rglob("*.jp*g")) + samples
    unknown = [
        p
        for c in ("cupboard", "fridge", "table", "tv")
        if c not in config.classes
        for p in sorted((DATASETS / "furniture7" / "images" / c).iterdir())
    ]
    vp, vf, vkept = predict(classifier, valid)
    truth_arr = np.array([truth[valid.index(p)] for p in vkept])
    op, of, _ = predict(classifier, outside)
    groups = {"other things": (op, of)}
    if unknown:
        up, uf, _ = predict(classifier, unknown)
        groups["unknown furniture"] = (up, uf)
    rows = []
    for use_fit in (True, False):
        for precision in PRECISIONS:
            mask = sorted_mask(classifier, vp, vf, precision, use_fit)
            right = vp.argmax(1) == truth_arr
            row = {
                "fit": use_fit,
                "target": precision,
                "coverage": float(mask.mean()),
                "precision": float(right[mask].mean()) if mask.any() else float("nan"),
            }
            for name, (p, f) in groups.items():
                row[name] = float(sorted_mask(classifier, p, f, precision, use_fit).mean())
            rows.append(row)
    names = list(groups)
    held_out(config.classes, vp, vf, truth_arr, groups)
    print(
        f"in-domain: {len(vkept)} validation photos; out of domain: "
        + ", ".join(f"{n} {len(groups[n][0])}" for n in names)
    )
    header = f"{'fit test':<9} {'target':>7} {'in-domain sorted':>17} {'precision':>10} " + " ".join(
        f"{n + ' sorted':>24}" for n in names
    )
    print(header)
    for r in rows:
        print(
            f"{'yes' if r['fit'] else 'no':<9} {r['target']:>7.0%} {r['coverage']:>17.1%} {r['precision']:>10.1%} "
            + " ".join(f"{r[n]:>24.1%}" for n in names)
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    for use_fit, style in ((True, "-o"), (False, "--s")):
        pts = [r for r in rows if r["fit"] == use_fit]
        label = "fit test + calibrated thresholds" if use_fit else "calibrated thresholds alone"
        ax.plot([r["coverage"] for r in pts], [r["precision"] for r in pts], style, label=f"in-domain: {label}")
        ax.plot(
            [r["coverage"] for r in pts],
            [1 - r[names[0]] for r in pts],
            style,
            alpha=0.5,
            label=f"{names[0]} kept out: {label}",
        )
    ax.set_xlabel("share of in-domain validation photos sorted (coverage)")
    ax.set_ylabel("precision / share of out-of-domain kept out")
    ax.set_title(f"{model.stem}: precision targets {PRECISIONS[0]:.0%}–{PRECISIONS[-1]:.0%}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
