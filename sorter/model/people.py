"""People: a face detector beside the classifier, because ImageNet has no class for a person.

The embedded general model knows a thousand ImageNet classes and none of them is "person": on
photos of people it sees a jersey, a suit or a wig and, summed over a dozen folders, is sure of
none (76 % of PACS's people went to ``_unsure``). A frontal-face detector fills that gap. OpenCV's
Haar cascade (Lienhart's ``alt2``, shipped here under its Intel licence, see the XML's header) was
chosen over OpenCV's other detectors by ``benchmarks/people.py``: on PACS photos it finds 100 % of
the people and fires on 0.9 % of the other classes, in 14-30 ms a photo on one thread.

It runs in the decode threads on the photo already decoded for the network (before the crop, so a
face near the edge still counts), grey and small; its answer is one number per photo, the
*prominence*: the largest face's side as a share of the photo's (the square root of its share of
the area), 0 when there is none. A bundle that opts in (``people`` in its config) turns a prominent
face into evidence for its people folder (:func:`with_people`, :func:`vouched`), weighed in one
place, :func:`sorter.learn.evidence.gather`, at sort time and when a review re-scores from the
kept numbers alike, so the two cannot disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sorter.errors import ModelLoadError

CASCADE = Path(__file__).resolve().parent / "data" / "face_frontal_alt2.xml"
DETECTOR_NAME = "opencv-haar-frontalface-alt2"
"""Names the detector and its settings in the feature cache: another detector never matches."""
SIDE = 200
"""The longest side the detector sees. Measured on PACS (``benchmarks/people.py``, and the cost on
12 MP photos with ``benchmarks/sort_speed.py``): at 320 px and scale steps of 1.1 it finds 100 %
of the people with 0.9 % false positives but costs 25 ms a photo, half the sorting rate; at 200 px
and steps of 1.2, 99.4 % and 0.2 % in 7 ms."""
SCALE_STEP = 1.2
MIN_FACE_PX = 20
"""The cascade's own window: at :data:`SIDE` a face must be a tenth of the photo's side."""


@dataclass(frozen=True)
class PeopleRule:
    """What a bundle does with a prominent face.

    ``folder``: the class a photo with a prominent face belongs to. ``min_face``: the prominence
    from which a face is prominent (0.1: a face a tenth of the photo's side, 1 % of its area, as
    measured). ``confidence``: the probability the folder gets at least, the detector's measured
    precision on photos where people are not the majority.
    """

    folder: str
    min_face: float = 0.1
    confidence: float = 0.95

    def to_json(self) -> dict[str, object]:
        return {"folder": self.folder, "min_face": self.min_face, "confidence": self.confidence}


def with_people(
    probs: np.ndarray, prominence: np.ndarray | None, rule: PeopleRule | None, classes: tuple[str, ...]
) -> np.ndarray:
    """Probabilities (N, C) with the evidence of a prominent face: the people folder gets at
    least ``rule.confidence`` and the other folders share the rest in their old proportions.
    Rows without a prominent face, and everything when there is no rule or no detector's
    answer, are returned unchanged."""
    if rule is None or prominence is None:
        return probs
    folder = classes.index(rule.folder)
    out = np.array(probs, dtype=np.float32, copy=True)
    hit = vouched(prominence, rule)
    if hit is None or not hit.any():
        return out
    rows = out[hit]
    people = np.maximum(rows[:, folder], rule.confidence)
    rest = 1.0 - rows[:, folder]
    scale = np.where(rest > 1e-6, (1.0 - people) / np.maximum(rest, 1e-6), 0.0)
    rows *= scale[:, None]
    rows[:, folder] = people
    out[hit] = rows
    return out


def vouched(prominence: np.ndarray | None, rule: PeopleRule | None) -> np.ndarray | None:
    """Rows whose face the rule acts on. The detector vouches for them: they count as fitting a
    category and as typical of the training photos (a trained bundle's "none of these" and shift
    checks compare with its categories' photos, and a person is unlike a chair's), else the
    evidence for the people folder would be overruled by checks that never saw a person."""
    if rule is None or prominence is None:
        return None
    hit: np.ndarray = np.asarray(prominence, dtype=np.float32) >= rule.min_face
    return hit


class FaceFinder:
    """The packaged cascade, loaded once; safe to call from several decode threads (OpenCV's
    ``detectMultiScale`` keeps no state between calls, but a cascade is loaded per thread so no
    two threads share one object).

    ``min_face``: the smallest prominence worth finding; the cascade does not search smaller
    faces, which is most of its work.
    """

    def __init__(self, min_face: float = 0.1, cascade: Path = CASCADE) -> None:
        self.min_face = min_face
        try:
            import cv2
        except ImportError as exc:
            raise ModelLoadError(
                cascade, "finding people needs OpenCV: pip install 'opencv-python-headless<5'"
            ) from exc
        self._cv2 = cv2
        self._path = cascade
        self._local = threading.local()
        self._load()  # fail here, with the model, not in a decode thread

    def _load(self) -> object:
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._cv2.CascadeClassifier(str(self._path))
            if model.empty():
                raise ModelLoadError(self._path, "the face detector's data file is missing or damaged")
            self._local.model = model
        return model

    def prominence(self, image: np.ndarray) -> float:
        """The largest face's side as a share of the photo's side, 0 if none; ``image`` is
        ``H×W`` grey or ``H×W×3`` RGB, uint8."""
        cv2 = self._cv2
        height, width = image.shape[:2]
        scale = min(1.0, SIDE / max(height, width))
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else np.ascontiguousarray(image)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        smallest = max(MIN_FACE_PX, int(self.min_face * np.sqrt(gray.shape[0] * gray.shape[1])))
        model = self._load()
        faces = model.detectMultiScale(  # type: ignore[attr-defined]
            gray, scaleFactor=SCALE_STEP, minNeighbors=5, minSize=(smallest, smallest)
        )
        if len(faces) == 0:
            return 0.0
        largest = max(int(w) * int(h) for _, _, w, h in faces)
        return float(np.sqrt(largest / float(gray.shape[0] * gray.shape[1])))
