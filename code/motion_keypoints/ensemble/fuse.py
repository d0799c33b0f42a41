"""Fusion of the members' predictions: pure functions on arrays, no files, no detectron2.

Fusion is a pure function over arrays ``(M, N, K, 2)`` (members, images, keypoints, xy) with NaN
where a member has no prediction:

- ``mean`` / ``median``: coordinate-wise over the members present;
- ``weighted``: weighted mean, weights per member (:func:`rmse_weights`: ∝ 1/val_rmse²) and/or
  per-keypoint scores ``(M, N, K)``;
- ``robust``: for each keypoint, members farther than ``k·σ`` from the members' median are
  dropped, then the rest are averaged (the 3rd-place trick). σ estimates the root-mean-square
  distance of members from the median for that keypoint over all images, robustly:
  median distance / √ln 2 (exact for isotropic Gaussian scatter). Positions with fewer than three
  members are not screened; a position never loses all its members. With purely Gaussian scatter
  ``k=2`` drops about 11% / 7% / 4% of the predictions of 3 / 4 / 8 members, ``k=3`` about 1%.

A member that detected nobody on an image is left out there and filled from the others (counted
per member). When no member has a prediction (:func:`fuse_with_fallback`), the **fallback** is the
mean training pose: the mean of the training keypoints in image-relative units (x/width,
y/height), scaled into the image (:func:`metrics.mean_pose_baseline`); such images are counted and
named. Missing values are never written as zeros.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from ..errors import UserError

METHODS: Tuple[str, ...] = ("mean", "median", "weighted", "robust")

_SQRT_LN2 = math.sqrt(math.log(2.0))


class EnsembleError(UserError, ValueError):
    """Runs that cannot be ensembled, or a bad option; the message says what differs."""

# ---------------------------------------------------------------------------------------------
# Fusion: pure functions on arrays


@dataclass
class FusionResult:
    """Fused ``coords`` (N, K, 2) and how they were obtained."""

    coords: np.ndarray
    #: Per member: images where it detected nobody and the others filled in.
    fills_per_model: np.ndarray
    #: Images where no member predicted a keypoint and the fallback was used.
    fallback_count: int
    fallback_images: List[int] = field(default_factory=list)
    #: Per member: keypoint predictions dropped as outliers (``robust`` only).
    dropped_per_model: np.ndarray | None = None


def _check_coords(coords) -> np.ndarray:
    c = np.asarray(coords, dtype=float)
    if c.ndim != 4 or c.shape[-1] != 2 or c.shape[0] < 1:
        raise ValueError(f"coords must have shape (members, images, keypoints, 2); got {c.shape}")
    return c


def rmse_weights(rmses: Sequence[float]) -> np.ndarray:
    """Member weights ∝ 1/rmse², normalised to sum to 1."""
    r = np.asarray(rmses, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"validation RMSEs must be positive finite numbers; got {list(r)}")
    w = 1.0 / r**2
    return w / w.sum()


def _robust_keep(c: np.ndarray, present: np.ndarray, k: float) -> np.ndarray:
    """Mask (M, N, K) of the member predictions that ``robust`` keeps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(c, axis=0)
    dist = np.linalg.norm(c - center[None], axis=-1)
    screened = present & (present.sum(axis=0) >= 3)[None]
    sigma = np.full(c.shape[2], np.nan)
    for j in range(c.shape[2]):
        d = dist[..., j][screened[..., j]]
        if d.size:
            sigma[j] = np.median(d) / _SQRT_LN2
    with np.errstate(invalid="ignore"):
        outlier = screened & (dist > k * sigma[None, None, :])
    keep = present & ~outlier
    emptied = present.any(axis=0) & ~keep.any(axis=0)
    return np.where(emptied[None], present, keep)


