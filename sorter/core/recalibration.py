"""Calibration updated by the photos the user reviewed, for re-scoring and for the next sort.

A bundle's precision tables come from validation photos of its training source; the user's own
photos may come from elsewhere, where the same confidence is right less often. Every correction
and confirmation made since the model was made is honest evidence of that (the model was not
trained on it), so the thresholds for the user's "95 % sure" follow it (see
:meth:`sorter.learn.calibration.Calibration.updated`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from sorter.core.corrections import Correction
from sorter.learn.feature_cache import CLEAN_VIEW
from sorter.learn.memory import ExemplarMemory, leave_one_out
from sorter.model.bundle import Bundle
from sorter.model.pipeline import group_matrix

if TYPE_CHECKING:
    from sorter.core.sorting import Policy

MAX_REVIEWED = 1000
"""The most recent reviewed photos that calibrate (a sort decodes them)."""


def since_made(bundle: Bundle, reviewed: Sequence[Correction]) -> list[Correction]:
    """The reviewed photos the bundle was not trained on: those reviewed after it was made."""
    made = str(bundle.config.training.get("date", ""))
    return [c for c in reviewed if c.created > made][-MAX_REVIEWED:]


def recalibrate(
    bundle: Bundle,
    policy: Policy,
    reviewed: Sequence[Correction],
    features: dict[tuple[str, int], np.ndarray],
    memory: ExemplarMemory | None,
    *,
    user_rows_in_memory: bool = True,
) -> tuple[Policy, int]:
    """The policy with thresholds from the bundle's calibration updated by the user's reviewed
    photos (see :meth:`~sorter.learn.calibration.Calibration.updated`): corrections make the
    user's "95 % sure" mean 95 % on *their* photos, before any retrain.

    Only photos reviewed after the bundle was made count (a retrained bundle was trained on the
    earlier ones), each scored as a new photo would be: by the bundle and the *other* reviewed
    photos (leave one out), never by its own memory vote. ``memory`` is the bundle's memory
    followed, when ``user_rows_in_memory``, by the user's photos in ``reviewed`` order (as
    :func:`sorter.core.rescore.with_user_memory` builds it); sorting passes the bundle's own.
    """
    table = bundle.config.calibration_table()
    if table is None or policy.target is None:
        return policy, 0
    recent = {c.id for c in since_made(bundle, reviewed)}
    index = {c: i for i, c in enumerate(bundle.config.classes)}
    base = len(bundle.memory) if bundle.memory is not None else 0
    rows, feats, labels = [], [], []
    row = base
    for c in reviewed:
        key = (c.sha256, CLEAN_VIEW)
        if key not in features:
            continue
        stored = row if c.label in index and user_rows_in_memory else -1
        row += c.label in index
        if c.id not in recent:
            continue
        rows.append(stored)
        feats.append(features[key])
        labels.append(index.get(c.label, -1))
    if not rows:
        return policy, 0
    group = group_matrix(bundle.config)
    probs = leave_one_out(
        np.stack(feats),
        bundle.state["head.weight"].float().numpy(),
        bundle.state["head.bias"].float().numpy(),
        memory,
        np.array(rows),
        group=None if group is None else group.numpy(),
        temperature=table.temperature,
    )
    updated = table.updated(probs, np.array(labels))
    return policy.recalibrated(updated), len(rows)
