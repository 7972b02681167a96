"""The portable model bundle: one ``.safetensors`` file, tensors plus a JSON config in its header.

Never a pickle: a fastai ``export.pkl`` breaks across operating systems and runs arbitrary code when
loaded. Everything needed to rebuild the network and its preprocessing is in the config, and every
field is checked before a tensor is touched, so a malformed or hostile file fails with one sentence.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sorter.errors import ModelLoadError
from sorter.fsutil import TEMP_PREFIX, default_file_mode, rename_no_clobber
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER, class_names_problem

if TYPE_CHECKING:
    from sorter.learn.calibration import Calibration
    from sorter.learn.memory import ExemplarMemory
    from sorter.learn.replay import Replay

FORMAT = "sorter-bundle"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
"""Version 2 added the optional exemplar memory, version 3 the optional feature replay; an older
bundle is a newer one without them."""
REPLAY_TENSORS = ("replay.features", "replay.labels", "replay.valid", "replay.sha256")
METADATA_KEY = "sorter"
RESIZE_METHODS = ("squish", "crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
MAX_HEADER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Grouping:
    """Folders made of several network outputs: a folder's probability is the sum of its outputs'.

    The embedded default uses this to turn 1000 ImageNet classes into a dozen everyday folders.
    """

    source_classes: tuple[str, ...]
    group_of: tuple[int, ...]
    """For each network output, the index of the folder (class) it belongs to."""


@dataclass(frozen=True)
class MemorySettings:
    """How strongly the bundle's exemplar memory votes (see :mod:`sorter.learn.memory`)."""

    alpha: float
    beta: float
    size: int


@dataclass(frozen=True)
class OodSettings:
    """How "none of these" is decided (see :mod:`sorter.learn.ood`).

    ``anchors``: ``means`` (the tensor ``ood.anchors`` holds one unit vector per class) or
    ``head`` (the head's weight rows stand in for class means: the embedded ImageNet model, whose
    training photos we do not have).
    """

    threshold: float
    anchors: str
    size: int


@dataclass(frozen=True)
class ReplaySettings:
    """How many training and validation photos the bundle keeps as features (see
    :mod:`sorter.learn.replay`)."""

    size: int
    valid: int