def _weighted_mean(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over axis 0 with weights ``w`` (M, N, K), zero for absent members; NaN where
    no weight at all."""
    total = w.sum(axis=0)
    s = (np.where(w[..., None] > 0, c, 0.0) * w[..., None]).sum(axis=0)
    out = np.full(s.shape, np.nan)
    np.divide(s, total[..., None], out=out, where=total[..., None] > 0)
    return out


def _fuse(c, method, weights, scores, k) -> Tuple[np.ndarray, np.ndarray]:
    """Fused coords and the mask of member predictions used."""
    if method not in METHODS:
        raise EnsembleError(f"unknown fusion method {method!r}; valid: {', '.join(METHODS)}")
    m, n, kk, _ = c.shape
    present = np.isfinite(c).all(axis=-1)
    c = np.where(present[..., None], c, np.nan)
    if method == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(c, axis=0), present
    if method == "robust":
        if not k > 0:
            raise ValueError(f"robust fusion needs k > 0; got {k}")
        keep = _robust_keep(c, present, k)
        return _weighted_mean(c, keep.astype(float)), keep
    w = present.astype(float)
    if method == "weighted":
        if weights is None and scores is None:
            raise ValueError("weighted fusion needs member weights (e.g. rmse_weights) or scores")
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if weights.shape != (m,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(f"weights must be {m} non-negative numbers; got {weights}")
            w = w * weights[:, None, None]
        if scores is not None:
            scores = np.asarray(scores, dtype=float)
            if scores.shape != (m, n, kk):
                raise ValueError(f"scores must have shape {(m, n, kk)}; got {scores.shape}")
            if np.any(present & ~np.isfinite(scores)):
                raise ValueError("scores must be finite wherever a coordinate is present")
            # Negative scores (raw heatmap logits) count as zero weight.
            w = w * np.clip(np.where(present, scores, 0.0), 0.0, None)
        # Where every present member has zero weight, fall back to the plain mean.
        zero = present.any(axis=0) & (w.sum(axis=0) <= 0)
        w = np.where(zero[None], present.astype(float), w)
    return _weighted_mean(c, w), present


def fuse(coords, method: str = "mean", weights=None, scores=None, k: float = 2.0) -> np.ndarray:
    """Fuse member predictions ``(M, N, K, 2)`` (NaN: missing) into ``(N, K, 2)``.

    Missing members are left out per keypoint; a keypoint no member predicted stays NaN (see
    :func:`fuse_with_fallback`). ``weights`` (M,) and ``scores`` (M, N, K) are used by
    ``weighted`` only (both multiply when given); ``k`` by ``robust`` only.
    """
    return _fuse(_check_coords(coords), method, weights, scores, k)[0]


def fuse_with_fallback(
    coords,
    method: str = "mean",
    weights=None,
    scores=None,
    k: float = 2.0,
    fallback=None,
) -> FusionResult:
    """:func:`fuse`, then fill every keypoint no member predicted from ``fallback`` (N, K, 2).

    Counts, per member, the images it missed that the others filled, and the images that needed
    the fallback. Raises ValueError when the fallback is needed but not given.
    """
    c = _check_coords(coords)
    out, used = _fuse(c, method, weights, scores, k)
    present = np.isfinite(c).all(axis=-1)
    image_missed = ~present.any(axis=2)  # (M, N): member predicted nothing on the image
    others = (~image_missed).sum(axis=0)[None] - (~image_missed)
    fills = (image_missed & (others > 0)).sum(axis=1)
    hole = ~np.isfinite(out).all(axis=-1)
    fallback_images = [int(i) for i in np.nonzero(hole.any(axis=1))[0]]
    if fallback_images:
        if fallback is None:
            raise ValueError(
                f"{len(fallback_images)} images have no prediction from any member and no "
                "fallback was given"
            )
        fb = np.asarray(fallback, dtype=float)
        if fb.shape != out.shape or not np.all(np.isfinite(fb[hole])):
            raise ValueError(f"fallback must be finite with shape {out.shape}; got {fb.shape}")
        out = np.where(hole[..., None], fb, out)
    dropped = (present & ~used).sum(axis=(1, 2)) if method == "robust" else None
    return FusionResult(out, fills, len(fallback_images), fallback_images, dropped)
