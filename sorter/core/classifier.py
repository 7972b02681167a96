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

from sorter.errors import DeviceError, UnsupportedImageError
from sorter.model.bundle import Bundle, BundleConfig, load_bundle
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


class Classifier:
    """A loaded bundle on a device, ready to classify.

    Args:
        bundle: a validated model bundle.
        device: where the network runs (see :func:`resolve_device`).
        batch_size: photos per forward pass.
        decode_threads: photos decoded at once; defaults to the number of CPU cores.
    """

    def __init__(
        self,
        bundle: Bundle,
        device: torch.device,
        *,
        batch_size: int = 16,
        decode_threads: int | None = None,
    ) -> None:
        self.bundle = bundle
        self.config: BundleConfig = bundle.config
        self.device = device
        self.batch_size = max(1, batch_size)
        self.decode_threads = max(1, decode_threads or os.cpu_count() or 1)
        self.preprocess = Preprocessor(self.config)
        self._half = device.type == "cuda"
        model = bundle.build_model().to(device)
        model = model.to(memory_format=torch.channels_last)
        if self._half:
            model = model.half()
        self.model = model.eval()
        dtype = torch.float16 if self._half else torch.float32
        self._mean = torch.tensor(self.config.mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(self.config.std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
        self._group: torch.Tensor | None = None
        if self.config.grouping is not None:
            group = torch.zeros(self.config.num_outputs, len(self.config.classes))
            group[torch.arange(self.config.num_outputs), torch.tensor(self.config.grouping.group_of)] = 1
            self._group = group.to(device)

    @classmethod
    def load(cls, path: Path | str, device: str = "auto", **kwargs: int) -> Classifier:
        return cls(load_bundle(path), resolve_device(device), **kwargs)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.config.classes

    @property
    def name(self) -> str:
        return self.bundle.name

    def predict_arrays(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N, classes) for decoded ``H×W×3`` uint8 arrays."""
        batch = torch.from_numpy(np.stack(arrays))
        if self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        # NHWC uint8 → NCHW view: already channels_last in memory, no copy.
        x = self.normalise(batch.permute(0, 3, 1, 2))
        with torch.inference_mode():
            probs = self.probabilities(self.model(x).float())
        return probs.cpu().numpy()

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW on the device → the network's input, with the bundle's mean and std."""
        return (x.to(self._mean.dtype) - self._mean) / self._std

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities: sigmoid (multi-label) or softmax, summed into folders when
        the bundle groups its outputs."""
        if self.config.multi_label:
            return torch.sigmoid(logits)
        probs = torch.softmax(logits, dim=1)
        return probs @ self._group if self._group is not None else probs

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        """Yield one prediction per item, in input order, decoding ahead in a thread pool.

        Stopping the iteration (``close()``) cancels the decodes still queued.
        """
        window = self.batch_size * 2 + self.decode_threads
        pool = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="sorter-decode")
        queue: deque[tuple[T, Future[np.ndarray]]] = deque()
        source = iter(items)
        try:
            exhausted = False
            pending: list[tuple[T, np.ndarray | None, str | None]] = []
            while True:
                while not exhausted and len(queue) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    queue.append((item, pool.submit(self.preprocess, path_of(item))))
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

    def _flush(self, pending: list[tuple[T, np.ndarray | None, str | None]]) -> Iterator[Prediction[T]]:
        arrays = [arr for _, arr, _ in pending if arr is not None]
        probs = iter(self.predict_arrays(arrays)) if arrays else iter(())
        for item, arr, error in pending:
            if arr is None:
                yield Prediction(item, None, error)
            else:
                yield Prediction(item, next(probs))


def top_k(probs: np.ndarray, classes: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    order = np.argsort(-probs)[:k]
    return [(classes[i], float(probs[i])) for i in order]