@dataclass(frozen=True)
class BundleConfig:
    """What a bundle says about itself; see ``docs`` in README for the field list."""

    architecture: str
    classes: tuple[str, ...]
    multi_label: bool = False
    input_size: tuple[int, int] = (224, 224)
    """Height, width."""
    resize: str = "squish"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    threshold: float = 0.5
    grouping: Grouping | None = None
    training: Mapping[str, Any] = field(default_factory=dict)
    memory: MemorySettings | None = None
    ood: OodSettings | None = None
    calibration: Mapping[str, Any] | None = None
    """Temperature and per-class precision table (:class:`sorter.learn.calibration.Calibration`)."""
    replay: ReplaySettings | None = None

    def calibration_table(self) -> Calibration | None:
        if self.calibration is None:
            return None
        from sorter.learn.calibration import Calibration

        return Calibration.from_json(self.calibration, len(self.classes))

    @property
    def temperature(self) -> float:
        return float(self.calibration["temperature"]) if self.calibration is not None else 1.0

    @property
    def num_outputs(self) -> int:
        return len(self.grouping.source_classes) if self.grouping else len(self.classes)

    def to_json(self) -> str:
        data = asdict(self)
        data = {"format": FORMAT, "format_version": FORMAT_VERSION, **data}
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    def with_training(self, **facts: Any) -> BundleConfig:
        return replace(self, training={**self.training, **facts})

    @classmethod
    def from_json(cls, text: str, where: Path | str = "model") -> BundleConfig:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ModelLoadError(where, "its configuration is not valid JSON") from exc
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: object, where: Path | str = "model") -> BundleConfig:
        """Validate every field; the error names the first bad one."""

        def bad(reason: str) -> ModelLoadError:
            return ModelLoadError(where, reason)

        if not isinstance(data, dict):
            raise bad("its configuration is not a JSON object")
        if data.get("format") != FORMAT:
            raise bad("it is not a Sorter model bundle")
        version = data.get("format_version")
        if version not in READABLE_VERSIONS:
            raise bad(f"bundle format version {version!r} is not supported (expected {FORMAT_VERSION})")
        from sorter.model.architecture import SUPPORTED_ARCHITECTURES

        arch = data.get("architecture")
        if not isinstance(arch, str) or arch not in SUPPORTED_ARCHITECTURES:
            raise bad(f"the architecture {arch!r} is unknown")
        classes = data.get("classes")
        if not isinstance(classes, list) or not classes:
            raise bad("it lists no classes")
        problem = class_names_problem(classes)
        if problem:
            raise bad(problem)
        if any(c.casefold() in (UNSURE_FOLDER, OTHER_FOLDER) for c in classes):
            raise bad(f"a class may not be named {UNSURE_FOLDER!r} or {OTHER_FOLDER!r}")
        multi = data.get("multi_label", False)
        if not isinstance(multi, bool):
            raise bad("multi_label must be true or false")
        size = data.get("input_size")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 2048 for v in size)
        ):
            raise bad("input_size must be two whole numbers between 16 and 2048")
        resize = data.get("resize", "squish")
        if resize not in RESIZE_METHODS:
            raise bad(f"the resize method {resize!r} is unknown")
        interpolation = data.get("interpolation", "bilinear")
        if interpolation not in INTERPOLATIONS:
            raise bad(f"the interpolation {interpolation!r} is unknown")
        crop_pct = _number(data.get("crop_pct", 0.875), 0.1, 1.0, "crop_pct", bad)
        threshold = _number(data.get("threshold", 0.5), 0.0, 1.0, "threshold", bad)
        mean = _triple(data.get("mean"), "mean", bad, positive=False)
        std = _triple(data.get("std"), "std", bad, positive=True)
        grouping = None
        raw_group = data.get("grouping")
        if raw_group is not None:
            if not isinstance(raw_group, dict):
                raise bad("grouping must be an object")
            sources = raw_group.get("source_classes")
            group_of = raw_group.get("group_of")
            if (
                not isinstance(sources, list)
                or not all(isinstance(s, str) for s in sources)
                or not isinstance(group_of, list)
                or len(group_of) != len(sources)
                or not all(isinstance(g, int) and 0 <= g < len(classes) for g in group_of)
            ):
                raise bad("its grouping of outputs into folders is inconsistent")
            if multi:
                raise bad("a multi-label model cannot group its outputs into folders")
            grouping = Grouping(tuple(sources), tuple(group_of))
        training = data.get("training", {})
        if not isinstance(training, dict):
            raise bad("training facts must be an object")
        memory = None
        raw_memory = data.get("memory")
        if raw_memory is not None:
            if not isinstance(raw_memory, dict):
                raise bad("memory must be an object")
            exemplars = _count(raw_memory.get("size"), "the memory size", bad)
            if multi:
                raise bad("a multi-label model cannot hold an exemplar memory")
            memory = MemorySettings(
                alpha=_number(raw_memory.get("alpha"), 0.0, 100000.0, "memory alpha", bad),
                beta=_number(raw_memory.get("beta"), 0.0, 100.0, "memory beta", bad),
                size=exemplars,
            )
        ood = None
        raw_ood = data.get("ood")
        if raw_ood is not None:
            if not isinstance(raw_ood, dict) or raw_ood.get("anchors") not in ("means", "head"):
                raise bad("its out-of-distribution settings are malformed")
            anchors_n = _count(raw_ood.get("size"), "the number of fit anchors", bad)
            ood = OodSettings(
                threshold=_number(raw_ood.get("threshold"), -1.0, 1.0, "the fit threshold", bad),
                anchors=str(raw_ood["anchors"]),
                size=anchors_n,
            )
        replay = None
        raw_replay = data.get("replay")
        if raw_replay is not None:
            if not isinstance(raw_replay, dict):
                raise bad("its feature replay settings are malformed")
            if multi:
                raise bad("a multi-label model cannot hold a feature replay")
            rows = _count(raw_replay.get("size"), "the feature replay size", bad)
            valid_rows = _count(raw_replay.get("valid"), "the feature replay's validation rows", bad)
            if valid_rows > rows:
                raise bad("its feature replay has more validation rows than rows")
            replay = ReplaySettings(rows, valid_rows)
        calibration = data.get("calibration")
        if calibration is not None:
            if not isinstance(calibration, dict):
                raise bad("its calibration must be an object")
            from sorter.learn.calibration import Calibration

            try:
                Calibration.from_json(calibration, len(classes))
            except ValueError as exc:
                raise bad(f"its calibration is malformed ({exc})") from exc
        return cls(
            architecture=arch,
            classes=tuple(classes),
            multi_label=multi,
            input_size=(size[0], size[1]),
            resize=resize,
            crop_pct=crop_pct,
            interpolation=interpolation,
            mean=mean,
            std=std,
            threshold=threshold,
            grouping=grouping,
            training=training,
            memory=memory,
            ood=ood,
            calibration=calibration,
            replay=replay,
        )


def _number(value: object, low: float, high: float, name: str, bad: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(f"{name} must be a number")
    if not low <= value <= high:
        raise bad(f"{name} must be between {low} and {high}")
    return float(value)


def _count(value: object, name: str, bad: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65536:
        raise bad(f"{name} must be a whole number between 1 and 65536")
    return value


def _triple(value: object, name: str, bad: Any, *, positive: bool) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise bad(f"{name} must be three numbers")
    numbers = tuple(_number(v, 1e-6 if positive else -10.0, 10.0, name, bad) for v in value)
    return (numbers[0], numbers[1], numbers[2])


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
        from sorter.learn.memory import ExemplarMemory

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

        from sorter.learn.replay import Replay

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
            return (
                f"the model '{self.name}' cannot tell photos that fit none of its folders, and its confidence "
                "is not calibrated (the photos it was made from are not at hand to measure): a photo of "
                "something else goes to the likeliest folder when the model is sure enough; a model trained "
                "on your own categories (sorter train) sets such photos apart"
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
            os.replace(tmp, path)
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
        "accuracy": metrics.get("accuracy") if isinstance(metrics, Mapping) else None,
        "training": dict(config.training),
    }
