"""Calibration updated by the photos the user reviewed, for re-scoring and for the next sort.

A bundle's precision tables come from validation photos of its training source; the user's own
photos may come from elsewhere, where the same confidence is right less often. Every correction
and confirmation made since the model was made is honest evidence of that (the model was not
trained on it), so the thresholds for the user's "95 % sure" follow it (see
:func:`sorter.learn.calibration.updated`). The job that decides folders applies the result to its
policy (:meth:`sorter.jobs.policy.Policy.recalibrated`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sorter.files.corrections import Correction
from sorter.files.feature_cache import CLEAN_VIEW
from sorter.knobs import knobs
from sorter.learn.calibration import updated
from sorter.learn.memory import leave_one_out
from sorter.model.bundle import Bundle
from sorter.model.calibration import Calibration
from sorter.model.memory import ExemplarMemory
from sorter.model.pipeline import group_matrix


def since_made(bundle: Bundle, reviewed: Sequence[Correction]) -> list[Correction]:
    """The reviewed photos the bundle was not trained on: those reviewed after it was made."""
    made = str(bundle.config.training.get("date", ""))
    return [c for c in reviewed if c.created > made][-knobs().max_reviewed :]


def recalibrate(
    bundle: Bundle,
    reviewed: Sequence[Correction],
    features: dict[tuple[str, int], np.ndarray],
    memory: ExemplarMemory | None,
    *,
    user_rows_in_memory: bool = True,
) -> tuple[Calibration | None, int]:
    """The bundle's calibration updated by the user's reviewed photos (see
    :func:`~sorter.learn.calibration.updated`), and how many photos updated it (None and 0: the
    bundle has no calibration, or no photo counts): corrections make the user's "95 % sure" mean
    95 % on *their* photos, before any retrain.

    Only photos reviewed after the bundle was made count (a retrained bundle was trained on the
    earlier ones), each scored as a new photo would be: by the bundle and the *other* reviewed
    photos (leave one out), never by its own memory vote. ``memory`` is the bundle's memory
    followed, when ``user_rows_in_memory``, by the user's photos in ``reviewed`` order (as
    :func:`sorter.jobs.rescore.with_user_memory` builds it); sorting passes the bundle's own.
    """
    table = bundle.config.calibration_table()
    if table is None:
        return None, 0
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
        return None, 0
    group = group_matrix(bundle.config)
    probs = leave_one_out(
        np.stack(feats),
        bundle.head,
        memory,
        np.array(rows),
        group=None if group is None else group.numpy(),
        temperature=table.temperature,
    )
    return updated(table, probs, np.array(labels)), len(rows)
