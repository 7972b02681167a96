"""A user who reviews the photo at the top of the queue still meets the spot checks.

The review dialog builds its queue again after every click and keeps the cursor where it was, so
a user who corrects or confirms the selected photo again and again always takes the first photo
not yet reviewed. The spot checks (a sure photo shown to be confirmed, one in ``spot_every``) were
placed at the fourth place of the photos not yet reviewed: rebuilt after each click, that place
was always three ahead of the user, who never met one. The estimate then saw only doubtful
photos, and its statement stood on nothing sure (`benchmarks/trust.py --per-click`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sorter.files.corrections import CorrectionStore, confirm, correct
from sorter.jobs.events import drive
from sorter.jobs.review_queue import build_queue
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.knobs import knobs
from sorter.model.bundle import load_bundle
from sorter.model.classifier import Classifier
from sorter.names import HOLDING_FOLDERS
from tests.conftest import REPO, make_photo_folder, pick_photos

FURNITURE_MODEL = REPO / "models" / "furniture.safetensors"


def test_a_user_who_takes_the_top_photo_meets_a_spot_check_every_few_clicks(
    furniture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path / "data"))
    src = make_photo_folder(tmp_path / "photos", pick_photos(furniture, 4))
    out = tmp_path / "sorted"
    bundle = load_bundle(FURNITURE_MODEL)
    drive(sort_folder(SortOptions(src, out), Classifier(bundle, torch.device("cpu"))), lambda e: None)
    every = knobs().spot_every
    clicks = 3 * every
    met = []
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        for _ in range(clicks):
            queue = build_queue(out, bundle, store)
            top = next(i for i in queue.items if not i.reviewed)  # where the dialog's cursor stays
            met.append(top.spot_check)
            truth = top.path.name.split("_", 1)[0]  # the photo's class, as make_photo_folder names it
            if top.label == truth:
                assert top.label not in HOLDING_FOLDERS
                confirm(out, top.path, store)
            else:
                correct(out, top.path, truth, store)
    assert sum(met) == clicks // every, f"one spot check in every {every} clicks: {met}"
    assert met[every - 1], "the first on the fourth click, as on the first page"
