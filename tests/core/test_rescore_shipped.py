"""With the shipped furniture model, which is 99.99 % sure of its chairs, a correction still moves
the corrected photo's mirror image and crop at once, and leaves other chairs alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from PIL import Image, ImageOps

from sorter.core.classifier import Classifier
from sorter.core.corrections import CorrectionStore, correct
from sorter.core.rescore import rescore
from sorter.core.sorting import SortOptions, sort_folder
from sorter.model.bundle import load_bundle
from tests.conftest import REPO


def test_near_duplicates_follow_a_correction_against_a_confident_model(furniture: Path, tmp_path: Path) -> None:
    room = tmp_path / "room"
    room.mkdir()
    chairs = sorted((furniture / "chair").iterdir())[30:34]
    for photo in chairs:
        shutil.copy2(photo, room / photo.name)
    first = room / chairs[0].name
    with Image.open(first) as img:
        rgb = img.convert("RGB")
        ImageOps.mirror(rgb).save(room / "twin.jpg", quality=92)
        w, h = rgb.size
        rgb.crop((w // 10, h // 10, w - w // 10, h - h // 10)).save(room / "crop.jpg", quality=92)
    bundle = load_bundle(REPO / "models" / "furniture.safetensors")
    out = tmp_path / "out"
    events = {e.source.name: e for e in sort_folder(SortOptions(room, out), Classifier(bundle, torch.device("cpu")))}
    assert events[first.name].labels == ("chair",) and events[first.name].confidence > 0.99
    assert events["twin.jpg"].labels == ("chair",)
    with CorrectionStore(tmp_path / "corrections.sqlite") as store:
        correct(out, events[first.name].destinations[0], "sofa", store)
        scored, missing = rescore(out, bundle, store)
    assert missing == 0
    suggested = {r.path.name: r.suggested for r in scored}
    assert suggested["twin.jpg"] == "sofa" and suggested["crop.jpg"] == "sofa"
    others = [p.name for p in chairs[1:] if events[p.name].labels == ("chair",)]
    assert others and all(suggested[name] == "chair" for name in others), "other chairs keep their folder"
