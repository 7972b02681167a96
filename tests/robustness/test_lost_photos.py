"""The sequences that once lost photos or left the records and the disk disagreeing (issue 29).

Each was reproduced on the code before the placement record, with the calls the CLI and the
review make; each now keeps every photo and ends with the journal, the corrections store and the
disk in agreement.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

from sorter.errors import UsageError
from sorter.files.corrections import CorrectionStore, correct, undo_correction
from sorter.jobs.events import drive
from sorter.jobs.policy import Choices
from sorter.jobs.resort import resort
from sorter.jobs.sorting import SortOptions, sort_folder
from sorter.model.architecture import SorterNet
from sorter.model.bundle import load_bundle, save_bundle
from sorter.model.classifier import Classifier
from sorter.model.config import BundleConfig
from tests.conftest import SAMPLES, content_counts, run_sorter, sha256, snapshot
from tests.crash import files_under, sorter_killed_at_unlink


def _samples(root: Path) -> Path:
    root.mkdir(parents=True)
    for photo in sorted(SAMPLES.glob("*.jpg")):
        shutil.copy2(photo, root / photo.name)
    return root


def _contents(folder: Path) -> dict[str, str]:
    return {k: v[0] for k, v in snapshot(folder).items()}


def _store_agrees_with_disk(store: CorrectionStore) -> None:
    """Every correction the store holds points at a photo that lies in the folder it names."""
    for c in store.latest_per_photo():
        assert c.sorted_path.is_file(), f"{c.sorted_path} is recorded as corrected but is gone"
        assert c.sorted_path.parent.name == c.corrected, f"{c.sorted_path} is not in {c.corrected}"
        assert sha256(c.sorted_path) == c.sha256


def test_resorting_unsure_with_move_keeps_every_photo_and_undo_restores_the_originals(tmp_path: Path) -> None:
    """Case 1: the photos that stay unsure used to be unlinked as 'duplicates' of themselves."""
    src = _samples(tmp_path / "photos")
    before, counts = _contents(src), content_counts(src)
    out = tmp_path / "out"
    first = run_sorter("sort", str(src), "--out", str(out), "--move", "--device", "cpu")
    assert first.returncode == 0, first.stderr
    unsure = out / "_unsure"
    assert len(files_under(unsure)) >= 2, "the general model leaves some samples unsure"

    again = run_sorter("sort", str(unsure), "--out", str(out), "--move", "--device", "cpu")
    assert again.returncode == 0, again.stderr
    assert content_counts(out) == counts, "every photo is still there, exactly once"

    _undo_everything(out)
    assert _contents(src) == before, "the originals are back, byte for byte"
    assert files_under(out) == []


def test_a_correction_into_its_own_folder_under_another_spelling_loses_nothing(
    tmp_path: Path, general_classifier
) -> None:  # type: ignore[no-untyped-def]
    """Case 2: on a volume that ignores case, 'animals' is the folder 'Animals'. A link stands in
    for that volume here: the target folder is the photo's own folder, under another name."""
    out = tmp_path / "out"
    drive(sort_folder(SortOptions(_samples(tmp_path / "photos"), out), general_classifier), lambda e: None)
    photo = out.resolve() / "Animals" / "chelsea.jpg"
    digest = sha256(photo)
    (out / "animals").symlink_to(out / "Animals", target_is_directory=True)
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        with pytest.raises(UsageError, match="already in"):
            correct(out, photo, "animals", store)
        assert photo.is_file() and sha256(photo) == digest
        assert store.all() == []


