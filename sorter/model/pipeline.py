"""Everything between a decoded photo and its folder probabilities, as one ``nn.Module``.

The torch path and the ONNX Runtime export run this same module, so normalisation, the
sigmoid/softmax choice, the grouping of outputs into folders and the exemplar memory's votes are
written once and cannot drift apart between backends. It also returns the pooled body features,
which sorting keeps so that a correction can re-score a run without decoding a photo again.
"""

from __future__ import annotations

import torch
from torch import nn

from sorter.model.config import BundleConfig
from sorter.model.memory import ExemplarMemory, Scorer


def group_matrix(config: BundleConfig) -> torch.Tensor | None:
    """(outputs, folders) 0/1 matrix that sums grouped outputs into folders, or None."""
    if config.grouping is None:
        return None
    group = torch.zeros(config.num_outputs, len(config.classes))
    group[torch.arange(config.num_outputs), torch.tensor(config.grouping.group_of)] = 1
    return group


class InferencePipeline(nn.Module):
    """``uint8`` photos (N, H, W, 3), as the decoder makes them, → (probabilities (N, classes),
    features (N, D), fit (N,): how well each photo fits any category).

    Args:
        net: the bundle's network (:class:`~sorter.model.architecture.SorterNet`).
        config: the bundle's config, for mean, std, multi-label and grouping.
        memory: the bundle's exemplar memory, if any.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        net: nn.Module,
        config: BundleConfig,
        memory: ExemplarMemory | None = None,
        anchors: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.multi_label = config.multi_label
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1) * 255)
        self.scorer = Scorer(
            len(config.classes), group_matrix(config), config.multi_label, memory, config.temperature, anchors
        )

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``uint8`` NCHW → the network's input, in the network's dtype (half on a GPU)."""
        dtype = next(self.net.parameters()).dtype
        return ((x.float() - self.mean) / self.std).to(dtype)

    def probabilities(self, logits: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Sigmoid (multi-label) or softmax, summed into folders when the bundle groups outputs;
        with ``features``, the exemplar memory votes too."""
        out: torch.Tensor = self.scorer(logits, features)
        return out

    def forward(self, photos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # NHWC → NCHW is a view; the decoder's layout is already channels_last in memory.
        x = self.normalise(photos.permute(0, 3, 1, 2))
        features = self.net.features(x)  # type: ignore[operator]
        logits = self.net.head(features)  # type: ignore[operator]
        return self.scorer(logits, features), features.float(), self.scorer.fit(features)
