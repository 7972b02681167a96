"""The one decision rule: which folder a scored photo goes to, for sorting, review and re-sorting.

A run is sorted with the user's choices (a precision to promise, or one fixed threshold, and
whether photos that fit none of the categories go to ``_other``). They are journaled with the
run (:class:`Choices`), so that the review's suggestions and re-sorting decide exactly as the sort
did, and only the user's reviews move the thresholds (:meth:`Policy.recalibrated`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import numpy as np

from sorter.knobs import knobs
from sorter.learn.estimate import PrecisionEstimate
from sorter.learn.shift import UNLIKE_REASON
from sorter.model.calibration import DEFAULT_PRECISION, Calibration
from sorter.model.config import BundleConfig
from sorter.names import OTHER_FOLDER, UNSURE_FOLDER


@dataclass(frozen=True)
class Choices:
    """What the user chose for a run (see :func:`policy_for`); the journal keeps them as JSON."""

    threshold: float | None = None
    precision: float | None = None
    other_folder: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Choices | None:
        """The stored choices, or None for a run journaled before they were kept (or unreadable)."""
        if not text:
            return None
        try:
            data = json.loads(text)
            threshold, precision = data.get("threshold"), data.get("precision")
            return cls(
                None if threshold is None else float(threshold),
                None if precision is None else float(precision),
                bool(data.get("other_folder", False)),
            )
        except (ValueError, TypeError, AttributeError):
            return None

    def overridden(
        self, *, threshold: float | None = None, precision: float | None = None, other_folder: bool | None = None
    ) -> Choices:
        """These choices with the ones the user gave again (None: keep); a new precision replaces
        a fixed threshold, which would otherwise win over it."""
        return Choices(
            threshold if threshold is not None else (None if precision is not None else self.threshold),
            precision if precision is not None else self.precision,
            self.other_folder if other_folder is None else other_folder,
        )

    def policy(self, config: BundleConfig) -> Policy:
        return policy_for(config, threshold=self.threshold, precision=self.precision, other_folder=self.other_folder)


NONE_OF_THESE = "looks like none of the categories"


@dataclass(frozen=True)
class Policy:
    """When a photo is sorted, from the bundle's statistics and the user's choices.

    Args:
        thresholds: confidence each class needs (per class: calibrated for a precision).
        fit_threshold: the fit below which a photo is none of the categories; None when the
            bundle has no such statistics.
        other_folder: where those photos go (``_unsure`` or ``_other``).
        target: the precision the thresholds were calibrated for; None when they are fixed.
        typical_threshold: in a folder unlike the training photos, the typicality below which a
            photo is held back in ``_unsure`` (see :mod:`sorter.learn.shift`); None elsewhere.
        estimate: after enough reviews of the folder, the precision estimated from them and the
            confidence cut that keeps to ``target`` (see :mod:`sorter.learn.estimate`): it replaces
            the validation thresholds and the hold-back of atypical photos, which were guesses made
            before the user's own photos could say.
        doubted: classes whose confident photos the user's first reviews found wrong again and
            again (see :func:`~sorter.learn.estimate.doubted_classes`): until there is an
            estimate, their photos are held back, in a folder treated as shifted.
    """

    classes: tuple[str, ...]
    thresholds: np.ndarray
    multi_label: bool
    fit_threshold: float | None = None
    other_folder: str = UNSURE_FOLDER
    target: float | None = None
    typical_threshold: float | None = None
    estimate: PrecisionEstimate | None = None
    doubted: frozenset[str] = frozenset()

    def under_shift(self, shifted: bool) -> Policy:
        """The policy for a folder unlike the training photos (``shifted``, see
        :mod:`sorter.learn.shift`): there a calibrated precision cannot be promised for atypical
        photos, so they are held back, and no class sorts a photo the model is less sure of than
        the precision asked. The validation photos' thresholds are often far lower (0.2 for most
        classes of a model of photos that was 99 % right on them), and on paintings a default
        model sorted photos under 95 % sure that were 47 % right. A fixed threshold is the user's
        own call and stays."""
        if not shifted or self.target is None or self.multi_label:
            return self
        return replace(
            self,
            typical_threshold=knobs().shift_typical,
            thresholds=np.maximum(self.thresholds, np.float32(self.target)),
        )

    def doubting(self, classes: frozenset[str]) -> Policy:
        """The policy for a folder whose first reviews found ``classes`` wrong when sure: the
        folder's confidence is not the validation confidence, so it is treated as shifted and
        those classes' photos wait for enough reviews to estimate it. A fixed threshold stays."""
        if not classes or self.target is None or self.multi_label:
            return self
        return replace(self.under_shift(True), doubted=classes)

    def kept_to(self, estimate: PrecisionEstimate | None) -> Policy:
        """The policy that sorts by the precision estimated from the user's reviews (None: as before)."""
        if estimate is None or self.target is None or self.multi_label:
            return self
        return replace(self, estimate=estimate)

    def recalibrated(self, calibration: Calibration) -> Policy:
        """The same choices with thresholds from ``calibration`` (updated by the user's reviews);
        a fixed threshold stays fixed."""
        if self.target is None:
            return self
        return replace(self, thresholds=calibration.thresholds(self.target))

    def decide(self, probs: np.ndarray, fit: float = 1.0, typical: float = 1.0) -> tuple[tuple[str, ...], str | None]:
        """The folder(s) for one photo and, when it is not sorted, why."""
        if self.fit_threshold is not None and fit < self.fit_threshold:
            return (self.other_folder,), NONE_OF_THESE
        if self.estimate is not None:
            return self._by_estimate(probs, self.estimate)
        if self.classes[int(np.argmax(probs))] in self.doubted:
            return (UNSURE_FOLDER,), (
                f"your reviews found several photos sorted as {self.classes[int(np.argmax(probs))]} "
                "that were not; it waits for more reviews"
            )
        if (
            self.typical_threshold is not None
            and typical < self.typical_threshold
            and float(probs.max()) < knobs().atypical_floor
        ):
            return (UNSURE_FOLDER,), UNLIKE_REASON
        if self.multi_label:
            chosen = tuple(self.classes[i] for i in np.flatnonzero(probs >= self.thresholds))
            return (chosen, None) if chosen else ((UNSURE_FOLDER,), "no category is likely enough")
        order = np.argsort(-probs)
        best = int(order[0])
        if probs[best] >= self.thresholds[best]:
            return (self.classes[best],), None
        # what it got and what it needs, so a photo held back at 98 % says that 99 % was asked
        reason = f"{self.classes[best]} {_percent(probs[best])}, needs {_percent(self.thresholds[best])}"
        if len(order) > 1:
            second = int(order[1])
            reason += f"; next {self.classes[second]} {_percent(probs[second])}"
        return (UNSURE_FOLDER,), reason

    def _by_estimate(self, probs: np.ndarray, estimate: PrecisionEstimate) -> tuple[tuple[str, ...], str | None]:
        best = int(np.argmax(probs))
        if estimate.sorts(probs[None, :])[0]:
            return (self.classes[best],), None
        if estimate.cut > 1.0:
            return (UNSURE_FOLDER,), f"your reviews do not yet allow {_percent(estimate.target)} here"
        sure = float(estimate.confidence(probs[None, :])[0])
        return (UNSURE_FOLDER,), (
            f"{self.classes[best]} {_percent(sure)} on your photos, needs {_percent(estimate.cut)}"
        )


