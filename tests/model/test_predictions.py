"""The embedded model recognises real photos; preprocessing follows the bundle's config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sorter.model.classifier import top_k
from sorter.model.config import BundleConfig
from sorter.model.preprocess import Preprocessor
from tests.conftest import SAMPLES


@pytest.mark.parametrize(
    ("photo", "folder"),
    [("chelsea.jpg", "Animals"), ("coffee.jpg", "Food & drink"), ("camera.jpg", "Electronics")],
)
def test_general_model_sorts_sample_photos(general_classifier, photo: str, folder: str) -> None:  # type: ignore[no-untyped-def]
    (pred,) = list(general_classifier.classify([SAMPLES / photo], lambda p: p))
    assert pred.error is None
    label, p = top_k(pred.probs, general_classifier.classes, 1)[0]
    assert label == folder and p > 0.8
    assert pred.probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_furniture_photos_land_in_furniture_and_home(general_classifier, furniture: Path) -> None:  # type: ignore[no-untyped-def]
    sofas = sorted((furniture / "sofa").iterdir())[:12]
    preds = list(general_classifier.classify(sofas, lambda p: p))
    labels = [general_classifier.classes[int(np.argmax(p.probs))] for p in preds]
    assert labels.count("Furniture & home") >= 10


def test_batching_does_not_change_results(general_classifier, furniture: Path) -> None:  # type: ignore[no-untyped-def]
    photos = sorted((furniture / "chair").iterdir())[:5]
    batched = np.stack([p.probs for p in general_classifier.classify(photos, lambda p: p)])
    single = np.stack([general_classifier.predict_arrays([general_classifier.preprocess(p)])[0] for p in photos])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    cfg = BundleConfig(architecture="efficientnet_lite0", classes=("a",), input_size=(64, 96))
    pre = Preprocessor(cfg)
    img = Image.open(SAMPLES / "coffee.jpg").convert("RGB")
    upright = img.rotate(90, expand=True)  # what the viewer shows
    upright.save(tmp_path / "upright.png")
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; viewers turn it 90° counter-clockwise
    img.save(tmp_path / "tagged.jpg", exif=exif, quality=95)
    a, b = pre(tmp_path / "upright.png"), pre(tmp_path / "tagged.jpg")
    assert a.shape == b.shape == (64, 96, 3)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 12


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "I;16"])
def test_unusual_modes_decode_to_rgb(tmp_path: Path, mode: str) -> None:
    pre = Preprocessor(BundleConfig(architecture="efficientnet_lite0", classes=("a",)))
    img = Image.open(SAMPLES / "chelsea.jpg").convert("RGB")
    if mode == "I;16":
        arr = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        path = tmp_path / "deep.png"
        Image.fromarray(arr).save(path)
    else:
        path = tmp_path / ("x.jpg" if mode in ("L", "CMYK") else "x.png")
        img.convert(mode).save(path)
    out = pre(path)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert out.std() > 10, "the picture survived the conversion"
