"""The portable model bundle: one ``.safetensors`` file, tensors plus a JSON config in its header.

Never a pickle: a fastai ``export.pkl`` breaks across operating systems and runs arbitrary code when
loaded. Everything needed to rebuild the network and its preprocessing is in the config
(:mod:`sorter.model.config`, validated before a tensor is touched); this module reads, checks and
writes the tensors, so a malformed or hostile file fails with one sentence.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sorter.errors import ModelLoadError, SorterError
from sorter.fsutil import TEMP_PREFIX, FileInUseError, default_file_mode, rename_no_clobber, replace_file
from sorter.model.config import BundleConfig, MemorySettings, ReplaySettings
from sorter.model.memory import ExemplarMemory
from sorter.model.replay import Replay

REPLAY_TENSORS = ("replay.features", "replay.labels", "replay.valid", "replay.sha256")
METADATA_KEY = "sorter"
MAX_HEADER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Head:
    """A linear head's weight (classes, features) and bias, as arrays: what scoring from cached
    features needs of a network."""

    weight: np.ndarray
    bias: np.ndarray

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = features @ torch.from_numpy(self.weight).float().T + torch.from_numpy(self.bias).float()
        return out


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: its config and its tensors, ready to build a network."""

    path: Path
    config: BundleConfig
    state: dict[str, torch.Tensor]
    """The network's ``state_dict``."""
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    """Tensors beside the network: the exemplar memory."""

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def memory(self) -> ExemplarMemory | None:
        """The user's labelled photos as feature vectors, if the bundle holds any."""
        settings = self.config.memory
        if settings is None or "memory.keys" not in self.extras:
            return None
        return ExemplarMemory(
            self.extras["memory.keys"].float().numpy(),
            self.extras["memory.labels"].long().numpy(),
            settings.alpha,
            settings.beta,
        )

    def read_replay(self) -> Replay | None:
        """The training photos' features, read on demand (sorting never needs them) and checked:
        labels the model has, finite features, flags of 0 or 1."""
        settings = self.config.replay
        if settings is None:
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(self.path), framework="pt") as fh:
                raw = {k: fh.get_tensor(k) for k in REPLAY_TENSORS}
        except Exception as exc:
            raise ModelLoadError(self.path, f"its feature replay cannot be read ({_short(exc)})") from exc
        features, labels, valid, sha = (raw[k] for k in REPLAY_TENSORS)
        if not features.is_floating_point() or not torch.isfinite(features).all():
            raise ModelLoadError(self.path, "its feature replay holds NaN, infinite or non-numeric values")
        if not _class_indices(labels, len(self.config.classes)):
            raise ModelLoadError(self.path, "its feature replay names classes the model does not have")
        if valid.dtype != torch.uint8 or sha.dtype != torch.uint8 or (len(valid) and int(valid.max()) > 1):
            raise ModelLoadError(self.path, "its feature replay's flags or hashes are malformed")
        if int(valid.sum()) != settings.valid:
            raise ModelLoadError(self.path, "its feature replay's validation rows do not match its settings")
        return Replay(features.half().numpy(), labels.long().numpy(), valid.bool().numpy(), sha.numpy())

    @cached_property
    def head(self) -> Head:
        """The network's head as arrays, for scoring cached features."""
        return Head(self.state["head.weight"].float().numpy(), self.state["head.bias"].float().numpy())

    @property
    def ood_anchors(self) -> torch.Tensor | None:
        """(K, D) directions a photo must be near to fit any category, if the bundle has them."""
        if self.config.ood is None:
            return None
        if self.config.ood.anchors == "head":
            return self.state["head.weight"].float()
        return self.extras["ood.anchors"].float()

    @property
    def lacks_statistics(self) -> str | None:
        """A note for bundles without "none of these" and calibrated confidence: made by an earlier
        version (a retrain adds them), or, like the embedded general model, made from a
        pretrained network whose training photos are not at hand (they cannot be measured)."""
        if self.config.ood is not None or self.config.calibration is not None:
            return None
        if not self.config.training.get("data"):
            # one sentence, once a run: what it knows, what it does not, and what helps
            subjects = list(self.config.classes[:4])
            if self.config.people is not None and self.config.people.folder not in subjects:
                subjects.append(self.config.people.folder)
            known = ", ".join(c.lower() for c in subjects)
            return (
                f"the model '{self.name}' knows everyday subjects ({known} and the like) but not your own "
                "categories, and cannot tell a photo of something else, which may land in the nearest folder: "
                "train a model on your own folders (Train… in the app, sorter train at the command line) to sort those"
            )
        return (
            f"the model '{self.name}' has no statistics for photos that fit none of its categories, and no "
            "calibrated confidence (it was made by an earlier version of Sorter): such photos are not set apart, "
            "and its single default threshold is used; retrain it to add them"
        )

    @cached_property
    def feature_recipe(self) -> str:
        """A key for the features this bundle's body makes: its weights and preprocessing.

        Two bundles that share a body (a retrain that only refitted the head) share features.
        """
        body = {k.removeprefix("body."): v for k, v in self.state.items() if k.startswith("body.")}
        return feature_recipe(self.config, body)

    def build_model(self) -> torch.nn.Module:
        from sorter.model.architecture import SorterNet

        model = SorterNet(self.config.architecture, self.config.num_outputs)
        model.load_state_dict(self.state, strict=True)
        return model.eval()


