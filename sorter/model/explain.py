"""Grad-CAM: where in the photo the network looked when it chose a class.

Used by the review dialog ("why did it say *table*?") to spot data leaks such as a watermark or a
backdrop that gives the class away. Works on any SorterNet whose body is a CNN with a spatial
feature map before pooling (timm's ``forward_features``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sorter.model.classifier import Classifier


def grad_cam(classifier: Classifier, photo: Path, target: str | None = None) -> tuple[np.ndarray, str, float]:
    """Heat map (H×W floats in 0..1, at the network's input size) for ``target`` or the top class.

    Returns:
        the heat map, the class it explains, and that class's probability.
    """
    array = classifier.preprocess(photo)
    model: Any = classifier.model
    body: Any = model.body
    x = classifier.normalise(torch.from_numpy(array).permute(2, 0, 1)[None].to(classifier.device)).float()
    with torch.enable_grad():
        was_half = next(model.parameters()).dtype == torch.float16
        if was_half:
            model.float()
        try:
            fmap = body.forward_features(x)
            fmap.retain_grad()
            pooled = body.forward_head(fmap, pre_logits=True)
            logits = model.head(pooled)
            probs = classifier.probabilities(logits)
            index = int(probs.detach().argmax()) if target is None else classifier.classes.index(target)
            torch.autograd.backward(probs[0, index])
        finally:
            if was_half:
                model.half()
    grads = fmap.grad
    assert grads is not None
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * fmap.detach()).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=array.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    cam = cam - cam.min()
    top = float(cam.max())
    heat = (cam / top if top > 0 else cam).detach().cpu().numpy()
    return heat, classifier.classes[index], float(probs[0, index].detach())


def overlay(array: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a red-yellow heat map over the photo (both H×W; photo uint8 RGB)."""
    colour = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1) * 255.0
    weight = (alpha * heat)[..., None]
    return (array * (1 - weight) + colour * weight).clip(0, 255).astype(np.uint8)
