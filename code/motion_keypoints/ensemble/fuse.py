"""Fusion of the members' predictions: pure functions on arrays, no files, no detectron2.

Fusion is a pure function over arrays ``(M, N, K, 2)`` (members, images, keypoints, xy) with NaN
where a member has no prediction:

- ``mean`` / ``median``: coordinate-wise over the members present;
- ``weighted``: weighted mean, weights per member ``(M,)`` (:func:`rmse_weights`: ∝ 1/val_rmse²)
  or per member and keypoint ``(M, K)`` (:func:`keypoint_rmse_weights`: ∝ 1/rmse_k² of the
  member's validation predictions), and/or per-keypoint scores ``(M, N, K)``;
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

**Same person** (:func:`align_by_boxes`): before fusing, a member whose person box does not
overlap the consensus box of the image (IoU < ``min_iou``) is on another person (a bystander); it
is left out on that image like a missing detection, filled from the others and counted.

**Left/right consistency** (:func:`align_left_right`): before fusing, each member's pose is
compared with the consensus pose with and without exchanging its left and right keypoints (the
flip map of :mod:`motion_keypoints.meta`); where the exchanged pose is closer by a clear margin it
is put on the consensus side. Averaging a mirrored member with a correct one pulls both wrists
into the body; this undoes it. The exchanges are counted per member.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..geometry import pairwise_box_iou
from ..meta import FLIP_INDEX

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
    #: Per member: images where its box was on another person (:func:`align_by_boxes`) and it
    #: was left out (None: no alignment).
    other_person_per_model: np.ndarray | None = None


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


def keypoint_rmse_weights(per_member_per_keypoint_rmse) -> np.ndarray:
    """Weights ``(M, K)``: member ``m``'s weight for keypoint ``k`` ∝ 1/rmse[m, k]², normalised
    so that each keypoint's weights sum to 1 over the members.

    ``per_member_per_keypoint_rmse`` is ``(M, K)``: each member's RMSE of each keypoint on its
    validation predictions (:func:`motion_keypoints.evaluation.metrics.per_keypoint_rmse`).
    Every entry must be a positive finite number (ValueError otherwise).
    """
    r = np.asarray(per_member_per_keypoint_rmse, dtype=float)
    if r.ndim != 2 or r.shape[0] < 1:
        raise ValueError(f"per-keypoint RMSEs must have shape (members, keypoints); got {r.shape}")
    bad = ~np.isfinite(r) | (r <= 0)
    if bad.any():
        m, k = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(f"per-keypoint RMSEs must be positive finite numbers; member {m}, "
                         f"keypoint {k} has {r[m, k]}")
    w = 1.0 / r**2
    return w / w.sum(axis=0, keepdims=True)


ALIGN_REFERENCES: Tuple[str, ...] = ("median", "medoid")


def align_by_boxes(boxes, present, min_iou: float = 0.3, reference: str = "median") -> np.ndarray:
    """Which members are on the same person, per image: the ``present`` mask ``(M, N)`` with the
    members whose box ``(M, N, 4)`` (x1, y1, x2, y2) overlaps the image's consensus person box
    by less than ``min_iou`` (IoU) set to False.

    The consensus box (``reference``) is ``median``: the coordinate-wise median of the present
    members' boxes, or ``medoid``: the present member box with the largest summed IoU with the
    others. An image is screened only when at least three members are present (with two there is
    no majority to say which one is on the bystander) and all their boxes are finite; an image
    never loses all its members (if none reaches ``min_iou`` nobody is dropped).
    """
    b = np.asarray(boxes, dtype=float)
    p = np.asarray(present, dtype=bool)
    if b.ndim != 3 or b.shape[-1] != 4 or p.shape != b.shape[:2]:
        raise ValueError(f"boxes must be (members, images, 4) and present (members, images); got "
                         f"{b.shape} and {p.shape}")
    if reference not in ALIGN_REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(ALIGN_REFERENCES)}")
    if not 0 < min_iou <= 1:
        raise ValueError(f"min_iou must be in (0, 1]; got {min_iou}")
    out = p.copy()
    for i in range(b.shape[1]):
        idx = np.nonzero(p[:, i])[0]
        if len(idx) < 3 or not np.isfinite(b[idx, i]).all():
            continue
        bi = b[idx, i]
        if reference == "median":
            ref = np.median(bi, axis=0)
        else:
            ref = bi[int(np.argmax(pairwise_box_iou(bi, bi).sum(axis=1)))]
        same = pairwise_box_iou(ref, bi)[0] >= min_iou
        if same.any():
            out[idx[~same], i] = False
    return out


#: Exchange left and right only where that brings the pose this much closer (relative).
LR_MARGIN = 0.25


def _pose_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS distance over the keypoints present in both: ``(..., K, 2)`` -> ``(...)`` (NaN where
    none)."""
    d2 = np.sum((a - b) ** 2, axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.sqrt(np.nanmean(d2, axis=-1))


def align_left_right(coords, flip_index: Sequence[int] = FLIP_INDEX, margin: float = LR_MARGIN,
                     anchor: int | None = None, rounds: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """Members' poses ``(M, N, K, 2)`` (NaN: missing) put on the consensus's left/right side:
    ``(aligned coords, exchanged (M, N) bool)``.

    The consensus of an image is the coordinate-wise median of the present members (with
    ``anchor``, that member's pose: with two members the median is symmetric under the exchange
    and cannot decide, so the driver anchors on the member best on validation). A member whose pose
    with left and right exchanged (``flip_index``: the keypoint each one becomes) is closer to
    the consensus than ``(1 - margin)`` × its plain distance is exchanged. ``rounds`` repeats
    this with the consensus of the aligned poses. The anchor is never exchanged.
    """
    c = _check_coords(coords)
    flip = np.asarray(flip_index, dtype=int)
    if sorted(flip.tolist()) != list(range(c.shape[2])):
        raise ValueError(f"flip_index must be a permutation of the {c.shape[2]} keypoints")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1); got {margin}")
    if anchor is not None and not 0 <= anchor < c.shape[0]:
        raise ValueError(f"anchor {anchor} is not a member index (0..{c.shape[0] - 1})")
    swapped = np.zeros(c.shape[:2], dtype=bool)
    mirrored = c[:, :, flip]
    for _ in range(max(1, rounds)):
        cur = np.where(swapped[..., None, None], mirrored, c)
        if anchor is not None:
            ref = cur[anchor]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ref = np.nanmedian(cur, axis=0)
        plain = _pose_distance(c, ref[None])
        other = _pose_distance(mirrored, ref[None])
        with np.errstate(invalid="ignore"):
            new = other < (1.0 - margin) * plain
        if anchor is not None:
            new[anchor] = False
        if np.array_equal(new, swapped):
            break
        swapped = new
    return np.where(swapped[..., None, None], mirrored, c), swapped


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
            if weights.shape not in ((m,), (m, kk)) or not np.all(np.isfinite(weights)) or np.any(
                    weights < 0):
                raise ValueError(f"weights must be non-negative numbers of shape ({m},) per member "
                                 f"or ({m}, {kk}) per member and keypoint; got {weights}")
            w = w * (weights[:, None, None] if weights.ndim == 1 else weights[:, None, :])
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
    :func:`fuse_with_fallback`). ``weights`` (M,) or (M, K) and ``scores`` (M, N, K) are used by
    ``weighted`` only (both multiply when given); ``k`` by ``robust`` only.
    """
    return _fuse(_check_coords(coords), method, weights, scores, k)[0]


def fuse_scores(scores) -> np.ndarray:
    """Per-keypoint scores ``(M, N, K)`` (NaN: member missing) fused as ``mean`` fuses the
    coordinates: the mean over the members present, ``(N, K)`` (NaN where none)."""
    s = np.asarray(scores, dtype=float)
    if s.ndim != 3 or s.shape[0] < 1:
        raise ValueError(f"scores must have shape (members, images, keypoints); got {s.shape}")
    present = np.isfinite(s)
    return _weighted_mean(np.where(present, s, 0.0)[..., None], present.astype(float))[..., 0]


def fuse_with_fallback(
    coords,
    method: str = "mean",
    weights=None,
    scores=None,
    k: float = 2.0,
    fallback=None,
    same_person=None,
) -> FusionResult:
    """:func:`fuse`, then fill every keypoint no member predicted from ``fallback`` (N, K, 2).

    ``same_person`` (M, N), e.g. from :func:`align_by_boxes`: False where a member is on another
    person; it is left out there and filled from the others like a missing detection, and
    counted in ``other_person_per_model`` (not in ``fills_per_model``). Counts, per member, the
    images it missed that the others filled, and the images that needed the fallback. Raises
    ValueError when the fallback is needed but not given.
    """
    c = _check_coords(coords)
    image_missed = ~np.isfinite(c).all(axis=-1).any(axis=2)  # (M, N): member predicted nothing
    other_person = None
    if same_person is not None:
        same = np.asarray(same_person, dtype=bool)
        if same.shape != c.shape[:2]:
            raise ValueError(f"same_person must have shape {c.shape[:2]}; got {same.shape}")
        other_person = ~image_missed & ~same
        c = np.where(other_person[:, :, None, None], np.nan, c)
    out, used = _fuse(c, method, weights, scores, k)
    present = np.isfinite(c).all(axis=-1)
    kept = present.any(axis=2)
    others = kept.sum(axis=0)[None] - kept
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
    return FusionResult(out, fills, len(fallback_images), fallback_images, dropped,
                        None if other_person is None else other_person.sum(axis=1))