def feature_recipe(config: BundleConfig, body_state: Mapping[str, torch.Tensor]) -> str:
    """A key for the features a body makes: its weights (``body.`` prefix removed) and the
    preprocessing in ``config``. Sorting's and training's feature caches both key on it."""
    import hashlib

    digest = hashlib.sha256()
    c = config
    digest.update(f"{c.architecture};{c.input_size};{c.resize};{c.crop_pct};{c.interpolation};".encode())
    digest.update(f"{c.mean};{c.std}\n".encode())
    for name in sorted(body_state):
        tensor = body_state[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:24]


def _check_header(path: Path) -> None:
    """Refuse files that are not safetensors before any parser sees them."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(9)
    except OSError as exc:
        from sorter.errors import describe_os_error

        raise ModelLoadError(path, describe_os_error(exc)) from exc
    if len(head) < 9:
        raise ModelLoadError(path, "the file is empty or truncated")
    (length,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or length > MAX_HEADER_BYTES:
        raise ModelLoadError(
            path,
            "it is not a safetensors file (Sorter never loads pickles or fastai .pkl exports)",
        )
    if 8 + length > size:
        raise ModelLoadError(path, "the file is truncated (its header is cut off)")


def read_config(path: Path | str) -> BundleConfig:
    """Only the config, without reading tensors: for model lists and info."""
    path = Path(path)
    _check_header(path)
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise ModelLoadError(path, f"the safetensors header is malformed ({_short(exc)})") from exc
    if METADATA_KEY not in meta:
        raise ModelLoadError(path, "it is a safetensors file but not a Sorter model bundle")
    return BundleConfig.from_json(meta[METADATA_KEY], path)


def load_bundle(path: Path | str) -> Bundle:
    """Read and fully validate a bundle: config, tensor names, shapes and values."""
    path = Path(path)
    config = read_config(path)
    from safetensors import safe_open

    from sorter.model.architecture import SorterNet

    net = SorterNet(config.architecture, config.num_outputs)
    expected = net.state_dict()
    memory_shapes: dict[str, tuple[int, ...]] = {}
    if config.memory is not None:
        memory_shapes = {
            "memory.keys": (config.memory.size, net.num_features),
            "memory.labels": (config.memory.size,),
        }
    if config.ood is not None and config.ood.anchors == "means":
        memory_shapes["ood.anchors"] = (config.ood.size, net.num_features)
    lazy_shapes: dict[str, tuple[int, ...]] = {}
    if config.replay is not None:  # checked here, read only by a retrain (Bundle.read_replay)
        n = config.replay.size
        lazy_shapes = dict(zip(REPLAY_TENSORS, [(n, net.num_features), (n,), (n,), (n, 32)], strict=True))
    state: dict[str, torch.Tensor] = {}
    extras: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            keys = set(fh.keys())
            missing = [k for k in (*expected, *memory_shapes, *lazy_shapes) if k not in keys]
            if missing:
                raise ModelLoadError(path, f"{len(missing)} tensors are missing (first: {missing[0]})")
            extra = sorted(keys - set(expected) - set(memory_shapes) - set(lazy_shapes))
            if extra:
                raise ModelLoadError(path, f"it has unexpected tensors (first: {extra[0]})")
            for key, ref in expected.items():
                shape = tuple(fh.get_slice(key).get_shape())
                if shape != tuple(ref.shape):
                    raise ModelLoadError(path, f"tensor {key} has shape {shape}, expected {tuple(ref.shape)}")
                state[key] = fh.get_tensor(key).to(ref.dtype)
            for key, want in {**memory_shapes, **lazy_shapes}.items():
                shape = tuple(fh.get_slice(key).get_shape())
                if shape != want:
                    raise ModelLoadError(path, f"tensor {key} has shape {shape}, expected {want}")
                if key in memory_shapes:
                    extras[key] = fh.get_tensor(key)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(path, f"its tensors cannot be read ({_short(exc)})") from exc
    for key, tensor in (*state.items(), *extras.items()):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelLoadError(path, f"tensor {key} holds NaN or infinite values")
    if "memory.labels" in extras:
        labels = extras["memory.labels"]
        if not _class_indices(labels, len(config.classes)):
            raise ModelLoadError(path, "its memory names classes the model does not have")
        extras["memory.labels"] = labels.long()
    return Bundle(path, config, state, extras)


def save_bundle(
    path: Path | str,
    model: torch.nn.Module,
    config: BundleConfig,
    *,
    overwrite: bool = False,
    memory: ExemplarMemory | None = None,
    ood_anchors: torch.Tensor | None = None,
    replay: Replay | None = None,
) -> Path:
    """Write atomically (temporary file, then rename); refuse to replace a file unless asked.

    With ``memory``, its vectors and labels are stored beside the network and ``config.memory``
    records its strength; without, any ``config.memory`` is dropped. The same for ``replay``
    and ``config.replay``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if path.exists() and not overwrite:
        raise ModelLoadError(path, "a file of that name already exists; choose another name")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if memory is not None and len(memory):
        config = replace(config, memory=MemorySettings(float(memory.alpha), float(memory.beta), len(memory)))
        tensors["memory.keys"] = torch.from_numpy(memory.keys.astype("float16")).contiguous()
        tensors["memory.labels"] = torch.from_numpy(memory.labels.astype("int64")).contiguous()
    else:
        config = replace(config, memory=None)
    if ood_anchors is not None:
        tensors["ood.anchors"] = ood_anchors.detach().to("cpu", torch.float16).contiguous()
    if replay is not None and len(replay):
        config = replace(config, replay=ReplaySettings(len(replay), int(replay.valid.sum())))
        columns = (
            replay.features.astype("float16"),
            replay.labels.astype("int64"),
            replay.valid.astype("uint8"),
            replay.sha256.astype("uint8"),
        )
        for key, column in zip(REPLAY_TENSORS, columns, strict=True):
            tensors[key] = torch.from_numpy(np.ascontiguousarray(column))
    else:
        config = replace(config, replay=None)
    BundleConfig.from_json(config.to_json(), path)  # never write what we would refuse to read
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={METADATA_KEY: config.to_json()})
        os.chmod(tmp, default_file_mode())  # shareable like any file the user saves
        if overwrite:
            try:
                replace_file(tmp, path)
            except FileInUseError as exc:
                raise SorterError(str(exc)) from None
        else:
            try:
                rename_no_clobber(tmp, path)
            except FileExistsError:
                raise ModelLoadError(path, "a file of that name already exists; choose another name") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _class_indices(labels: torch.Tensor, num_classes: int) -> bool:
    """Whether a label tensor holds only indices of the bundle's classes."""
    if labels.is_floating_point():
        return False
    return not len(labels) or (int(labels.min()) >= 0 and int(labels.max()) < num_classes)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def describe(config: BundleConfig) -> dict[str, Any]:
    """A JSON-friendly summary for `sorter info` and the GUI's model picker."""
    metrics = config.training.get("metrics", {}) if isinstance(config.training, Mapping) else {}
    return {
        "architecture": config.architecture,
        "classes": list(config.classes),
        "multi_label": config.multi_label,
        "input_size": list(config.input_size),
        "resize": config.resize,
        "threshold": config.threshold,
        "grouped_outputs": config.num_outputs if config.grouping else None,
        "memory": asdict(config.memory) if config.memory else None,
        "out_of_distribution": asdict(config.ood) if config.ood else None,
        "calibrated": config.calibration is not None,
        "replay": asdict(config.replay) if config.replay else None,
        "people": config.people.to_json() if config.people else None,
        "recipe": config.training.get("recipe"),
        "accuracy": metrics.get("accuracy") if isinstance(metrics, Mapping) else None,
        "training": dict(config.training),
    }


def lineage(path: Path | str, _depth: int = 0) -> str:
    """The family a bundle belongs to: the model first trained, followed through its retrains.
    Reviews of photos that one family sorted teach that family alone (:mod:`sorter.jobs.reviews`).
    A bundle from before families were kept (the shipped ones) is its own root, named by its path."""
    path = Path(path)
    try:
        facts = read_config(path).training
    except (ModelLoadError, OSError):
        facts = {}
    if facts.get("lineage"):
        return str(facts["lineage"])
    parent = facts.get("retrained_from")
    if parent and _depth < 32 and Path(str(parent)).is_file() and Path(str(parent)).resolve() != path.resolve():
        return lineage(Path(str(parent)), _depth + 1)
    return f"path:{path.resolve()}"
