"""The fusion of a group of members by a :class:`.options.Plan` (flip choice, left/right
alignment, weights, same-person alignment, mean-pose fallback) and its RMSE."""

from __future__ import annotations

from typing import Callable, Sequence, Tuple

import numpy as np

from ..evaluation import metrics
from ..io.predictions import RunPredictions
from ..meta import FLIP_INDEX
from .fuse import FusionResult, align_by_boxes, align_left_right, fuse_with_fallback
from .members import Loaded
from .options import FuseOptions, Plan


def fuse_group(group: Sequence[RunPredictions], plan: Plan, opts: FuseOptions,
               idx: Sequence[int] | None = None, fallback: Callable[[], np.ndarray] | None = None,
               mixed: bool = False) -> Tuple[FusionResult, np.ndarray]:
    """Fusion of ``group`` (members ``idx`` of the run list; default all, in order) by ``plan``:
    ``(result, left/right exchanges per member)``. ``fallback()`` gives the mean pose for images
    nobody predicted."""
    idx = list(range(len(group))) if idx is None else list(idx)
    c = np.stack([g.coords for g in group])
    swaps = np.zeros(len(group), dtype=int)
    s = None
    if plan.use_scores:
        s = np.stack([g.scores for g in group])
        if mixed:  # families score on other scales: a typical keypoint weighs 1 in each
            s = s / _score_scales(group)[:, None, None]
    if plan.lr and len(group) >= 2:
        anchor = None
        if len(group) == 2:
            anchor = idx.index(plan.anchor) if plan.anchor in idx else 0
        c, swapped = align_left_right(c, anchor=anchor)
        swaps = swapped.sum(axis=1)
        if s is not None:
            s = np.where(swapped[..., None], s[:, :, list(FLIP_INDEX)], s)
    w = None if plan.weights is None else np.asarray(plan.weights)[idx]
    same = None
    if opts.align and len(group) >= 3:
        same = align_by_boxes(np.stack([g.boxes for g in group]),
                              np.stack([np.asarray(g.detected, bool) for g in group]),
                              opts.min_iou, opts.align_reference)
    missing = ~np.isfinite(c).all(axis=-1).any(axis=0).all(axis=-1)
    fb = fallback() if missing.any() and fallback is not None else None
    res = fuse_with_fallback(c, plan.method if len(group) > 1 else "mean", weights=w, scores=s,
                             k=opts.k, fallback=fb, same_person=same)
    return res, swaps


def fused_rmse(loaded: Loaded, group, plan: Plan, opts: FuseOptions, idx=None) -> float:
    return metrics.rmse(fuse_group(group, plan, opts, idx, loaded.mean_pose, loaded.mixed)[0].coords,
                        loaded.truth)


def _score_scales(members: Sequence[RunPredictions]) -> np.ndarray:
    """Per member: the median of its positive keypoint scores on detected images (1 if none),
    so that families whose scores live on other scales (R-CNN heatmap logits, heatmap maxima)
    weigh a typical keypoint alike."""
    out = np.ones(len(members))
    for i, m in enumerate(members):
        s = m.scores[np.asarray(m.detected, bool)]
        s = s[np.isfinite(s) & (s > 0)]
        if s.size:
            out[i] = float(np.median(s))
    return out
