"""Everything between a decoded photo and its folder probabilities, as one ``nn.Module``.

The torch path and the ONNX Runtime export run this same module, so normalisation, the
sigmoid/softmax choice and the grouping of outputs into folders are written once and cannot drift
apart between backends.
"""

from __future__ import annotations

import torch
from torch import nn

from sorter.model.bundle import BundleConfig


class InferencePipeline(nn.Module):
    """``uint8`` photos (N, H, W, 3), as the decoder makes them, → probabilities (N, classes).

    Args:
        net: the bundle's network (:class:`~sorter.model.architecture.SorterNet`).
        config: the bundle's config, for mean, std, multi-label and grouping.
    """

    mean: torch.Tensor
    std: torch.Tensor
    group: torch.Tensor | None

    def __init__(self, net: nn.Module, config: BundleConfig) -> None:
        super().__init__()
        self.net = net
        self.multi_label = config.multi_label
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1) * 255)
        if config.grouping is not None:
            group = torch.zeros(config.num_outputs, len(config.classes))
            group[torch.arange(config.num_outputs), torch.tensor(config.grouping.group_of)] = 1
            self.register_buffer("group", group)
        else:
            self.group = None

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``uint8`` NCHW → the network's input, in the network's dtype (half on a GPU)."""
        dtype = next(self.net.parameters()).dtype
        return ((x.float() - self.mean) / self.std).to(dtype)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Sigmoid (multi-label) or softmax, summed into folders when the bundle groups outputs."""
        logits = logits.float()
        if self.multi_label:
            return torch.sigmoid(logits)
        probs = torch.softmax(logits, dim=1)
        return probs @ self.group if self.group is not None else probs

    def forward(self, photos: torch.Tensor) -> torch.Tensor:
        # NHWC → NCHW is a view; the decoder's layout is already channels_last in memory.
        out: torch.Tensor = self.probabilities(self.net(self.normalise(photos.permute(0, 3, 1, 2))))
        return out
