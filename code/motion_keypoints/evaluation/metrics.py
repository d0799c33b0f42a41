"""The competition metric and friends: pure functions on arrays.

Keypoint arrays have shape ``(N, K, 2)`` (images, keypoints, xy) in pixels.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from ..meta import KEYPOINT_NAMES


def _check(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} != truth shape {truth.shape}")
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"expected (images, keypoints, 2) arrays, got {pred.shape}")


def rmse(pred, truth) -> float:
    """Competition RMSE: root of the mean squared error over all 2·K coordinates of all images."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    _check(pred, truth)
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def per_keypoint_rmse(pred, truth, names: Sequence[str] = KEYPOINT_NAMES) -> Dict[str, float]:
    """RMSE of each keypoint over its x and y coordinates (same scale as :func:`rmse`)."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    _check(pred, truth)
    per = np.sqrt(np.mean((pred - truth) ** 2, axis=(0, 2)))
    return {n: float(v) for n, v in zip(names, per)}


def per_image_rmse(pred, truth) -> np.ndarray:
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    _check(pred, truth)
    return np.sqrt(np.mean((pred - truth) ** 2, axis=(1, 2)))


def mean_relative_pose(train_kps, sizes_train) -> np.ndarray:
    """The mean pose (K, 2) in image-relative units (x/width, y/height) of keypoints
    ``(N, K, 2)`` of images of ``sizes_train`` ``(N, 2)`` (width, height)."""
    train_kps = np.asarray(train_kps, float)
    st = np.asarray(sizes_train, float)[:, None, :]
    return (train_kps / st).mean(axis=0)


def scale_pose(rel_pose, sizes) -> np.ndarray:
    """A relative pose (K, 2) scaled into images of ``sizes`` ``(N, 2)``: ``(N, K, 2)`` pixels."""
    return np.asarray(rel_pose, float)[None] * np.asarray(sizes, float)[:, None, :]


def mean_pose_baseline(train_kps, sizes_train, sizes_eval) -> np.ndarray:
    """The mean-pose baseline: the training mean pose, in image-relative units, scaled into each
    evaluation image.

    ``sizes_*`` are ``(N, 2)`` arrays of (width, height). Returns ``(N_eval, K, 2)``.
    """
    return scale_pose(mean_relative_pose(train_kps, sizes_train), sizes_eval)


def ratio_to(value, baseline) -> float:
    """``value / baseline`` (the mean-pose ratio: below 1 is better than the mean pose); NaN when
    either is missing or the baseline is 0."""
    if value is None or baseline is None:
        return float("nan")
    value, baseline = float(value), float(baseline)
    if not (np.isfinite(value) and np.isfinite(baseline)) or baseline <= 0:
        return float("nan")
    return value / baseline


def box_size(truth) -> np.ndarray:
    """Size of each person ``(N,)``: the longer side of the box around its true keypoints ``(N, K,
    2)`` (the reference length of :func:`pck`)."""
    t = np.asarray(truth, float)
    extent = np.nanmax(t, axis=1) - np.nanmin(t, axis=1)
    return extent.max(axis=1)


def pck(pred, truth, alpha: float, names: Sequence[str] = KEYPOINT_NAMES) -> Dict[str, float]:
    """Percentage of correct keypoints per keypoint: the share of images (0..1) where the
    predicted keypoint lies within ``alpha`` × the person's box size (:func:`box_size`) of the
    truth. PCK@0.05 and PCK@0.1 are what a pose user reads beside the RMSE."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    _check(pred, truth)
    if not alpha > 0:
        raise ValueError(f"alpha must be positive; got {alpha}")
    dist = np.linalg.norm(pred - truth, axis=-1)
    ok = dist <= alpha * box_size(truth)[:, None]
    return {n: float(v) for n, v in zip(names, ok.mean(axis=0))}


def group_rmse(pred, truth, groups: Sequence[str]) -> Dict[str, float]:
    """RMSE of the images of each group (e.g. camera) ``{group: rmse}`` in sorted group order;
    ``groups`` names the group of each image."""
    pred, truth = np.asarray(pred, float), np.asarray(truth, float)
    _check(pred, truth)
    g = np.asarray(list(groups), dtype=object)
    if len(g) != len(pred):
        raise ValueError(f"{len(g)} group names for {len(pred)} images")
    return {str(k): rmse(pred[g == k], truth[g == k]) for k in sorted(set(g.tolist()))}
