"""Classification on a Ray cluster, for archives that outgrow one machine.

Only the slow part moves: decoding and classifying run as a Ray Data pipeline over the list of
photos (an actor pool that loads the bundle once per actor: ONNX Runtime on CPU actors, torch in
half precision on GPU actors). Each photo's result streams back, in order, to this process, where
:func:`sorter.core.sorting.sort_folder` places the copies and journals them exactly as in a local
run, so resume, undo, never-overwrite and the ``--json`` summary do not change. We do not schedule
anything ourselves: Ray restarts a killed actor and runs its batch again (what a batch computes
has no side effects; only this process writes).

Ray is an optional extra (``pip install sorter[cluster]``); nothing imports this module unless
``--cluster`` is given, so the desktop app and the default tests never load Ray.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from sorter.core.classifier import Classifier, Prediction
from sorter.errors import SorterError, UnsupportedImageError, UsageError
from sorter.model.bundle import Bundle

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_SHARED = "cannot be read on the cluster's workers (the photos must be on storage they share)"


def connect(address: str, *, num_cpus: int | None = None) -> Any:
    """Start (``local``) or join (``auto``, ``ray://host:port``, ``host:port``) a Ray cluster.

    Raises:
        UsageError: Ray is not installed.
        SorterError: the cluster cannot be reached; raised before anything is written.
    """
    if address not in ("local", "auto"):
        _check_reachable(address)
    try:
        import ray
    except ImportError as exc:
        raise UsageError("Sorting on a cluster needs Ray: pip install 'sorter[cluster]'.") from exc
    logging.getLogger("ray").setLevel(logging.ERROR)  # stderr is the user's; Ray's errors reach us as exceptions
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        if address == "auto":
            raise SorterError(
                "No Ray cluster is running on this machine: start one with 'ray start', give its address, "
                "or use --cluster local."
            ) from exc
        raise SorterError(f"Cannot reach the Ray cluster at '{address}': {exc}") from exc
    except Exception as exc:  # ray raises RuntimeError or ValueError by case
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SorterError(f"Cannot reach the Ray cluster at '{address}': {first}") from exc
    return ray


def disconnect() -> None:
    """Leave the cluster (and stop a ``local`` one), flushing what Ray still has to print."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


REACH_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """Fail in seconds, not after Ray's own minutes of retries, when nothing listens there."""
    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"'{address}' is not a cluster address: use auto, local, host:port or ray://host:port.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SorterError(f"Cannot reach the Ray cluster at '{address}': {reason}.") from exc


class _Predictor:
    """A Ray Data actor: the bundle loaded once, then batches of paths → results."""

    def __init__(self, bundle_path: str, device: str, threads: int) -> None:
        torch.set_num_threads(threads)
        self.classifier = Classifier.load(bundle_path, device, backend="auto", decode_threads=threads)
        self.dim = int(self.classifier.bundle.state["head.weight"].shape[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        arrays: list[np.ndarray] = []
        rows: list[int] = []
        errors: list[str] = []
        for name in batch["path"]:
            path = Path(str(name))
            try:
                arrays.append(self.classifier.preprocess(path))
                rows.append(len(errors))
                errors.append("")
            except (UnsupportedImageError, OSError) as exc:
                # The driver found every path: one a worker cannot see is not on shared storage.
                seen = path.exists()
                errors.append(exc.reason if seen and isinstance(exc, UnsupportedImageError) else NOT_SHARED)
        n, k = len(errors), len(self.classifier.classes)
        probs = np.full((n, k), np.nan, dtype=np.float32)
        fit = np.ones(n, dtype=np.float32)
        features = np.zeros((n, self.dim), dtype=np.float32)
        if arrays:
            p, f, q = self.classifier.predict_with_features(arrays)
            probs[rows], fit[rows], features[rows] = p, q, f
        return {
            "index": batch["index"],
            "probs": probs,
            "features": features,
            "fit": fit,
            "error": np.array(errors, dtype=object),
        }


def _predictor_for(bundle_path: str, device: str, threads: int) -> type[_Predictor]:
    """The actor class with its settings built in: constructor arguments would sit in Ray's
    object store, where a lost copy stops an actor from being restarted (ray-project/ray#53727)."""

    class SorterPredictor(_Predictor):
        def __init__(self) -> None:
            super().__init__(bundle_path, device, threads)

    return SorterPredictor


class ClusterClassifier(Classifier):
    """A :class:`Classifier` whose :meth:`classify` runs on a Ray cluster.

    Everything else (classes, config, policy, feature recipe) is the local bundle's, so the
    sorting job cannot tell the difference. Call :func:`connect` first.
    """

    def __init__(self, bundle: Bundle, *, batch_size: int = 16, actors: int | None = None) -> None:
        import ray

        super().__init__(bundle, torch.device("cpu"), batch_size=batch_size, backend="torch")
        resources = ray.cluster_resources()
        self.gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        if self.gpus:
            self.actors, self.threads, self.actor_device = actors or self.gpus, 2, "cuda"
        else:
            self.actors, self.threads, self.actor_device = actors or cpus, 1, "cpu"
        self.device = torch.device(self.actor_device)
        engine = "torch half precision" if self.gpus else "ONNX Runtime"
        self.backend = f"ray ({self.actors} actor{'s' if self.actors != 1 else ''}, {engine})"

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        import ray
        import ray.data

        todo = list(items)
        if not todo:
            return
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # the CLI's stderr is for the user
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        rows = [{"index": i, "path": str(path_of(item))} for i, item in enumerate(todo)]
        # Blocks of about one batch for small runs, so every actor gets work; fewer, larger ones
        # for large runs, so per-block overhead stays small.
        batches = math.ceil(len(rows) / self.batch_size)
        blocks = max(1, min(batches, max(8 * self.actors, math.ceil(batches / 8))))
        dataset = ray.data.from_items(rows, override_num_blocks=blocks)
        results = dataset.map_batches(
            _predictor_for(str(self.bundle.path), self.actor_device, self.threads),
            batch_size=self.batch_size,
            compute=ray.data.ActorPoolStrategy(size=min(self.actors, blocks)),
            num_cpus=self.threads,
            num_gpus=1 if self.gpus else 0,
        )
        try:
            for batch in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
                for j, index in enumerate(batch["index"]):
                    item = todo[int(index)]
                    error = str(batch["error"][j])
                    if error:
                        yield Prediction(item, None, error)
                    else:
                        features = batch["features"][j]
                        yield Prediction(item, batch["probs"][j], features=features, fit=float(batch["fit"][j]))
        except ray.exceptions.RayError as exc:
            raise SorterError(
                f"The cluster stopped the run ({type(exc).__name__}); photos placed so far are kept: "
                "run the same command again to finish the rest."
            ) from exc
