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
