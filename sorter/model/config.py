"""What a model bundle says about itself: the config schema, and its validation field by field.

The config travels in the safetensors header (:mod:`sorter.model.bundle` reads and writes the
file). Every field is checked here before a tensor is touched, so a malformed or hostile file
fails with one sentence that names the first bad field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sorter.errors import ModelLoadError
from sorter.model.calibration import Calibration
from sorter.model.people import PeopleRule
from sorter.names import HOLDING_FOLDERS, OTHER_FOLDER, UNSURE_FOLDER, class_names_problem

FORMAT = "sorter-bundle"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
"""Version 2 added the optional exemplar memory, version 3 the optional feature replay; an older
bundle is a newer one without them."""
RESIZE_METHODS = ("squish", "crop")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


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
    """Temperature and per-class precision table (:class:`sorter.model.calibration.Calibration`)."""
    replay: ReplaySettings | None = None
    people: PeopleRule | None = None
    """A prominent face sends the photo to this folder (see :mod:`sorter.model.people`)."""

    def calibration_table(self) -> Calibration | None:
        if self.calibration is None:
            return None
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
        # timm is imported only here, not when the module is: listing models must stay quick
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
        if any(c.casefold() in HOLDING_FOLDERS for c in classes):
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
        people = None
        raw_people = data.get("people")
        if raw_people is not None:
            if not isinstance(raw_people, dict) or raw_people.get("folder") not in classes:
                raise bad("its people folder must be one of its classes")
            if multi:
                raise bad("a multi-label model cannot send people to one folder")
            people = PeopleRule(
                folder=str(raw_people["folder"]),
                min_face=_number(raw_people.get("min_face", 0.1), 0.01, 1.0, "the smallest face", bad),
                confidence=_number(raw_people.get("confidence", 0.95), 0.5, 1.0, "the people confidence", bad),
            )
        calibration = data.get("calibration")
        if calibration is not None:
            if not isinstance(calibration, dict):
                raise bad("its calibration must be an object")
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
            people=people,
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
