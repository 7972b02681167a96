"""Bundles round-trip, and every malformed or hostile bundle is refused with one sentence."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from sorter.errors import ModelLoadError
from sorter.model.architecture import SorterNet
from sorter.model.bundle import METADATA_KEY, load_bundle, read_config, save_bundle
from sorter.model.config import BundleConfig
from tests.conftest import GENERAL_MODEL

ARCH = "efficientnet_lite0"


@pytest.fixture(scope="module")
def small_model() -> SorterNet:
    torch.manual_seed(0)
    return SorterNet(ARCH, 3).eval()


@pytest.fixture(scope="module")
def config() -> BundleConfig:
    return BundleConfig(architecture=ARCH, classes=("bed", "chair", "sofa"))


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory, small_model: SorterNet, config: BundleConfig) -> Path:
    return save_bundle(tmp_path_factory.mktemp("b") / "good.safetensors", small_model, config)


def write_raw(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, object] | str) -> Path:
    text = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={METADATA_KEY: text})
    return path


def test_round_trip_gives_identical_outputs(good_bundle: Path, small_model: SorterNet, config: BundleConfig) -> None:
    bundle = load_bundle(good_bundle)
    assert bundle.config == config
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(bundle.build_model()(x), small_model(x))


def test_save_never_overwrites(good_bundle: Path, small_model: SorterNet, config: BundleConfig) -> None:
    before = good_bundle.read_bytes()
    with pytest.raises(ModelLoadError, match="already exists"):
        save_bundle(good_bundle, small_model, config)
    assert good_bundle.read_bytes() == before
    assert not list(good_bundle.parent.glob(".sorter-part-*"))


def test_pickle_renamed_to_safetensors_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (Path.touch, (marker,))

    hostile = tmp_path / "model.safetensors"
    hostile.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelLoadError, match="not a safetensors file"):
        load_bundle(hostile)
    torch_pickle = tmp_path / "torch.safetensors"
    torch.save({"head.weight": torch.zeros(1)}, torch_pickle)
    with pytest.raises(ModelLoadError, match="not a safetensors file"):
        load_bundle(torch_pickle)
    assert not marker.exists()


def test_truncated_and_empty_files(tmp_path: Path, good_bundle: Path) -> None:
    data = good_bundle.read_bytes()
    for name, blob in {"empty": b"", "header-cut": data[:200], "tensors-cut": data[: len(data) // 2]}.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(blob)
        with pytest.raises(ModelLoadError) as err:
            load_bundle(path)
        assert "\n" not in str(err.value)


def test_header_claiming_a_huge_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**60) + b'{"a": 1}')
    with pytest.raises(ModelLoadError, match="not a safetensors file"):
        load_bundle(path)
    lying = tmp_path / "lying.safetensors"
    header = json.dumps(
        {
            "head.weight": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40000000000]},
            "__metadata__": {METADATA_KEY: "{}"},
        }
    ).encode()
    lying.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    with pytest.raises(ModelLoadError):
        load_bundle(lying)


def _meta(config: BundleConfig, **changes: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(config.to_json())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": ["bed", "../../evil", "sofa"]}, "not a safe folder name"),
        ({"classes": ["bed", "CON", "sofa"]}, "reserves for devices"),
        ({"classes": ["bed", "a/b", "sofa"]}, "not a safe folder name"),
        ({"classes": ["bed", "Bed", "sofa"]}, "differ only in case"),
        ({"classes": ["bed", "chair.", "sofa"]}, "ends with a dot"),
        ({"classes": ["bed", "_unsure", "sofa"]}, "_unsure"),
        ({"architecture": "not_a_net"}, "architecture 'not_a_net' is unknown"),
        ({"format": "something-else"}, "not a Sorter model bundle"),
        ({"format_version": 99}, "format version 99"),
        ({"input_size": [224]}, "input_size"),
        ({"mean": [0.5, "x", 0.5]}, "mean"),
        ({"threshold": 7}, "threshold"),
        ({"resize": "stretch-ish"}, "resize method"),
        ({"classes": ["bed", "_other", "sofa"]}, "_other"),
        ({"memory": {"alpha": 1.0, "beta": 1.0, "size": 0}}, "memory size"),
        ({"memory": "lots"}, "memory must be an object"),
        ({"ood": {"anchors": "crystal ball", "size": 3, "threshold": 0.5}}, "out-of-distribution"),
        ({"ood": {"anchors": "means", "size": 3, "threshold": 5}}, "fit threshold"),
        ({"calibration": {"temperature": 0.0}}, "calibration is malformed"),
        ({"calibration": {"temperature": 1.0, "grid": [0.5], "precision": [], "overall": []}}, "calibration"),
    ],
)
def test_bad_config_is_refused(
    tmp_path: Path, small_model: SorterNet, config: BundleConfig, changes: dict[str, object], message: str
) -> None:
    path = write_raw(tmp_path / "m.safetensors", dict(small_model.state_dict()), _meta(config, **changes))
    with pytest.raises(ModelLoadError, match=message):
        load_bundle(path)


def test_memory_and_fit_tensors_are_checked(tmp_path: Path, small_model: SorterNet, config: BundleConfig) -> None:
    state = dict(small_model.state_dict())
    memory = {"alpha": 64.0, "beta": 16.0, "size": 2}
    ood = {"anchors": "means", "size": 3, "threshold": 0.4}
    good = {
        **state,
        "memory.keys": torch.ones(2, 1280),
        "memory.labels": torch.tensor([0, 2]),
        "ood.anchors": torch.ones(3, 1280),
    }
    bundle = load_bundle(write_raw(tmp_path / "ok.safetensors", good, _meta(config, memory=memory, ood=ood)))
    assert bundle.memory is not None and list(bundle.memory.labels) == [0, 2]
    assert bundle.ood_anchors is not None and tuple(bundle.ood_anchors.shape) == (3, 1280)
    missing = {k: v for k, v in good.items() if k != "memory.keys"}
    with pytest.raises(ModelLoadError, match="missing"):
        load_bundle(write_raw(tmp_path / "a.safetensors", missing, _meta(config, memory=memory, ood=ood)))
    wrong_class = {**good, "memory.labels": torch.tensor([0, 7])}
    with pytest.raises(ModelLoadError, match="classes the model does not have"):
        load_bundle(write_raw(tmp_path / "b.safetensors", wrong_class, _meta(config, memory=memory, ood=ood)))
    misshaped = {**good, "ood.anchors": torch.ones(2, 1280)}
    with pytest.raises(ModelLoadError, match=r"ood.anchors has shape"):
        load_bundle(write_raw(tmp_path / "c.safetensors", misshaped, _meta(config, memory=memory, ood=ood)))


def test_missing_extra_and_misshaped_tensors(tmp_path: Path, small_model: SorterNet, config: BundleConfig) -> None:
    state = dict(small_model.state_dict())
    missing = {k: v for k, v in state.items() if k != "head.bias"}
    with pytest.raises(ModelLoadError, match="missing"):
        load_bundle(write_raw(tmp_path / "a.safetensors", missing, _meta(config)))
    misshaped = {**state, "head.weight": torch.zeros(5, 1280)}
    with pytest.raises(ModelLoadError, match=r"head.weight has shape \(5, 1280\)"):
        load_bundle(write_raw(tmp_path / "b.safetensors", misshaped, _meta(config)))
    extra = {**state, "evil": torch.zeros(1)}
    with pytest.raises(ModelLoadError, match="unexpected"):
        load_bundle(write_raw(tmp_path / "c.safetensors", extra, _meta(config)))
    nan = {**state, "head.bias": torch.full((3,), float("nan"))}
    with pytest.raises(ModelLoadError, match="NaN"):
        load_bundle(write_raw(tmp_path / "d.safetensors", nan, _meta(config)))


def test_plain_safetensors_without_sorter_config(tmp_path: Path, small_model: SorterNet) -> None:
    path = tmp_path / "plain.safetensors"
    save_file(dict(small_model.state_dict()), str(path))
    with pytest.raises(ModelLoadError, match="not a Sorter model bundle"):
        load_bundle(path)


def test_embedded_general_model_is_valid() -> None:
    config = read_config(GENERAL_MODEL)
    assert len(config.classes) == 12 and config.grouping is not None
    assert len(config.grouping.source_classes) == 1000
    assert set(config.grouping.group_of) == set(range(12)), "every folder receives some classes"
    assert config.mean == (0.5, 0.5, 0.5) and config.resize == "crop"


@pytest.mark.skipif(__import__("sys").platform == "win32", reason="POSIX modes")
def test_saved_bundle_is_readable_like_any_saved_file(good_bundle: Path) -> None:
    from sorter.fsutil import default_file_mode

    assert good_bundle.stat().st_mode & 0o777 == default_file_mode()
    assert default_file_mode() & 0o044, "group and others can read it under a usual umask"
