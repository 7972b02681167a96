"""Body features of the training photos: computed once per augmented view, cached by content.

Phase 1 of training (:mod:`sorter.train.engine`) runs the frozen body over ``views`` augmented
views of each training photo and a clean view of each validation photo, through fastai's
DataLoaders with our own decoder (training sees the pixels sorting will see); whatever the
feature cache already holds is not computed again.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from fastai.data.block import CategoryBlock, DataBlock, MultiCategoryBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import IndexSplitter, IntToFloatTensor, Normalize
from fastai.torch_core import TensorImage
from fastai.vision.augment import RandomResizedCropGPU, aug_transforms
from fasttransform import Transform
from torch import nn

from sorter.files.feature_cache import CLEAN_VIEW, FeatureCache, recipe_key
from sorter.files.fileops import sha256_of
from sorter.learn.datasets import Sample
from sorter.model.architecture import SorterNet
from sorter.model.bundle import feature_recipe
from sorter.model.config import BundleConfig
from sorter.model.preprocess import Preprocessor
from sorter.train.recipe import ProgressFn, TrainProgress, TrainSettings

FEATURE_EVENT = "features"
AUGMENT_RECIPE = "rrc0.35;rot10;light0.4;warp0.1;plight0.9;v1"
"""Names the training augmentation in feature-cache keys: change it when the transforms change."""


class _Decode(Transform):
    """fastai item transform: our own decoder, so training sees the pixels sorting will see."""

    def __init__(self, preprocess: Preprocessor) -> None:
        super().__init__()
        self.preprocess = preprocess

    def encodes(self, path: Path) -> TensorImage:
        arr = self.preprocess(Path(path))
        return TensorImage(torch.from_numpy(arr).permute(2, 0, 1))


def _num_workers() -> int:
    if sys.platform == "win32":
        return 0  # WORKAROUND: fastai DataLoader workers cannot pickle our transforms on spawn
    if threading.current_thread() is not threading.main_thread():
        # Training from the app runs on a worker thread of a multithreaded Qt process: forked
        # DataLoader workers die there, and torch's SIGCHLD handler then fires in the GUI thread.
        return 0
    return min(2, os.cpu_count() or 1)


def build_dataloaders(
    samples: Sequence[Sample],
    train_idx: list[int],
    valid_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
) -> DataLoaders:
    """fastai DataLoaders: our decoder per item, then aug_transforms and a random resized crop
    (training only) and normalisation per batch, from the bundle's own mean and std."""
    size = config.input_size[0]
    y_block = (
        MultiCategoryBlock(vocab=list(config.classes))
        if config.multi_label
        else CategoryBlock(vocab=list(config.classes))
    )
    block = DataBlock(
        blocks=(TransformBlock(type_tfms=_Decode(Preprocessor(config)), batch_tfms=IntToFloatTensor), y_block),
        get_x=lambda s: s.path,
        get_y=(lambda s: list(s.labels)) if config.multi_label else (lambda s: s.labels[0]),
        batch_tfms=[
            RandomResizedCropGPU(size, min_scale=0.35),
            *aug_transforms(max_rotate=10.0, max_lighting=0.4, max_warp=0.1, p_lighting=0.9),
            Normalize.from_stats(list(config.mean), list(config.std)),
        ],
    )
    chosen = [samples[i] for i in (*train_idx, *valid_idx)]
    block.splitter = IndexSplitter(list(range(len(train_idx), len(chosen))))
    return block.dataloaders(
        chosen, bs=settings.batch_size, num_workers=_num_workers(), device=device, seed=settings.seed
    )


