"""Pictures of predictions: the skeleton drawn in colour (left warm, right cool, centre green, the
colours of :data:`meta.SKELETON`) and grids of random samples.

Keypoints are drawn where they are in the kit's pixel convention (:mod:`.geometry`): a keypoint
``(x, y)`` marks the centre of pixel column ``x``, row ``y``; fractions are kept (OpenCV's
sub-pixel ``shift``), and resizing a picture moves them with :func:`.geometry.scale_points`.
Boxes (continuous coordinates, detectron2's) are converted with :func:`.geometry.from_continuous`.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from .geometry import from_continuous, scale_points
from .io.images import read_image
from .meta import CENTER_COLOR, KEYPOINT_NAMES, LEFT_COLOR, RIGHT_COLOR, skeleton_indices
from .utils import PathLike, atomic_path

Color = Tuple[int, int, int]
_LIMIT = 1e5  # pixel coordinates are clipped to this before drawing (OpenCV needs int32)
_SHIFT = 4  # fractional bits of the drawing coordinates (1/16 px)


def keypoint_colors(names: Sequence[str] = KEYPOINT_NAMES) -> List[Color]:
    """BGR colour of each keypoint: left side, right side or centre line."""
    return [
        LEFT_COLOR if n.startswith("left_") else RIGHT_COLOR if n.startswith("right_") else CENTER_COLOR
        for n in names
    ]


def _point(xy) -> Tuple[int, int]:
    """A pixel-index point as OpenCV drawing coordinates with ``_SHIFT`` fractional bits (OpenCV
    draws integer ``(x, y)`` centred on pixel column ``x``, row ``y``: the kit's convention)."""
    x, y = np.clip(np.asarray(xy, float), -_LIMIT, _LIMIT) * (1 << _SHIFT)
    return round(float(x)), round(float(y))


def draw_keypoints(
    image: np.ndarray,
    keypoints,
    *,
    box=None,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of a BGR image with one pose drawn: skeleton edges and keypoint dots in their side's
    colour. ``keypoints`` is ``(K, 2)`` in pixels; NaN keypoints (and edges touching them) are not
    drawn. ``box`` (x1, y1, x2, y2; continuous coordinates, as
    in the predictions) is drawn in white when given. Sizes scale with the image.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    kps = np.asarray(keypoints, dtype=float)
    if kps.shape != (len(KEYPOINT_NAMES), 2):
        raise ValueError(f"keypoints have shape {kps.shape}; expected ({len(KEYPOINT_NAMES)}, 2)")
    scale = max(out.shape[:2]) / 640.0
    thickness = thickness or max(1, round(2 * scale))
    radius = radius or max(2, round(3 * scale))
    ok = np.isfinite(kps).all(axis=1)
    if box is not None and np.isfinite(np.asarray(box, float)[:4]).all():
        corners = from_continuous(np.asarray(box, float)[:4].reshape(2, 2))
        cv2.rectangle(out, _point(corners[0]), _point(corners[1]), (255, 255, 255),
                      max(1, thickness // 2), cv2.LINE_8, _SHIFT)
    for a, b, color in skeleton_indices():
        if ok[a] and ok[b]:
            cv2.line(out, _point(kps[a]), _point(kps[b]), color, thickness, cv2.LINE_AA, _SHIFT)
    r = 1 << _SHIFT
    for i, color in enumerate(keypoint_colors()):
        if ok[i]:
            p = _point(kps[i])
            cv2.circle(out, p, (radius + 1) * r, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, p, radius * r, color, -1, cv2.LINE_AA, _SHIFT)
    return out


def _label(img: np.ndarray, text: str, origin=(4, 4)) -> None:
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    x, y = origin
    cv2.rectangle(img, (x - 2, y - 2), (x + w + 2, y + h + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y + h), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def save_samples(
    image_dir: PathLike,
    images: Sequence[str],
    coords,
    out_path: PathLike,
    *,
    n: int = 8,
    seed: int = 0,
    cols: int = 4,
    tile_width: int = 400,
    boxes=None,
    title: str | None = None,
) -> Path:
    """Write (atomically) a grid of ``n`` random images of ``images`` with their predicted poses.

    ``coords`` is ``(N, K, 2)`` aligned with ``images``; ``boxes`` optionally ``(N, 4)``. The
    choice depends only on ``seed`` and the image list, so grids of several models on the same
    images show the same pictures. Images without a prediction are labelled "no detection".
    """
    coords = np.asarray(coords, dtype=float)
    if len(images) == 0 or n <= 0:
        raise ValueError("save_samples needs at least one image and n >= 1")
    if coords.shape[0] != len(images):
        raise ValueError(f"{coords.shape[0]} predictions for {len(images)} images")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
    tiles = []
    for i in chosen:
        path = Path(image_dir) / images[i]
        img = read_image(path)
        h, w = img.shape[:2]
        size = (tile_width, max(1, round(h * tile_width / w)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sx, sy = size[0] / w, size[1] / h
        # continuous box coordinates scale as they are; keypoints keep pixel areas aligned
        box = None if boxes is None else np.asarray(boxes[i], float)[:4] * [sx, sy, sx, sy]
        tile = draw_keypoints(img, scale_points(coords[i], sx, sy), box=box, thickness=2, radius=3)
        missing = not np.isfinite(coords[i]).any()
        _label(tile, f"{images[i]}" + ("  (no detection)" if missing else ""))
        tiles.append(tile)
    cols = max(1, min(cols, len(tiles)))
    height = max(t.shape[0] for t in tiles)
    blank = np.zeros((height, tile_width, 3), np.uint8)
    tiles = [np.vstack([t, blank[: height - t.shape[0]]]) for t in tiles]
    tiles += [blank] * (-len(tiles) % cols)
    grid = np.vstack([np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)])
    if title:
        strip = np.zeros((26, grid.shape[1], 3), np.uint8)
        _label(strip, title, origin=(6, 5))
        grid = np.vstack([strip, grid])
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"could not write {out_path} (unsupported extension?)")
    return out_path
