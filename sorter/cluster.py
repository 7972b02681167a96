"""Classification on a Ray cluster, for archives that outgrow one machine.

Only the slow part moves: decoding and classifying run as a Ray Data pipeline over the list of
photos (an actor pool that loads the bundle once per actor: ONNX Runtime on CPU actors, torch in
half precision on GPU actors). Each photo's result streams back, in order, to this process, where
:func:`sorter.jobs.sorting.sort_folder` places the copies and journals them exactly as in a local
run, so resume, undo, never-overwrite and the ``--json`` summary do not change. We do not schedule
anything ourselves: Ray restarts a killed actor and runs its batch again (what a batch computes
has no side effects; only this process writes).

Ray is an optional extra (``pip install sorter[cluster]``). This module imports it only inside
its functions, and only the CLI's ``--cluster`` calls them, so the desktop app, a local sort and
the default tests never load Ray (an import-linter contract and a test check it).
"""

from __future__ import annotations

import logging
import math
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from sorter.errors import SorterError, UnsupportedImageError, UsageError, describe_os_error
from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache
from sorter.files.fileops import sha256_of
from sorter.files.images import dhash_array
from sorter.model.bundle import Bundle, load_bundle
from sorter.model.classifier import Classifier, Prediction

T = TypeVar("T")

NOT_SHARED = "cannot be read on the cluster's workers (the photos must be on storage they share)"


def connect(address: str, *, num_cpus: int | None = None) -> None:
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
        return
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
    """A Ray Data actor: the bundle loaded once, then batches of paths → results.

    ``bundle`` is the bundle file's bytes (sent through Ray's object store, so the model needs
    no shared storage, only the photos do) or a path.
    """

    def __init__(self, bundle: bytes | str, device: str, threads: int) -> None:
        torch.set_num_threads(threads)
        if isinstance(bundle, bytes):
            with tempfile.TemporaryDirectory(prefix="sorter-actor-") as tmp:
                path = Path(tmp) / "model.safetensors"
                path.write_bytes(bundle)
                loaded = load_bundle(path)
        else:
            loaded = load_bundle(bundle)
        self.classifier = Classifier(loaded, torch.device(device), backend="auto", decode_threads=threads)
        self.dim = int(loaded.state["head.weight"].shape[1])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        decoded: list[tuple[np.ndarray, float]] = []
        rows: list[int] = []
        errors: list[str] = []
        for name in batch["path"]:
            path = Path(str(name))
            try:
                decoded.append(self.classifier.preprocess.with_faces(path))
                rows.append(len(errors))
                errors.append("")
            except (UnsupportedImageError, OSError) as exc:
                # The driver found every path: one a worker cannot see is not on shared storage.
                if not path.exists():
                    errors.append(NOT_SHARED)
                else:
                    errors.append(exc.reason if isinstance(exc, UnsupportedImageError) else describe_os_error(exc))
        n, k = len(errors), len(self.classifier.classes)
        probs = np.full((n, k), np.nan, dtype=np.float32)
        fit = np.ones(n, dtype=np.float32)
        features = np.zeros((n, self.dim), dtype=np.float32)
        face = np.full(n, np.nan, dtype=np.float32)  # NaN: the bundle does not look for people
        look = np.zeros(n, dtype=np.uint64)
        if decoded:
            p, f, q, faces = self.classifier.predict_decoded(decoded)
            probs[rows], fit[rows], features[rows] = p, q, f
            look[rows] = [dhash_array(arr) for arr, _ in decoded]
            if faces is not None:
                face[rows] = faces
        return {
            "index": batch["index"],
            "probs": probs,
            "features": features,
            "fit": fit,
            "face": face,
            "look": look,
            "error": np.array(errors, dtype=object),
        }


def _predictor_for(bundle_ref: Any, device: str, threads: int) -> type[_Predictor]:
    """The actor class with its settings built in: constructor arguments would sit in Ray's
    object store, where a lost copy stops an actor from being restarted (ray-project/ray#53727).
    The bundle's bytes do sit there, referenced by this process for the whole run."""

    class SorterPredictor(_Predictor):
        def __init__(self) -> None:
            import ray

            super().__init__(ray.get(bundle_ref), device, threads)

    return SorterPredictor


@dataclass(frozen=True)
class Pool:
    """The actors a run asks for: one single-threaded CPU actor per CPU (ONNX Runtime), or one
    GPU actor per GPU (torch, half precision) where the cluster has GPUs."""

    actors: int
    threads: int
    device: str

    @classmethod
    def for_cluster(cls, actors: int | None = None) -> Pool:
        import ray

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = max(1, int(resources.get("CPU", 1)))
        # More actors than the cluster can place would wait for resources for ever.
        if gpus:
            return cls(min(actors or gpus, gpus), 2, "cuda")
        return cls(min(actors or cpus, cpus), 1, "cpu")

    def describe(self) -> str:
        engine = "torch half precision" if self.device == "cuda" else "ONNX Runtime"
        return f"ray ({self.actors} actor{'s' if self.actors != 1 else ''}, {engine})"


