"""THE pixel convention of the kit, and every coordinate transform built on it.

Convention (stated in docs/pixel-convention.md): a keypoint ``(x, y)`` is in **pixel-index coordinates** — the
centre of the pixel in column ``j`` and row ``i`` is ``(j, i)``; the image spans
``[-0.5, W - 0.5] × [-0.5, H - 0.5]``. This is what the CSVs hold and what the kit writes.

Continuous coordinates (detectron2, OpenCV's ``warpAffine`` with pixel-area semantics, resizing)
put the centre of pixel ``j`` at ``j + 0.5``. :func:`to_continuous` / :func:`from_continuous`
convert between the two; every other transform below works in pixel-index coordinates, so a
transform applied to an image and to its labels moves a label with the pixel under it:

- horizontal flip of a ``W``-wide image: pixel ``j`` goes to ``W - 1 - j``, so ``x → W - 1 - x``;
- resizing by ``s`` (``cv2.resize``): ``x → (x + 0.5)·s - 0.5``;
- an affine map given as a 2×3 matrix for ``cv2.warpAffine`` acts on pixel indices directly
  (OpenCV maps destination pixel centres), so points use the same matrix: :func:`apply_affine`.

All functions are pure and work on arrays of shape ``(..., 2)`` (x, y in the last axis).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

#: Offset from pixel-index coordinates (the kit's) to continuous ones (detectron2's).
PIXEL_OFFSET = 0.5


def to_continuous(points: np.ndarray) -> np.ndarray:
    """Pixel-index coordinates → continuous (pixel centre at +0.5), e.g. for detectron2."""
    return np.asarray(points, dtype=np.float64) + PIXEL_OFFSET


def from_continuous(points: np.ndarray) -> np.ndarray:
    """Continuous coordinates (detectron2's outputs) → the kit's pixel-index coordinates."""
    return np.asarray(points, dtype=np.float64) - PIXEL_OFFSET


def flip_points(points: np.ndarray, width: float) -> np.ndarray:
    """Mirror x for an image ``width`` pixels wide: pixel ``j`` goes to ``width - 1 - j``."""
    out = np.array(points, dtype=np.float64, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return out


def flip_box(box: Sequence[float], width: float) -> np.ndarray:
    """Mirror an ``(x1, y1, x2, y2)`` box given in continuous coordinates (detectron2 boxes)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([width - x2, y1, width - x1, y2], dtype=np.float64)


def scale_points(points: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Points of an image resized by ``(sx, sy)`` (``cv2.resize``): centre-aligned pixels."""
    out = to_continuous(points)
    out[..., 0] *= sx
    out[..., 1] *= sy
    return from_continuous(out)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply the 2×3 matrix that ``cv2.warpAffine`` applies to the image to pixel-index points."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    return pts @ m[:, :2].T + m[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine matrix."""
    m = np.vstack([np.asarray(matrix, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)[:2]


def rotation_matrix(center: Tuple[float, float], angle_deg: float, scale: float = 1.0) -> np.ndarray:
    """``cv2.getRotationMatrix2D`` for a centre in pixel-index coordinates (counter-clockwise)."""
    a = np.deg2rad(angle_deg)
    alpha, beta = scale * np.cos(a), scale * np.sin(a)
    cx, cy = center
    return np.array(
        [[alpha, beta, (1 - alpha) * cx - beta * cy], [-beta, alpha, beta * cx + (1 - alpha) * cy]]
    )


def image_center(width: int, height: int) -> Tuple[float, float]:
    """The centre of a ``width × height`` image in pixel-index coordinates."""
    return ((width - 1) / 2.0, (height - 1) / 2.0)


def box_from_points(points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """``(x1, y1, x2, y2)`` around the finite points, enlarged by ``margin`` of its size per side."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("box_from_points: no finite point")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = (hi - lo) * margin
    return np.concatenate([lo - pad, hi + pad])


def clip_box(box: Sequence[float], width: float, height: float) -> np.ndarray:
    """Clip a box in pixel-index coordinates to the image ``[-0.5, W-0.5] × [-0.5, H-0.5]``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    lo, hx, hy = -PIXEL_OFFSET, width - PIXEL_OFFSET, height - PIXEL_OFFSET
    return np.array(
        [min(max(x1, lo), hx), min(max(y1, lo), hy), min(max(x2, lo), hx), min(max(y2, lo), hy)]
    )


def pairwise_box_iou(a, b) -> np.ndarray:
    """Intersection over union of every ``(x1, y1, x2, y2)`` box of ``a`` with every box of ``b``:
    ``(len(a), len(b))`` (vectorised; 0 where either box is empty or not finite). The kit's one
    box IoU (numpy, like ``torchvision.ops.box_iou`` without importing torch)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0.0, None) * np.clip(a[:, 3] - a[:, 1], 0.0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0.0, None) * np.clip(b[:, 3] - b[:, 1], 0.0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / np.where(union > 0, union, 1.0)
    return np.where((union > 0) & np.isfinite(iou), iou, 0.0)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes (0 when either is empty):
    :func:`pairwise_box_iou` of one box with one box."""
    return float(pairwise_box_iou(a, b)[0, 0])
