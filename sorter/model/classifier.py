"""Run a bundle over a stream of photos: decode in threads, infer in batches, yield in order.

Pillow releases the GIL while it decodes and resizes, so a small thread pool decodes the next
photos while torch runs the current batch. Only a bounded window of photos is in flight, so memory
stays flat however large the folder.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import torch

from sorter.errors import DeviceError, ModelLoadError, UnsupportedImageError
from sorter.files.images import dhash_array
from sorter.model.bundle import Bundle, load_bundle
from sorter.model.config import BundleConfig
from sorter.model.people import FaceFinder
from sorter.model.pipeline import InferencePipeline
from sorter.model.preprocess import Preprocessor

log = logging.getLogger(__name__)
T = TypeVar("T")


def resolve_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; asking for ``cuda`` without one is an error, never a
    silent switch to the CPU."""
    if preference == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif preference == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("A GPU (CUDA) was requested, but none is available on this computer.")
        device = torch.device("cuda")
    elif preference == "cpu":
        device = torch.device("cpu")
    else:
        raise DeviceError(f"Unknown device '{preference}': choose auto, cpu or cuda.")
    log.info("using device %s", device)
    return device


@dataclass(frozen=True)
class Prediction(Generic[T]):
    """One photo's outcome: probabilities per class, or why it could not be read."""

    item: T
    probs: np.ndarray | None
    error: str | None = None
    features: np.ndarray | None = None
    """Pooled body features (what re-scoring and the exemplar memory compare)."""
    fit: float = 1.0
    """Best cosine to a class mean or stored photo: low means it looks like none of the classes."""
    face: float | None = None
    """The largest face's prominence (see :mod:`sorter.model.people`); None for a bundle that
    does not look for people."""
    look: int | None = None
    """Its difference hash (:func:`sorter.files.images.dhash_array`), for grouping near-duplicates
    in the review without decoding the photo again."""


BACKENDS = ("auto", "torch", "onnx")


