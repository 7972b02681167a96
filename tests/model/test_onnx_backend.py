"""The ONNX Runtime backend gives torch's answers, caches its export, and never hides a failure."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sorter.errors import DeviceError, ModelLoadError
from sorter.model import onnx_backend
from sorter.model.architecture import SorterNet
from sorter.model.bundle import load_bundle, save_bundle
from sorter.model.classifier import Classifier
from sorter.model.config import BundleConfig
from tests.conftest import GENERAL_MODEL, SAMPLES, pick_photos


@pytest.fixture(scope="module")
def general_torch() -> Classifier:
    return Classifier.load(GENERAL_MODEL, "cpu", backend="torch", batch_size=8)


@pytest.fixture(scope="module")
def real_photos(furniture: Path) -> list[np.ndarray]:
    from sorter.model.bundle import read_config
    from sorter.model.preprocess import Preprocessor

    pre = Preprocessor(read_config(GENERAL_MODEL))
    photos = pick_photos(furniture, 3) + sorted(SAMPLES.glob("*.jpg")) + sorted(SAMPLES.glob("*.png"))
    return [pre(p) for p in photos]


def assert_same_answers(onnx: Classifier, reference: Classifier, arrays: list[np.ndarray]) -> None:
    assert onnx.backend == "onnx" and reference.backend == "torch"
    got, want = onnx.predict_arrays(arrays), reference.predict_arrays(arrays)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.argmax(axis=1), want.argmax(axis=1))
    assert np.abs(got - want).max() <= 1e-4


def test_onnx_matches_torch_on_real_photos_with_the_grouped_default(
    general_torch: Classifier, real_photos: list[np.ndarray], tmp_path: Path
) -> None:
    onnx = Classifier.load(GENERAL_MODEL, "cpu", backend="onnx", cache_dir=tmp_path)
    assert len(real_photos) >= 25
    assert_same_answers(onnx, general_torch, real_photos)
    # Odd batch sizes go through the same graph (its batch axis is dynamic).
    assert_same_answers(onnx, general_torch, real_photos[:1])
    assert_same_answers(onnx, general_torch, real_photos[:7])


@pytest.mark.parametrize("multi_label", [False, True])
def test_onnx_matches_torch_for_plain_and_multi_label_heads(
    multi_label: bool, real_photos: list[np.ndarray], tmp_path: Path
) -> None:
    torch.manual_seed(1)
    net = SorterNet("efficientnet_lite0", 3)
    net.load_state_dict(
        {**net.state_dict(), **{k: v for k, v in load_bundle(GENERAL_MODEL).state.items() if k.startswith("body.")}}
    )
    config = BundleConfig(
        architecture="efficientnet_lite0",
        classes=("bed", "chair", "sofa"),
        multi_label=multi_label,
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    )
    bundle = load_bundle(save_bundle(tmp_path / "m.safetensors", net, config))
    onnx = Classifier(bundle, torch.device("cpu"), backend="onnx")
    reference = Classifier(bundle, torch.device("cpu"), backend="torch")
    assert_same_answers(onnx, reference, real_photos)
    sums = onnx.predict_arrays(real_photos[:4]).sum(axis=1)
    if multi_label:
        assert not np.allclose(sums, 1.0)  # independent sigmoids, not a softmax
    else:
        np.testing.assert_allclose(sums, 1.0, atol=1e-5)


def test_export_is_cached_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = Classifier.load(GENERAL_MODEL, "cpu", backend="onnx", cache_dir=tmp_path)
    (cached,) = list(tmp_path.glob("*.onnx"))
    assert cached.stem == onnx_backend.cache_key(first.bundle)

    def no_export(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("the cached graph should have been used")

    monkeypatch.setattr(onnx_backend, "export", no_export)
    second = Classifier.load(GENERAL_MODEL, "cpu", backend="onnx", cache_dir=tmp_path)
    assert second.backend == "onnx"
    assert list(tmp_path.glob("*.onnx")) == [cached]


def test_damaged_cache_is_exported_again(
    tmp_path: Path, general_torch: Classifier, real_photos: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    key = onnx_backend.cache_key(general_torch.bundle)
    (tmp_path / f"{key}.onnx").write_bytes(b"\x08\x07 not a graph")
    with caplog.at_level(logging.WARNING, logger="sorter.model.onnx_backend"):
        onnx = Classifier.load(GENERAL_MODEL, "cpu", backend="onnx", cache_dir=tmp_path)
    assert "unusable" in caplog.text
    assert (tmp_path / f"{key}.onnx").stat().st_size > 1_000_000
    assert_same_answers(onnx, general_torch, real_photos[:5])


def test_cache_key_follows_the_weights_not_the_file_name(tmp_path: Path) -> None:
    bundle = load_bundle(GENERAL_MODEL)
    renamed = load_bundle(save_bundle(tmp_path / "renamed.safetensors", bundle.build_model(), bundle.config))
    assert onnx_backend.cache_key(renamed) == onnx_backend.cache_key(bundle)
    net = bundle.build_model()
    with torch.no_grad():
        net.head.bias[0] += 1e-3  # type: ignore[index, operator]
    changed = load_bundle(save_bundle(tmp_path / "changed.safetensors", net, bundle.config))
    assert onnx_backend.cache_key(changed) != onnx_backend.cache_key(bundle)


def test_auto_picks_onnx_on_the_cpu() -> None:
    assert Classifier.load(GENERAL_MODEL, "cpu").backend == "onnx"


def test_backend_mistakes_are_one_sentence() -> None:
    bundle = load_bundle(GENERAL_MODEL)
    with pytest.raises(DeviceError, match="CPU only"):
        Classifier(bundle, torch.device("cuda"), backend="onnx")
    with pytest.raises(DeviceError, match="Unknown backend 'tpu'"):
        Classifier(bundle, torch.device("cpu"), backend="tpu")


def test_without_onnxruntime_auto_says_so_and_onnx_refuses(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    bundle = load_bundle(GENERAL_MODEL)
    with caplog.at_level(logging.WARNING, logger="sorter.model.classifier"):
        auto = Classifier(bundle, torch.device("cpu"))
    assert auto.backend == "torch"
    assert "onnxruntime is not installed" in caplog.text
    with pytest.raises(DeviceError, match="onnxruntime is not installed"):
        Classifier(bundle, torch.device("cpu"), backend="onnx")


def test_a_graph_that_cannot_be_exported_falls_back_to_torch_only_under_auto(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_export(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("Exporting the operator 'aten::exotic' is not supported")

    monkeypatch.setattr(onnx_backend, "export", failing_export)
    bundle = load_bundle(GENERAL_MODEL)
    with caplog.at_level(logging.WARNING, logger="sorter.model.classifier"):
        auto = Classifier(bundle, torch.device("cpu"))
    assert auto.backend == "torch"
    assert "cannot be exported to ONNX" in caplog.text and "aten::exotic" in caplog.text
    (pred,) = list(auto.classify([SAMPLES / "chelsea.jpg"], lambda p: p))
    assert pred.probs is not None and auto.classes[int(pred.probs.argmax())] == "Animals"
    with pytest.raises(ModelLoadError, match="cannot be exported to ONNX"):
        Classifier(bundle, torch.device("cpu"), backend="onnx")
