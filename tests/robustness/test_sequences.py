"""Random sequences of everything a user does never lose a photo (issue 29; see ``sequences.py``).

The short profile runs with every test run (100 sequences, a few with a kill -9;
``SORTER_SEQUENCES=N`` runs N instead). The long
profile (``pytest -m slow tests/robustness/test_sequences.py``) runs at least 2,000 sequences, at
least 200 of them with a kill -9, and writes its tally to ``SORTER_SEQUENCES_REPORT`` when set
(the figures in docs/ROBUSTNESS.md come from it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from PIL import Image

from sorter.model.classifier import Classifier
from tests.conftest import SAMPLES
from tests.robustness.sequences import Sequences, Tally, WarmChildren, write_tally


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory: pytest.TempPathFactory, furniture: Path) -> list[Path]:
    """Seven real photos made small (a step then costs milliseconds): furniture the tiny model
    knows, a table it does not, and two samples of nothing it knows."""
    folder = tmp_path_factory.mktemp("small")
    chosen = [
        *(sorted((furniture / cls).iterdir())[40] for cls in ("bed", "chair", "sofa")),
        sorted((furniture / "sofa").iterdir())[41],
        sorted((furniture / "table").iterdir())[40],
        SAMPLES / "chelsea.jpg",
        SAMPLES / "coffee.jpg",
    ]
    made = []
    for i, photo in enumerate(chosen):
        with Image.open(photo) as img:
            small = img.convert("RGB")
            small.thumbnail((128, 128))
            target = folder / f"p{i}_{photo.stem}.jpg"
            small.save(target, quality=85)
        made.append(target)
    return made


@pytest.fixture(scope="module")
def machine(tiny_model, small_photos: list[Path]) -> Iterator[type[Sequences]]:  # type: ignore[no-untyped-def]
    Sequences.classifier = Classifier.load(tiny_model.path, "cpu", backend="torch", batch_size=8)
    Sequences.photos = small_photos
    Sequences.children = WarmChildren(tiny_model.path)
    Sequences.tally = Tally()
    yield Sequences
    Sequences.children.close()


def _run(machine: type[Sequences], sequences: int, steps: int, crash_share: float) -> Tally:
    machine.tally = Tally()
    machine.crash_share = crash_share
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=sequences,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
    report = os.environ.get("SORTER_SEQUENCES_REPORT")
    if report:
        write_tally(machine.tally, Path(report))
    return machine.tally


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_random_sequences_of_what_a_user_does_keep_every_photo(machine: type[Sequences]) -> None:
    sequences = int(os.environ.get("SORTER_SEQUENCES", "100"))
    tally = _run(
        machine, sequences=sequences, steps=10, crash_share=float(os.environ.get("SORTER_CRASH_SHARE", "0.05"))
    )
    assert tally.lost == 0
    assert tally.sequences >= sequences
    assert tally.rules["sort"] and tally.rules["correct"] and tally.rules["undo"] and tally.rules["resort"]


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_long_profile_of_random_sequences_keeps_every_photo(machine: type[Sequences]) -> None:
    tally = _run(machine, sequences=2000, steps=10, crash_share=0.14)
    assert tally.lost == 0
    assert tally.sequences >= 2000
    assert tally.sequences_with_kill >= 200, tally.to_json()