class Classifier:
    """A loaded bundle on a device, ready to classify.

    Args:
        bundle: a validated model bundle.
        device: where the network runs (see :func:`resolve_device`).
        batch_size: photos per forward pass.
        decode_threads: photos decoded at once; defaults to the number of CPU cores.
        backend: ``torch``; ``onnx`` (ONNX Runtime, CPU only, about 1.8x faster on a CPU); or
            ``auto``: ONNX Runtime on the CPU when it is installed, torch otherwise (logged).
        cache_dir: where exported ONNX graphs are kept between runs; None exports each time.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: torch.device,
        *,
        batch_size: int = 16,
        decode_threads: int | None = None,
        backend: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.bundle = bundle
        self.config: BundleConfig = bundle.config
        self.device = device
        self.batch_size = max(1, batch_size)
        self.decode_threads = max(1, decode_threads or os.cpu_count() or 1)
        # a bundle that opts into people gets the detector; loading it fails here, not per photo
        people = self.config.people
        self.faces = FaceFinder(people.min_face) if people is not None else None
        self.preprocess = Preprocessor(self.config, self.faces)
        self.pipeline = InferencePipeline(bundle.build_model(), self.config, bundle.memory, bundle.ood_anchors).eval()
        self.backend = self._choose_backend(backend)
        self._engine: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]] = self._torch_engine
        if self.backend == "onnx":
            from sorter.model import onnx_backend

            threads = torch.get_num_threads()
            try:
                self._engine = onnx_backend.load_engine(bundle, self.pipeline, threads=threads, cache_dir=cache_dir)
            except ModelLoadError as exc:
                if backend == "onnx":
                    raise
                # auto: an architecture the exporter cannot handle still sorts, with torch, and the
                # summary says so.
                log.warning("sorting with torch on the CPU: %s", exc)
                self.backend = "torch"
        self.pipeline = self.pipeline.to(device)
        self.pipeline.net.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            self.pipeline.net.half()

    def _choose_backend(self, backend: str) -> str:
        if backend not in BACKENDS:
            raise DeviceError(f"Unknown backend '{backend}': choose {', '.join(BACKENDS)}.")
        if backend == "torch" or (backend == "auto" and self.device.type != "cpu"):
            return "torch"
        if self.device.type != "cpu":
            raise DeviceError("The ONNX Runtime backend runs on the CPU only: choose --device cpu or --backend torch.")
        from sorter.model.onnx_backend import available

        missing = available()
        if missing is None:
            return "onnx"
        if backend == "onnx":
            raise DeviceError(f"The ONNX Runtime backend cannot run: {missing}.")
        log.warning("sorting with torch on the CPU: %s", missing)
        return "torch"

    @classmethod
    def load(
        cls,
        path: Path | str,
        device: str = "auto",
        *,
        backend: str = "auto",
        cache_dir: Path | None = None,
        **kwargs: int,
    ) -> Classifier:
        return cls(load_bundle(path), resolve_device(device), backend=backend, cache_dir=cache_dir, **kwargs)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def model(self) -> torch.nn.Module:
        """The torch network, on :attr:`device` (Grad-CAM needs its gradients)."""
        return self.pipeline.net

    def predict_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for decoded ``H×W×3`` uint8 arrays."""
        return self._engine(np.stack(arrays))[0]

    def predict_with_features(self, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probabilities (N, classes), pooled body features (N, D) and fit (N,)."""
        return self._engine(np.stack(arrays))

    def predict_decoded(
        self, decoded: Sequence[tuple[np.ndarray, float]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Probabilities, features, fit and face prominences (None for a bundle that does not
        look for people) for photos as :meth:`Preprocessor.with_faces` decodes them: the local
        path and the cluster's actors both finish here. A face is evidence the decision weighs
        (:func:`sorter.learn.evidence.gather`), not part of the network's answer."""
        probs, features, fit = self._engine(np.stack([arr for arr, _ in decoded]))
        faces = np.array([face for _, face in decoded], dtype=np.float32) if self.faces is not None else None
        return probs, features, fit, faces

    @property
    def feature_recipe(self) -> str:
        """Identifies the features this network makes: same recipe, comparable vectors."""
        return self.bundle.feature_recipe

    def _torch_engine(self, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = torch.from_numpy(photos)
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        with torch.inference_mode():
            probs, features, fit = self.pipeline(batch)
        return probs.cpu().numpy(), features.cpu().numpy(), fit.float().cpu().numpy()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW on the device → the network's input, with the bundle's mean and std."""
        return self.pipeline.normalise(x)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities: sigmoid (multi-label) or softmax, summed into folders when
        the bundle groups its outputs."""
        return self.pipeline.probabilities(logits)

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        """Yield one prediction per item, in input order, decoding ahead in a thread pool.

        Stopping the iteration (``close()``) cancels the decodes still queued.
        """
        window = self.batch_size * 2 + self.decode_threads
        pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="sorter-decode")
        queue: deque[tuple[T, Future[tuple[np.ndarray, float]]]] = deque()
        source = iter(items)
        try:
            exhausted = False
            pending: list[tuple[T, tuple[np.ndarray, float] | None, str | None]] = []
            while True:
                while not exhausted and len(queue) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    queue.append((item, pool.submit(self.preprocess.with_faces, path_of(item))))
                if not queue:
                    break
                item, future = queue.popleft()
                try:
                    pending.append((item, future.result(), None))
                except UnsupportedImageError as exc:
                    pending.append((item, None, exc.reason))
                ready = sum(1 for _, arr, _ in pending if arr is not None)
                if ready >= self.batch_size or (exhausted and not queue):
                    yield from self._flush(pending)
                    pending = []
            yield from self._flush(pending)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _flush(self, pending: list[tuple[T, tuple[np.ndarray, float] | None, str | None]]) -> Iterator[Prediction[T]]:
        decoded = [got for _, got, _ in pending if got is not None]
        if not decoded:
            for item, _, error in pending:
                yield Prediction(item, None, error)
            return
        probs, features, fit, faces = self.predict_decoded(decoded)
        rows = iter(range(len(decoded)))
        for item, got, error in pending:
            if got is None:
                yield Prediction(item, None, error)
            else:
                row = next(rows)
                face = None if faces is None else float(faces[row])
                look = dhash_array(got[0])
                yield Prediction(item, probs[row], features=features[row], fit=float(fit[row]), face=face, look=look)


def top_k(probs: np.ndarray, classes: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    order = np.argsort(-probs)[:k]
    return [(classes[i], float(probs[i])) for i in order]