def test_undo_last_correction_acts_on_the_folder_under_review_only(tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    """Case 3: the newest correction of the whole store used to be undone, whichever folder it was in."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        drive(
            sort_folder(SortOptions(_samples(tmp_path / f"photos-{out.name}"), out), general_classifier), lambda e: None
        )
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        in_a = correct(a, a / "Animals" / "chelsea.jpg", "Food & drink", store).path
        in_b = correct(b, b / "Food & drink" / "coffee.jpg", "Animals", store).path
        back = undo_correction(a, store)
        assert back == a.resolve() / "Animals" / "chelsea.jpg" and back.is_file() and not in_a.exists()
        assert in_b.is_file(), "the other folder's correction stands"
        _store_agrees_with_disk(store)


def test_undo_after_a_resort_and_a_correction_leaves_records_and_disk_agreeing(
    tmp_path: Path, general_classifier
) -> None:  # type: ignore[no-untyped-def]
    """Case 4: sort, re-sort, correct a photo the re-sort moved, then undo (twice)."""
    src = _samples(tmp_path / "photos")
    out = tmp_path / "out"
    drive(sort_folder(SortOptions(src, out, threshold=0.99), general_classifier), lambda e: None)
    bundle = general_classifier.bundle
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        report = resort(out, bundle, store, Choices(threshold=0.0).policy(bundle.config))
        assert report.moved, "a lower threshold moves unsure photos into categories"
        moved = report.moved[0][1]
        other = next(c for c in bundle.config.classes if c != moved.parent.name)
        correct(out, moved, other, store)

        first = run_sorter("undo", str(out), env=_env(tmp_path))
        assert first.returncode == 0, first.stderr
        _store_agrees_with_disk(store)
        second = run_sorter("undo", str(out), env=_env(tmp_path))
        assert second.returncode == 0, second.stderr
        _store_agrees_with_disk(store)
    assert files_under(out) == [], "undoing both runs leaves no photo behind"


def _undo_everything(out: Path) -> None:
    """``sorter undo`` until no run is left, newest first, as a user would click Undo."""
    for _ in range(10):
        undone = run_sorter("undo", str(out))
        if "no run to undo" in undone.stderr:
            return
        assert undone.returncode == 0, undone.stderr
        assert "kept:" not in undone.stderr
    raise AssertionError("undo never ran out of runs")


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "SORTER_DATA_DIR": str(tmp_path / "data")}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_kill_right_after_a_move_unlinks_its_source_loses_nothing(tmp_path: Path) -> None:
    """Case 5: the source used to be unlinked before the journal knew where the photo went."""
    src = _samples(tmp_path / "photos")
    before, counts = _contents(src), content_counts(src)
    out = tmp_path / "out"
    args = ("sort", str(src), "--out", str(out), "--move", "--device", "cpu")
    assert sorter_killed_at_unlink(str(src), *args) == -9
    assert content_counts(out) + content_counts(src) == counts, "no photo is lost by the kill"
    resumed = run_sorter(*args)
    assert resumed.returncode == 0, resumed.stderr
    _undo_everything(out)
    assert _contents(src) == before, "undo returns every photo, the one moved at the kill too"
    assert files_under(out) == []


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_kill_right_after_a_copy_is_named_leaves_nothing_undo_cannot_remove(tmp_path: Path) -> None:
    """Case 5: a copy renamed into place but not journaled used to resume as a 'duplicate' that
    undo never removed."""
    src = _samples(tmp_path / "photos")
    out = tmp_path / "out"
    args = ("sort", str(src), "--out", str(out), "--device", "cpu")
    assert sorter_killed_at_unlink(".sorter-part-", *args) == -9
    resumed = run_sorter(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert content_counts(out) == content_counts(src), "the copy named at the kill is not made twice"
    _undo_everything(out)
    assert files_under(out) == []


def test_copies_made_before_a_later_label_fails_are_journaled(tmp_path: Path) -> None:
    """Case 5: in a multi-label run, the copies already made for a photo whose later label
    failed used to be recorded nowhere, so undo left them behind."""
    torch.manual_seed(0)
    net = SorterNet("efficientnet_lite0", 3)
    config = BundleConfig(architecture="efficientnet_lite0", classes=("bed", "chair", "sofa"), multi_label=True)
    classifier = Classifier(load_bundle(save_bundle(tmp_path / "multi.safetensors", net, config)), torch.device("cpu"))
    src = _samples(tmp_path / "photos")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sofa").write_text("a file where the folder sofa would go")
    with pytest.raises(Exception, match="sofa"):
        drive(sort_folder(SortOptions(src, out, threshold=0.0), classifier), lambda e: None)
    (out / "sofa").unlink()
    summary = drive(sort_folder(SortOptions(src, out, threshold=0.0), classifier), lambda e: None)
    assert summary.failed == 0
    for label in ("bed", "chair", "sofa"):
        assert content_counts(out / label) == content_counts(src)
    _undo_everything(out)
    assert files_under(out) == []


# -- sequences the random-sequence test (sequences.py) found while it was built -------------------
def test_sorting_a_folder_of_the_output_leaves_reviewed_photos_alone(tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    """Sort, confirm a photo, then sort its category folder into the output with --move (at a
    threshold that would send it to _unsure): a photo you reviewed stays where you put it."""
    from sorter.files.corrections import confirm
    from sorter.jobs.reviews import reviews_for_sorting

    out = tmp_path / "out"
    drive(sort_folder(SortOptions(_samples(tmp_path / "photos"), out), general_classifier), lambda e: None)
    db = tmp_path / "data" / "corrections.sqlite"
    photo = out.resolve() / "Animals" / "chelsea.jpg"
    with CorrectionStore(db) as store:
        confirm(out, photo, store)
    reviewed, kept = reviews_for_sorting(db, general_classifier.bundle.path, out)
    assert kept == (photo,)
    options = SortOptions(out / "Animals", out, move=True, threshold=1.0, reviewed=reviewed, kept=kept)
    events = []
    drive(sort_folder(options, general_classifier), events.append)
    assert [e.reason for e in events if e.source == photo] == ["you reviewed it: it stays where you put it"]
    assert photo.is_file()
    with CorrectionStore(db) as store:
        _store_agrees_with_disk(store)


def test_the_last_word_on_a_photo_counts(tmp_path: Path, general_classifier) -> None:  # type: ignore[no-untyped-def]
    """Confirm a photo, then correct it: the correction is the photo's standing review; taking it
    back brings back the confirmation, and the photo to the folder it confirmed."""
    from sorter.files.corrections import confirm

    out = tmp_path / "out"
    drive(sort_folder(SortOptions(_samples(tmp_path / "photos"), out), general_classifier), lambda e: None)
    photo = out.resolve() / "Animals" / "chelsea.jpg"
    with CorrectionStore(tmp_path / "data" / "corrections.sqlite") as store:
        confirm(out, photo, store)
        moved = correct(out, photo, "Food & drink", store).path
        (standing,) = store.standing_in(out.resolve())
        assert (standing.kind, standing.sorted_path) == ("correction", moved)
        assert undo_correction(out, store) == photo and photo.is_file()
        (standing,) = store.standing_in(out.resolve())
        assert (standing.kind, standing.sorted_path) == ("confirmation", photo)