def _percent(value: float) -> str:
    """A percentage that never rounds a shortfall away (98.6 % that needs 99 % reads 98%, not 99%),
    nor reads a threshold kept as a 32-bit float (0.95 is 0.94999999) a point low."""
    return f"{int(float(value) * 100 + 1e-4)}%" if value < 1 else "100%"


def policy_for(
    config: BundleConfig,
    *,
    threshold: float | None = None,
    precision: float | None = None,
    other_folder: bool = False,
) -> Policy:
    """A fixed ``threshold`` applies to every class; otherwise a calibrated bundle gives each class
    the threshold that reached ``precision`` on its validation photos, and an older bundle uses its
    single default threshold."""
    k = len(config.classes)
    table = config.calibration_table()
    target = None
    if threshold is not None:
        thresholds = np.full(k, threshold, dtype=np.float32)
    elif table is not None and not config.multi_label:
        target = DEFAULT_PRECISION if precision is None else precision
        thresholds = table.thresholds(target)
    else:
        thresholds = np.full(k, config.threshold, dtype=np.float32)
    fit = config.ood.threshold if config.ood is not None else None
    folder = OTHER_FOLDER if other_folder else UNSURE_FOLDER
    return Policy(config.classes, thresholds, config.multi_label, fit, folder, target)
