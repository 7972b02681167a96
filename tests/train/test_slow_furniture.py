"""Slow: the issue's target, furniture7 trained on a CPU reaches 90 % on a leak-free split.

Run with ``python -m pytest -m slow`` (about 3 minutes here; the time is reported, not asserted).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sorter.learn.datasets import load_data
from sorter.train.recipe import TrainSettings
from sorter.train.train import fit_and_export


@pytest.mark.slow
def test_furniture7_reaches_90_percent(tmp_path: Path, furniture: Path, test_device: str) -> None:
    trained = fit_and_export(load_data(furniture), tmp_path / "f7.safetensors", TrainSettings(device=test_device))
    print(f"furniture7: {trained.report['timings']['total_seconds']} s, accuracy {trained.report['accuracy']}")
    assert trained.report["accuracy"] >= 0.9
    assert trained.report["n"] >= 200
