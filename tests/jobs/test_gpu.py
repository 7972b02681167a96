"""GPU: sorting on CUDA agrees with the CPU. Run with SORTER_TEST_DEVICE=cuda pytest -m gpu."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sorter.model.classifier import Classifier
from tests.conftest import GENERAL_MODEL, pick_photos


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(furniture: Path) -> None:
    photos = pick_photos(furniture, 2)
    cpu = Classifier.load(GENERAL_MODEL, "cpu")
    gpu = Classifier.load(GENERAL_MODEL, "cuda")
    a = np.stack([p.probs for p in cpu.classify(photos, lambda p: p)])
    b = np.stack([p.probs for p in gpu.classify(photos, lambda p: p)])
    assert (a.argmax(1) == b.argmax(1)).all()
    np.testing.assert_allclose(a, b, atol=2e-2)  # the GPU runs in half precision


def test_asking_for_cuda_without_one_is_an_error_not_a_fallback() -> None:
    from sorter.errors import DeviceError
    from sorter.model.classifier import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(DeviceError, match="none is available"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"
