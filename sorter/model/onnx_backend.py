"""ONNX Runtime on the CPU: the same :class:`InferencePipeline`, exported once and cached.

On two CPU cores ONNX Runtime runs EfficientNet-Lite0 about 1.8× faster than eager torch (see
``docs/PERFORMANCE.md``), which is what lets a sort keep up with JPEG decoding. The export is keyed
by a hash of the bundle's config and tensors (not its file name), the torch version and the export
recipe, so a changed bundle or a new torch never reuses a stale graph. Every engine is checked
against torch on a probe batch before use: a graph that disagrees is never used.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sorter.errors import ModelLoadError, describe_os_error
from sorter.fsutil import replace_atomically
from sorter.model.bundle import Bundle
from sorter.model.pipeline import InferencePipeline

log = logging.getLogger(__name__)

EXPORT_RECIPE = 3
"""Bump when the export changes (opset, names, what the graph includes) to retire old caches."""
OPSET = 17
TOLERANCE = 1e-4
"""Largest difference in any probability between torch and ONNX Runtime that is accepted."""


def available() -> str | None:
    """None when the ONNX backend can run here, else why not (one sentence fragment)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"the package {exc.name or 'onnxruntime'} is not installed"
    return None


def cache_key(bundle: Bundle) -> str:
    digest = hashlib.sha256()
    digest.update(f"recipe={EXPORT_RECIPE};opset={OPSET};torch={torch.__version__}\n".encode())
    digest.update(bundle.config.to_json().encode())
    tensors = {**bundle.state, **bundle.extras}
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def export(pipeline: InferencePipeline, input_size: tuple[int, int]) -> bytes:
    """The pipeline as an ONNX graph with a variable batch size, taking ``uint8`` NHWC photos and
    giving probabilities and pooled features."""
    height, width = input_size
    example = torch.zeros(2, height, width, 3, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.14 calls the TorchScript exporter "legacy"; it exports this network in about 1.5 s
        # where the torch.export-based one takes about 17 s and needs onnxscript.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=r"The feature will be removed.*")
        torch.onnx.export(
            pipeline.cpu().eval(),
            (example,),
            buffer,  # type: ignore[arg-type]  # file objects are accepted, the stub says paths only
            input_names=["photos"],
            output_names=["probabilities", "features", "fit"],
            dynamic_axes={
                "photos": {0: "batch"},
                "probabilities": {0: "batch"},
                "features": {0: "batch"},
                "fit": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


class OnnxEngine:
    """An ONNX Runtime session over the exported pipeline: ``uint8`` NHWC batch → probabilities
    and features.

    Args:
        model: the serialised graph.
        threads: ONNX Runtime's intra-op threads (the cores it may use for one batch).
    """

    def __init__(self, model: bytes, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning workers would burn the cores that the photo decoders need between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def __call__(self, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs, features, fit = self._session.run(None, {self._input: np.ascontiguousarray(photos)})
        return probs, features, fit


def load_engine(
    bundle: Bundle,
    pipeline: InferencePipeline,
    *,
    threads: int,
    cache_dir: Path | None,
) -> OnnxEngine:
    """Export (or reuse the cached export of) ``pipeline`` and check it against torch.

    ``cache_dir`` None exports in memory every time, which costs about 1.5 s for EfficientNet-Lite0.
    A cached file that cannot be read or disagrees with torch is exported anew.

    Raises:
        ModelLoadError: the export fails, or its output differs from torch's.
    """
    reason = available()
    if reason is not None:
        raise ModelLoadError(bundle.path, f"the ONNX Runtime backend cannot run: {reason}")
    height, width = bundle.config.input_size
    probe = np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = pipeline.cpu().eval()(torch.from_numpy(probe))[0].numpy()

    cached = cache_dir / f"{cache_key(bundle)}.onnx" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        try:
            engine = OnnxEngine(cached.read_bytes(), threads)
            if _agrees(engine, probe, expected):
                log.info("ONNX graph for %s from cache %s", bundle.name, cached)
                return engine
            log.warning("cached ONNX graph %s disagrees with torch; exporting it again", cached)
        except Exception as exc:  # a damaged cache file is rebuilt, never trusted
            log.warning("cached ONNX graph %s is unusable (%s); exporting it again", cached, exc)

    try:
        model = export(pipeline, (height, width))
        engine = OnnxEngine(model, threads)
    except Exception as exc:
        raise ModelLoadError(bundle.path, f"it cannot be exported to ONNX ({str(exc)[:200]})") from exc
    if not _agrees(engine, probe, expected):
        raise ModelLoadError(bundle.path, "its ONNX export gives different results from torch")
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(cached, model)
        except OSError as exc:  # a cache that cannot be written only costs time next run
            log.warning("could not cache the ONNX graph in %s: %s", cached.parent, describe_os_error(exc))
    return engine


def _agrees(engine: OnnxEngine, probe: np.ndarray, expected: np.ndarray) -> bool:
    got = engine(probe)[0]
    return got.shape == expected.shape and bool(np.abs(got - expected).max() <= TOLERANCE)
