"""Which packaged detector finds people in photos, and at what cost? Prints one table.

Candidates with weights shipped inside a pip package (no download at run time), each run on the
photo decoded small (longest side ``--side`` pixels, grayscale), as the sorting path would have it:

* OpenCV's Haar cascades (``opencv-python-headless`` 4.x; OpenCV 5 no longer ships them):
  frontal face (default, alt2), profile face, upper body, full body;
* OpenCV's HOG people detector (``HOGDescriptor_getDefaultPeopleDetector``);
* ``any face``: frontal or profile.

A photo counts as showing a person when the largest detection covers at least ``--min-area`` of the
image (a person *prominent* in it, not a face in a crowd far behind). Measured on
``../shared/datasets/pacs_photo``: recall on its 432 photos of people, false positives on its other
six classes (dogs, elephants, giraffes, guitars, horses, houses), milliseconds a photo; and which
of ``assets/samples/`` each one fires on (only the astronaut shows a person).

Needs ``pip install 'opencv-python-headless<5'`` (not a dependency of Sorter: this is the
measurement that chooses one). Run: ``python benchmarks/people.py [--side 320] [--min-area 0.01]``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"

Detector = Callable[[np.ndarray], list[tuple[int, int, int, int]]]


def detectors() -> dict[str, Detector]:
    import cv2

    cv2.setNumThreads(1)
    folder = Path(cv2.data.haarcascades)

    def cascade(name: str, min_neighbors: int = 5) -> Detector:
        model = cv2.CascadeClassifier(str(folder / name))
        if model.empty():
            raise SystemExit(f"{name} is not in this OpenCV ({cv2.__version__}); install opencv-python-headless<5")

        def run(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
            found = model.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(20, 20))
            return [tuple(int(v) for v in box) for box in found]  # type: ignore[misc]

        return run

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def people(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes, weights = hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return [tuple(int(v) for v in b) for b, w in zip(boxes, weights, strict=False) if float(w) > 0.5]  # type: ignore[misc]

    frontal, profile = cascade("haarcascade_frontalface_default.xml"), cascade("haarcascade_profileface.xml")
    return {
        "face (frontal, default)": frontal,
        "face (frontal, alt2)": cascade("haarcascade_frontalface_alt2.xml"),
        "face (profile)": profile,
        "any face (frontal or profile)": lambda g: frontal(g) + profile(g),
        "upper body": cascade("haarcascade_upperbody.xml", 3),
        "full body": cascade("haarcascade_fullbody.xml", 3),
        "HOG people": people,
    }


def load(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as img:
        img.draft("L", (side, side))
        gray = ImageOps.exif_transpose(img).convert("L")
        gray.thumbnail((side, side))
        return np.asarray(gray)


def prominent(boxes: list[tuple[int, int, int, int]], shape: tuple[int, ...], min_area: float) -> bool:
    area = shape[0] * shape[1]
    return any(w * h >= min_area * area for _, _, w, h in boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=320)
    parser.add_argument("--min-area", type=float, default=0.01)
    parser.add_argument("--limit", type=int, default=0, help="photos per class at most (0: all)")
    args = parser.parse_args()
    root = DATASETS / "pacs_photo" / "images"
    photos = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.iterdir())
        photos += [(f, folder.name) for f in (files[: args.limit] if args.limit else files)]
    images = [(load(p, args.side), label) for p, label in photos]
    samples = sorted(p for p in (ROOT / "assets" / "samples").iterdir() if p.suffix == ".jpg")
    sample_images = [(p.stem, load(p, args.side)) for p in samples]
    print(
        f"{len(images)} pacs_photo photos ({sum(lb == 'person' for _, lb in images)} of people), "
        f"longest side {args.side} px, prominent = at least {args.min_area:.0%} of the image"
    )
    print(f"{'detector':<30} {'recall':>7} {'false pos':>9} {'ms/photo':>9}  fires on samples")
    for name, detect in detectors().items():
        started = time.perf_counter()
        hits = [(prominent(detect(img), img.shape, args.min_area), label) for img, label in images]
        ms = 1000 * (time.perf_counter() - started) / len(images)
        people = [hit for hit, label in hits if label == "person"]
        others = [hit for hit, label in hits if label != "person"]
        fired = [stem for stem, img in sample_images if prominent(detect(img), img.shape, args.min_area)]
        print(f"{name:<30} {np.mean(people):>7.1%} {np.mean(others):>9.1%} {ms:>9.1f}  {', '.join(fired) or '-'}")


if __name__ == "__main__":
    main()