def stream(bundle_path: Path, paths: list[Path], pool: Pool, batch_size: int = 16) -> Iterator[dict[str, Any]]:
    """Decode and classify ``paths`` on the cluster; yields one dict per photo (``index`` into
    ``paths``, ``probs``, ``features``, ``fit``, ``face``, ``look``, ``error``: empty when it was read), in order.

    Raises:
        SorterError: Ray stopped the run (it restarts lost actors and reruns their batches first).
    """
    import ray
    import ray.data

    if not paths:
        return
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the CLI's stderr is for the user
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    rows = [{"index": i, "path": str(path)} for i, path in enumerate(paths)]
    # Blocks of about one batch for small runs, so every actor gets work; fewer, larger ones for
    # large runs, so per-block overhead stays small.
    batches = math.ceil(len(rows) / batch_size)
    blocks = max(1, min(batches, max(8 * pool.actors, math.ceil(batches / 8))))
    bundle_ref = ray.put(bundle_path.read_bytes())
    results = ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _predictor_for(bundle_ref, pool.device, pool.threads),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=min(pool.actors, blocks)),
        num_cpus=pool.threads,
        num_gpus=1 if pool.device == "cuda" else 0,
    )
    try:
        for batch in results.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2):
            for j, index in enumerate(batch["index"]):
                yield {
                    "index": int(index),
                    "probs": batch["probs"][j],
                    "features": batch["features"][j],
                    "fit": float(batch["fit"][j]),
                    "face": None if np.isnan(batch["face"][j]) else float(batch["face"][j]),
                    "look": int(batch["look"][j]),
                    "error": str(batch["error"][j]),
                }
    except ray.exceptions.RayError as exc:
        raise SorterError(
            f"The cluster stopped the run ({type(exc).__name__}); what was done so far is kept: "
            "run the same command again to finish the rest."
        ) from exc
    finally:
        del bundle_ref


class ClusterClassifier(Classifier):
    """A :class:`Classifier` whose :meth:`classify` runs on a Ray cluster.

    Everything else (classes, config, policy, feature recipe) is the local bundle's, so the
    sorting job cannot tell the difference. Call :func:`connect` first.
    """

    def __init__(self, bundle: Bundle, *, batch_size: int = 16, actors: int | None = None) -> None:
        super().__init__(bundle, torch.device("cpu"), batch_size=batch_size, backend="torch")
        self.pool = Pool.for_cluster(actors)
        self.device = torch.device(self.pool.device)
        self.backend = self.pool.describe()

    def classify(self, items: Iterable[T], path_of: Callable[[T], Path]) -> Iterator[Prediction[T]]:
        todo = list(items)
        for row in stream(self.bundle.path, [path_of(item) for item in todo], self.pool, self.batch_size):
            item = todo[row["index"]]
            if row["error"]:
                yield Prediction(item, None, row["error"])
            else:
                yield Prediction(
                    item, row["probs"], features=row["features"], fit=row["fit"], face=row["face"], look=row["look"]
                )


@dataclass
class FeatureReport:
    """What :func:`precompute_features` did."""

    computed: int = 0
    cached: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0


def precompute_features(
    bundle_path: Path, paths: list[Path], cache: FeatureCache, pool: Pool, batch_size: int = 16
) -> FeatureReport:
    """Clean body features of ``paths`` with the bundle's body, computed on the cluster and put
    in ``cache`` (keyed by content and the bundle's feature recipe), so that training on them
    computes nothing locally: the slow part of training 250,000 photos, spread over a cluster."""
    started = time.perf_counter()
    recipe = load_bundle(bundle_path).feature_recipe
    shas = [sha256_of(p) for p in paths]
    have = cache.get_many(recipe, [(sha, CLEAN_VIEW) for sha in shas])
    todo = [i for i, sha in enumerate(shas) if (sha, CLEAN_VIEW) not in have]
    report = FeatureReport(cached=len(paths) - len(todo))
    pending: dict[tuple[str, int], np.ndarray] = {}
    for row in stream(bundle_path, [paths[i] for i in todo], pool, batch_size):
        i = todo[row["index"]]
        if row["error"]:
            report.failed.append((paths[i], row["error"]))
            continue
        pending[(shas[i], CLEAN_VIEW)] = row["features"]
        if len(pending) >= 1024:  # keep what is done should the run stop
            cache.put_many(recipe, pending)
            report.computed += len(pending)
            pending = {}
    cache.put_many(recipe, pending)
    report.computed += len(pending)
    report.seconds = time.perf_counter() - started
    return report
