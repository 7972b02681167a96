"""A folder whose mistakes are systematic (issue 25, item 2), on real photos and the shipped model.

The photos look typical of the training photos, so nothing flags the folder; but the user's
first reviews find, again and again, that photos the model was sure were beds are not. Then the
folder's confidence in ``bed`` is not the validation confidence: the re-sort holds the other
beds back and says why, until enough reviews can estimate the folder's precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sorter.cli import main
from sorter.files.corrections import CorrectionStore, confirm, correct
from sorter.jobs.rescore import rescore
from sorter.knobs import DEFAULT
from sorter.model.bundle import load_bundle
from sorter.names import UNSURE_FOLDER
from sorter.paths import corrections_db
from tests.jobs.test_shift import MODEL, _photos


def _resort(out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["resort", str(out), "--json"]) == 0
    data: dict[str, object] = json.loads(capsys.readouterr().out)
    return data


def test_repeated_confident_mistakes_hold_that_class_back_until_the_reviews_can_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SORTER_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for photo in _photos(300):
        (folder / f"{photo.parent.name}-{photo.name}").write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    assert main(["sort", str(folder), "--out", str(out), "--model", str(MODEL), "--backend", "torch", "--json"]) == 0
    capsys.readouterr()
    beds = sorted((out / "bed").iterdir())
    assert len(beds) >= DEFAULT.systematic + 3, "the shipped model sorts most of these beds"
    bundle = load_bundle(MODEL)

    with CorrectionStore(corrections_db()) as store:
        for photo in beds[: DEFAULT.systematic - 1]:
            correct(out, photo, "sofa", store)
    _resort(out, capsys)
    assert len(list((out / "bed").iterdir())) == len(beds) - (DEFAULT.systematic - 1), "two mistakes are not a pattern"

    with CorrectionStore(corrections_db()) as store:
        correct(out, beds[DEFAULT.systematic - 1], "sofa", store)
    assert main(["resort", str(out)]) == 0
    assert "found several photos sorted as bed that were not" in capsys.readouterr().out
    data = _resort(out, capsys)
    assert data["estimate"] is None and data["doubted"] == ["bed"]
    assert not (out / "bed").exists() or not list((out / "bed").iterdir()), "the other beds wait"
    with CorrectionStore(corrections_db()) as store:
        found = rescore(out, bundle, store)
    waiting = [
        r for r in found.photos if not r.reviewed and r.current == UNSURE_FOLDER and r.suggested == UNSURE_FOLDER
    ]
    held = [r for r in waiting if r.reason is not None and "found several photos sorted as bed" in r.reason]
    assert len(held) >= len(beds) - DEFAULT.systematic, "each says why it waits"
    assert all(r.reason is None or "as bed" not in r.reason for r in found.photos if r.current in ("chair", "sofa"))

    # the user goes on reviewing (confirming chairs and sofas): with enough reviews the estimate decides
    others = [p for c in ("chair", "sofa") for p in sorted((out / c).iterdir())]
    with CorrectionStore(corrections_db()) as store:
        reviewed = {r.path for r in found.photos if r.reviewed}
        for photo in [p for p in others if p not in reviewed][: DEFAULT.min_reviews - DEFAULT.systematic]:
            confirm(out, photo, store)
    data = _resort(out, capsys)
    assert isinstance(data["estimate"], dict), "enough reviews: the estimate replaces the rule"
    assert data["doubted"] == []
    with CorrectionStore(corrections_db()) as store:
        found = rescore(out, bundle, store)
    assert all(r.reason is None or "found several" not in r.reason for r in found.photos)
