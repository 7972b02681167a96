"""Instant head adaptation: the user's reviewed photos refit the head in the review, before any retrain.

The exemplar memory moves a correction's near-duplicates at once, but a photo that merely looks
like a corrected one keeps the head's answer until a retrain. With the bundle's feature replay
(:mod:`sorter.model.replay`) and the reviewed photos' cached features, the head can be refitted in
a fraction of a second, with no photo decoded and no fastai: the original training rows with the
user's rows weighted to a fixed share of the loss (as a retrain weighs them), starting from the
bundle's head and pulled back towards it. The re-score (review suggestions, *Re-sort the rest*)
scores with the adapted head; ``sorter retrain`` still makes it a bundle. An adaptation that costs
more than ``adapt_max_valid_drop`` of accuracy on the replay's validation rows, and is worse there
beyond chance (:func:`~sorter.learn.significance.wins`), is refused (its constants are in
:class:`sorter.knobs.Knobs`). The chance test matters: a model of photos refused 60 reviews of
sketches for three validation photos of 237 and sorted none, where 30 reviews had sorted 28 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sorter.knobs import knobs
from sorter.learn.significance import wins
from sorter.model.bundle import Head
from sorter.model.replay import Replay


@dataclass(frozen=True)
class AdaptedHead(Head):
    """A head refitted to the user's reviewed photos, with what it scored on the replay's
    validation rows before and after."""

    valid_before: float
    valid_after: float
    user_rows: int


def adapt_head(
    head: Head,
    replay: Replay,
    features: np.ndarray,
    labels: np.ndarray,
) -> AdaptedHead | None:
    """The head refitted to the user's photos (``features``, class indices ``labels``; -1 for a
    label the head does not have, left out) beside the replay's training rows; None when there is
    nothing to learn or the refit would cost validation accuracy beyond the knob and chance."""
    keep = labels >= 0
    features, labels = features[keep], labels[keep]
    train = ~replay.valid
    if len(labels) == 0 or not train.any() or not replay.valid.any():
        return None
    k = head.weight.shape[0]
    xt = torch.from_numpy(replay.features[train].astype(np.float32))
    yt = torch.from_numpy(replay.labels[train].astype(np.int64))
    xu = torch.from_numpy(np.asarray(features, dtype=np.float32))
    yu = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    counts = torch.bincount(yt, minlength=k).float().clamp(min=1)
    balance = counts.sum() / counts / k  # as training balances its classes
    w0 = torch.from_numpy(np.asarray(head.weight, dtype=np.float32))
    b0 = torch.from_numpy(np.asarray(head.bias, dtype=np.float32))
    w = w0.clone().requires_grad_(True)
    b = b0.clone().requires_grad_(True)
    tuned = knobs()
    opt = torch.optim.Adam([w, b], lr=tuned.adapt_rate)  # full-batch steps: nothing random
    ce = torch.nn.functional.cross_entropy
    share = tuned.user_share
    for _ in range(tuned.adapt_steps):
        opt.zero_grad()
        base = ce(xt @ w.T + b, yt, weight=balance)
        user = ce(xu @ w.T + b, yu)
        loss = (1 - share) * base + share * user + tuned.adapt_anchor * ((w - w0) ** 2).sum()
        torch.autograd.backward(loss)
        opt.step()
    new_w, new_b = w.detach(), b.detach()
    xv = torch.from_numpy(replay.features[replay.valid].astype(np.float32))
    yv = torch.from_numpy(replay.labels[replay.valid].astype(np.int64))
    right_before = (xv @ w0.T + b0).argmax(1) == yv
    right_after = (xv @ new_w.T + new_b).argmax(1) == yv
    before = float(right_before.float().mean())
    after = float(right_after.float().mean())
    if after < before - tuned.adapt_max_valid_drop and wins(right_after, right_before)[0]:
        return None
    return AdaptedHead(new_w.numpy(), new_b.numpy(), before, after, len(labels))
