"""How long does the review take to open, and to answer a correction, on a large folder?

The review dialog builds its queue (:func:`sorter.jobs.review_queue.build_queue`) on opening and
again after every correction, confirmation or re-sort: the photos re-scored from their kept
features, ordered, near-duplicates grouped. It used to decode every photo again for its
near-duplicate hash; the hash is now kept when the photo is decoded for sorting. This sorts a
folder, then times, from one run:

* ``open``: the first queue (the dialog opening);
* ``after a correction``: a photo corrected, the queue built again (what a click costs; the
  median of three corrections, each a new set of reviews, so the head is refitted each time);
* ``re-score`` alone after a confirmation (the refit included), and ``hash every file``: what
  grouping used to cost (each photo decoded again for its hash, as the old queue did on every
  rebuild).

Folders: 600 camera-sized photos (12 MP, made from furniture7 with
``../shared/tools/make_large_photos.py``) and 10,000 small real photos (every photo of the shared
sets, and slightly cropped variants of them until there are enough). Targets (issue 26): a
rebuild after a correction in at most 0.5 s on the 600 camera photos and 2 s on 10,000 photos;
opening as fast.

Run: ``python benchmarks/review_latency.py [--sizes 600,10000] [--model furniture]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from sorter.files.corrections import CorrectionStore, confirm, correct  # noqa: E402
from sorter.files.images import dhash  # noqa: E402
from sorter.jobs.events import drive  # noqa: E402
from sorter.jobs.rescore import rescore  # noqa: E402
from sorter.jobs.review_queue import build_queue, photos_in_order  # noqa: E402
from sorter.jobs.sorting import SortOptions, sort_folder  # noqa: E402
from sorter.model.classifier import Classifier  # noqa: E402
from sorter.paths import resolve_model  # noqa: E402


def camera_photos(count: int) -> Path:
    folder = Path(tempfile.gettempdir()) / f"sorter-bench-12mp-{count}"
    if not folder.exists():
        subprocess.run(
            [
                sys.executable,
                str(SHARED / "tools" / "make_large_photos.py"),
                str(SHARED / "datasets" / "furniture7" / "images"),
                str(folder),
                "--count",
                str(count),
            ],
            check=True,
        )
    return folder


def small_photos(count: int) -> Path:
    """``count`` distinct small real photos: the shared sets, then cropped variants of them."""
    folder = Path(tempfile.gettempdir()) / f"sorter-bench-small-distinct-{count}"
    if folder.exists():
        return folder
    sources = sorted(
        p
        for name in ("furniture7", "furniture7_extra", "pacs_photo", "pacs_art", "pacs_sketch")
        for p in (SHARED / "datasets" / name / "images").rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    made = 0
    variant = 0
    while made < count:
        for src in sources:
            if made >= count:
                break
            target = folder / f"{made // 1000:02d}" / f"{made:05d}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(src) as img:
                img = img.convert("RGB")
                if variant:
                    w, h = img.size
                    cut = 0.04 * variant
                    img = img.crop((int(w * cut), int(h * cut), w, h))
                img.thumbnail((256, 256))
                img.save(target, quality=88)
            made += 1
        variant += 1
    return folder


def measure(photos: Path, classifier: Classifier, work: Path) -> dict[str, float]:
    out = work / "sorted"
    summary = drive(sort_folder(SortOptions(photos, out), classifier), lambda e: None)
    bundle = classifier.bundle
    with CorrectionStore(work / "corrections.sqlite") as store:
        started = time.perf_counter()
        queue = build_queue(out, bundle, store)
        opening = time.perf_counter() - started
        after, scoring = [], []
        for photo in photos_in_order(queue)[:3]:  # three corrections, each a new set of reviews
            other = next(c for c in bundle.config.classes if c != photo.parent.name)
            correct(out, photo, other, store)
            started = time.perf_counter()
            build_queue(out, bundle, store)  # the first rebuild after it: the head refits here
            after.append(time.perf_counter() - started)
        confirm(
            out,
            next(p for p in photos_in_order(build_queue(out, bundle, store)) if p.parent.name in bundle.config.classes),
            store,
        )
        started = time.perf_counter()
        rescore(out, bundle, store)
        scoring.append(time.perf_counter() - started)
    paths = [p for p in out.rglob("*.jpg") if ".sorter" not in p.parts]
    sample = paths[:200]
    started = time.perf_counter()
    for p in sample:
        dhash(p)
    hashing = (time.perf_counter() - started) / len(sample) * len(paths)
    return {
        "photos": summary.classified,
        "open": opening,
        "after": statistics.median(after),
        "rescore": scoring[0],
        "hash_files": hashing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="600,10000")
    parser.add_argument("--model", default="furniture")
    args = parser.parse_args()
    classifier = Classifier.load(resolve_model(args.model), "cpu")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        photos = camera_photos(size) if size <= 1000 else small_photos(size)
        kind = "camera (12 MP)" if size <= 1000 else "small"
        with tempfile.TemporaryDirectory(prefix="sorter-review-") as tmp:
            row = measure(photos, classifier, Path(tmp))
        rows.append((kind, row))
        print(f"[{kind}] {row}", flush=True)
    print(f"\nmodel {args.model}; seconds, one run (the median of the rebuilds after 3 corrections)")
    print(f"{'photos':>8} {'kind':<16}{'open':>8}{'after a correction':>20}{'re-score':>10}{'hash every file':>17}")
    for kind, r in rows:
        print(
            f"{r['photos']:>8.0f} {kind:<16}{r['open']:>8.2f}{r['after']:>20.2f}{r['rescore']:>10.2f}"
            f"{r['hash_files']:>17.2f}"
        )
    targets = {600: 0.5, 10000: 2.0}
    for _, r in rows:
        target = targets.get(int(r["photos"]))
        if target is not None:
            verdict = "met" if max(r["open"], r["after"]) <= target else "NOT met"
            print(f"target for {r['photos']:.0f} photos: open and rebuild <= {target} s: {verdict}")
    shutil.rmtree(Path(tempfile.gettempdir()) / "sorter-review-unused", ignore_errors=True)


if __name__ == "__main__":
    main()