def _features(
    body: nn.Module, dl: Any, progress: ProgressFn | None, step0: int, total: int, *, half: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``body`` over every batch of ``dl``, on the CPU: float32, or float16 for the tail's kept
    input (no inference mode: the tail trains on these under autograd)."""
    feats, ys = [], []
    step = step0
    body.eval()
    with torch.no_grad():
        for xb, yb in dl:
            out = body(xb.as_subclass(torch.Tensor).contiguous(memory_format=torch.channels_last))
            feats.append(out.half().cpu().contiguous() if half else out.float().cpu())
            ys.append(yb.as_subclass(torch.Tensor).cpu())
            step += 1
            if progress is not None:
                progress(TrainProgress(FEATURE_EVENT, step, total))
    return torch.cat(feats), torch.cat(ys)


@dataclass
class FeatureSet:
    """Body features of the training data: ``views`` augmented rows per training photo and one
    clean row per validation (and memory) photo."""

    train: torch.Tensor
    """(views * len(train_idx), D): view 0 of every training photo, then view 1, ..."""
    clean: dict[int, torch.Tensor]
    """Clean (unaugmented) features by sample index, for validation and memory photos."""
    computed: int
    """Feature rows that had to be computed (the rest came from the cache)."""
    shas: dict[int, str] = field(default_factory=dict)
    """Content hashes by sample index, where the cache needed them."""


def body_recipe(model: SorterNet, config: BundleConfig, settings: TrainSettings) -> dict[str, str]:
    """Cache keys: the body's own (weights and preprocessing, as sorting keys it) for clean
    features, plus the augmentation recipe and seed for augmented ones."""
    return recipes_for(feature_recipe(config, model.body.state_dict()), settings.seed)


def recipes_for(clean: str, seed: int) -> dict[str, str]:
    """:func:`body_recipe` from a body's clean feature recipe (``Bundle.feature_recipe``)."""
    return {"clean": clean, "augmented": recipe_key({"body": clean, "augment": AUGMENT_RECIPE, "seed": seed})}


def sample_sha(sample: Sample) -> str:
    return sample.sha256 or sha256_of(sample.path)


def extract_features(
    model: SorterNet,
    samples: Sequence[Sample],
    train_idx: list[int],
    clean_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
    cache: FeatureCache | None,
    progress: ProgressFn | None,
) -> FeatureSet:
    """Features of ``views`` augmented views of each training photo and a clean view of each
    photo in ``clean_idx``, taking what the cache has and computing only the rest."""
    if settings.views == 0:  # the clean view of every photo, training photos included
        both = list(dict.fromkeys([*train_idx, *clean_idx]))
        clean_set = extract_features(
            model, samples, [], both, config, replace(settings, views=1), device, cache, progress
        )
        train_rows = [clean_set.clean[i] for i in train_idx]
        return FeatureSet(
            train=torch.stack(train_rows).float() if train_rows else torch.zeros(0, model.num_features),
            clean={i: clean_set.clean[i] for i in clean_idx},
            computed=clean_set.computed,
            shas=clean_set.shas,
        )
    recipes = body_recipe(model, config, settings)
    shas = {i: sample_sha(samples[i]) for i in {*train_idx, *clean_idx}} if cache is not None else {}
    aug_keys = [(shas.get(i, ""), v) for v in range(settings.views) for i in train_idx]
    clean_keys = [(shas.get(i, ""), CLEAN_VIEW) for i in clean_idx]
    have_aug = cache.get_many(recipes["augmented"], aug_keys) if cache is not None else {}
    have_clean = cache.get_many(recipes["clean"], clean_keys) if cache is not None else {}
    missing_aug = [(i, v) for v in range(settings.views) for i in train_idx if (shas.get(i, ""), v) not in have_aug]
    missing_train = sorted({i for i, _ in missing_aug})
    missing_clean = [i for i in clean_idx if (shas.get(i, ""), CLEAN_VIEW) not in have_clean]
    computed_aug: dict[tuple[int, int], torch.Tensor] = {}
    computed_clean: dict[int, torch.Tensor] = {}
    if missing_train or missing_clean:
        per_view, clean_rows = _views_and_clean(
            model.body, samples, missing_train, missing_clean, config, settings, device, progress
        )
        for v, feats in enumerate(per_view):
            for i, row in zip(missing_train, feats, strict=True):
                computed_aug[(i, v)] = row
        for i, row in zip(missing_clean, clean_rows, strict=True):
            computed_clean[i] = row
        if cache is not None:
            # views of a partly cached photo were all computed again; store only the missing ones
            missing = set(missing_aug)
            cache.put_many(
                recipes["augmented"],
                {(shas[i], v): row.numpy() for (i, v), row in computed_aug.items() if (i, v) in missing},
            )
            cache.put_many(recipes["clean"], {(shas[i], CLEAN_VIEW): row.numpy() for i, row in computed_clean.items()})

    def aug_row(i: int, v: int) -> torch.Tensor:
        if (i, v) in computed_aug:
            return computed_aug[(i, v)]
        return torch.from_numpy(have_aug[(shas[i], v)])

    def clean_row(i: int) -> torch.Tensor:
        if i in computed_clean:
            return computed_clean[i]
        return torch.from_numpy(have_clean[(shas[i], CLEAN_VIEW)])

    train_rows = [aug_row(i, v) for v in range(settings.views) for i in train_idx]
    clean = {i: clean_row(i) for i in clean_idx}
    return FeatureSet(
        train=torch.stack(train_rows).float() if train_rows else torch.zeros(0, model.num_features),
        clean=clean,
        computed=len(computed_aug) + len(computed_clean),
        shas=shas,
    )


def extract_activations(
    stem: nn.Module,
    samples: Sequence[Sample],
    train_idx: list[int],
    clean_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
    progress: ProgressFn | None,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The stem's output (float16, on the CPU) for ``views`` augmented views of each training
    photo and the clean view of each photo in ``clean_idx``: what the tail step trains on
    (:mod:`sorter.train.tail`). Computed every time; the feature cache keeps pooled features only."""
    per_view, clean_rows = _views_and_clean(
        stem, samples, train_idx, clean_idx, config, settings, device, progress, half=True
    )
    clean = dict(zip(clean_idx, clean_rows, strict=True))
    return (torch.cat(per_view) if per_view else torch.zeros(0)), clean


def _views_and_clean(
    net: nn.Module,
    samples: Sequence[Sample],
    train_idx: list[int],
    clean_idx: list[int],
    config: BundleConfig,
    settings: TrainSettings,
    device: torch.device,
    progress: ProgressFn | None,
    *,
    half: bool = False,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``net`` over ``views`` augmented views of each photo in ``train_idx`` (one tensor a view,
    rows in ``train_idx`` order) and over the clean view of each photo in ``clean_idx``."""
    if not train_idx and not clean_idx:
        return [], []
    # A DataBlock needs both sides; a lone photo stands in for an empty one and is ignored.
    train_side = train_idx or clean_idx[:1]
    valid_side = clean_idx or train_idx[:1]
    dls = build_dataloaders(samples, train_side, valid_side, config, settings, device)
    train_dl = dls.train.new(shuffle=False, drop_last=False)
    views = max(1, settings.views)
    n_train_batches = len(train_dl) if train_idx else 0
    total = n_train_batches * views + (len(dls.valid) if clean_idx else 0)
    per_view = [
        _features(net, train_dl, progress, v * n_train_batches, total, half=half)[0]
        for v in (range(views) if train_idx else ())
    ]
    clean = _features(net, dls.valid, progress, views * n_train_batches, total, half=half)[0] if clean_idx else None
    return per_view, list(clean) if clean is not None else []
