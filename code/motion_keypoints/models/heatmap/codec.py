"""Heatmap codec of the top-down family: crop affine, Gaussian targets, decoding, flip test.

Pure numpy functions (MMPose's "codec" idea, written for the kit's ONE pixel convention, see
:mod:`motion_keypoints.geometry`). Three coordinate frames, all in **pixel-index coordinates**
(the centre of pixel ``j`` is ``x = j``):

- *image*: the original picture (the CSV coordinates);
- *input*: the crop fed to the network, ``input_size = (w_in, h_in)`` pixels, made with
  ``cv2.warpAffine(image, M, (w_in, h_in))`` where ``M`` comes from :func:`crop_affine`; OpenCV
  maps destination pixel *indices*, so ``geometry.apply_affine(points, M)`` moves a label with the
  pixel under it;
- *heatmap*: the network output, ``heatmap_size = (w_hm, h_hm)``, ``stride = w_in / w_hm`` (4).

Input ↔ heatmap (the only place where the two encodings differ):

- **standard (non-UDP, original HRNet)**: ``x_hm = x_in / stride``. Heatmap pixel ``j`` sits on
  input pixel ``stride·j`` (the first pixel of the ``stride`` pixels it covers, not their centre
  ``stride·j + (stride-1)/2``). Encoding and decoding use the same relation, so a round trip is
  exact, but the grid is not symmetric under a horizontal flip: see :func:`flip_heatmaps`.
- **UDP** (Huang et al., "The Devil is in the Details", CVPR 2020): ``x_hm = x_in · (w_hm-1) /
  (w_in-1)``; the first and last pixels of the input and the heatmap coincide, so the grid is
  flip-symmetric and flip test needs no shift. :func:`crop_affine` with ``udp=True`` likewise maps
  the box width onto ``w_in - 1`` pixel steps.

Every ``size`` argument is ``(width, height)``; every array of points is ``(..., 2)`` with x, y
last; heatmaps are ``(K, h, w)`` or ``(N, K, h, w)``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from motion_keypoints.geometry import apply_affine, invert_affine

Size = Tuple[int, int]


# --------------------------------------------------------------------------------------- crops
def box_to_center_scale(
    box: Sequence[float], aspect_ratio: float, margin: float = 1.25
) -> Tuple[np.ndarray, np.ndarray]:
    """``(x1, y1, x2, y2)`` box → ``(center, scale)`` of the region to crop.

    The box is in the kit's pixel-index coordinates (convert a detectron2 box, which is in
    continuous coordinates, with ``geometry.from_continuous`` first). ``center`` is the box centre;
    ``scale = (width, height)`` is the region's size in image pixels: the box grown along one axis
    to ``aspect_ratio = w_in / h_in`` (the model's), then multiplied by ``margin`` (no 200-pixel
    "pixel_std" unit as in the original HRNet code).
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    center = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0])
    w, h = max(x2 - x1, 1e-6), max(y2 - y1, 1e-6)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return center, np.array([w, h]) * float(margin)


def affine_from_center_scale(
    center: Sequence[float],
    scale: Sequence[float],
    out_size: Size,
    rotation: float = 0.0,
    udp: bool = False,
) -> np.ndarray:
    """2×3 matrix: image pixel-index coords → crop pixel-index coords (``cv2.warpAffine``'s M).

    ``center`` goes to the crop centre ``((w-1)/2, (h-1)/2)``. The image is rotated about
    ``center`` by ``rotation`` degrees in the sense of ``geometry.rotation_matrix`` /
    ``cv2.getRotationMatrix2D`` (positive = counter-clockwise on screen), then scaled so that the
    region ``scale = (sw, sh)`` fills the crop:

    - standard: ``w / sw`` — the region's extent ``[c - sw/2, c + sw/2]`` lands on the crop's
      ``[-0.5, w - 0.5]`` (pixel areas aligned, the kit's convention);
    - UDP: ``(w - 1) / sw`` — the region's extent lands on the crop's pixel centres ``[0, w-1]``.

    Use it for augmentation too (jitter ``center``/``scale``/``rotation`` before calling).
    """
    w, h = (int(v) for v in out_size)
    sw, sh = (float(v) for v in scale)
    if udp:
        sx, sy = (w - 1) / sw, (h - 1) / sh
    else:
        sx, sy = w / sw, h / sh
    a = np.deg2rad(rotation)
    rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    lin = np.diag([sx, sy]) @ rot
    c = np.asarray(center, dtype=np.float64)
    t = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) - lin @ c
    return np.hstack([lin, t[:, None]])


def crop_affine(
    box: Sequence[float],
    out_size: Size = (192, 256),
    margin: float = 1.25,
    rotation: float = 0.0,
    udp: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Box → ``(M, M_inv)``: the crop's 2×3 matrix (image → crop) and its inverse (crop → image).

    ``box`` is ``(x1, y1, x2, y2)`` in image pixel-index coordinates; ``out_size = (w, h)`` is the
    model's input size. The box is expanded to the model's aspect ratio and multiplied by
    ``margin`` (:func:`box_to_center_scale`), then :func:`affine_from_center_scale`. Crop with
    ``cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_LINEAR)``; move labels with
    ``geometry.apply_affine(points, M)``; bring predictions back with ``M_inv``.
    """
    w, h = (int(v) for v in out_size)
    center, scale = box_to_center_scale(box, w / h, margin)
    m = affine_from_center_scale(center, scale, (w, h), rotation=rotation, udp=udp)
    return m, invert_affine(m)


# ------------------------------------------------------------------------------ input ↔ heatmap
def _input_to_heatmap_factor(heatmap_size: Size, input_size: Size, udp: bool) -> np.ndarray:
    """Factor f with ``x_hm = x_in · f`` (per axis), for both encodings (see the module doc)."""
    (w_hm, h_hm), (w_in, h_in) = heatmap_size, input_size
    if udp:
        return np.array([(w_hm - 1) / (w_in - 1), (h_hm - 1) / (h_in - 1)], dtype=np.float64)
    return np.array([w_hm / w_in, h_hm / h_in], dtype=np.float64)


def input_to_heatmap(points: np.ndarray, heatmap_size: Size, input_size: Size, udp: bool = False):
    """Input-crop pixel-index coords → heatmap pixel-index coords (``x_in / stride`` or UDP)."""
    return np.asarray(points, dtype=np.float64) * _input_to_heatmap_factor(
        heatmap_size, input_size, udp
    )


def heatmap_to_input(points: np.ndarray, heatmap_size: Size, input_size: Size, udp: bool = False):
    """Heatmap pixel-index coords → input-crop pixel-index coords (inverse of the above)."""
    return np.asarray(points, dtype=np.float64) / _input_to_heatmap_factor(
        heatmap_size, input_size, udp
    )


def heatmap_to_image(
    coords_hm: np.ndarray,
    heatmap_size: Size,
    input_size: Size,
    inverse_affine: np.ndarray,
    udp: bool = False,
) -> np.ndarray:
    """Decoded heatmap coords ``(..., K, 2)`` → image pixel-index coords.

    ``heatmap_to_input`` then ``geometry.apply_affine(·, inverse_affine)`` where
    ``inverse_affine`` is the crop's ``M_inv`` from :func:`crop_affine` (one 2×3 matrix for all
    points; loop over crops for a batch). NaN (no peak) stays NaN.
    """
    pts_in = heatmap_to_input(coords_hm, heatmap_size, input_size, udp)
    return apply_affine(pts_in, inverse_affine)


# ------------------------------------------------------------------------------------ encoding
def encode_gaussian(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: Size,
    input_size: Size,
    sigma: float = 2.0,
    udp: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(K, 2)`` in input-crop pixel-index coords → ``(heatmaps (K, h, w), weights (K,))``.

    Each visible keypoint is mapped to heatmap coords (:func:`input_to_heatmap`: ``x_in / stride``
    or UDP) and rendered as an *unquantised* Gaussian ``exp(-d² / 2σ²)`` centred at that subpixel
    position, ``sigma`` in heatmap pixels (DARK's unbiased encoding: the original HRNet rounds the
    centre to an integer pixel, a bias of up to half a heatmap pixel). The peak value is 1 only
    when the centre falls on a pixel centre.

    ``weights[k]`` is 1 for a visible, finite keypoint whose centre lies within 3σ of the heatmap
    (as HRNet), else 0 and its heatmap is all zeros.
    """
    pts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    vis = np.asarray(visible).reshape(-1)
    if len(vis) != len(pts):
        raise ValueError(f"{len(pts)} keypoints but {len(vis)} visibility flags")
    w_hm, h_hm = (int(v) for v in heatmap_size)
    mu = input_to_heatmap(pts, heatmap_size, input_size, udp)
    heatmaps = np.zeros((len(pts), h_hm, w_hm), dtype=np.float32)
    weights = np.zeros(len(pts), dtype=np.float32)
    xs = np.arange(w_hm, dtype=np.float64)
    ys = np.arange(h_hm, dtype=np.float64)
    reach = 3.0 * sigma
    for k, (mx, my) in enumerate(mu):
        if not (vis[k] > 0 and np.isfinite(mx) and np.isfinite(my)):
            continue
        if mx < -reach or my < -reach or mx > w_hm - 1 + reach or my > h_hm - 1 + reach:
            continue
        gx = np.exp(-((xs - mx) ** 2) / (2.0 * sigma**2))
        gy = np.exp(-((ys - my) ** 2) / (2.0 * sigma**2))
        heatmaps[k] = np.outer(gy, gx)
        weights[k] = 1.0
    return heatmaps, weights


# ------------------------------------------------------------------------------------ decoding
def gaussian_blur(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """``cv2.GaussianBlur`` (sigma from the kernel size, reflect-101 borders) of the last two axes.

    Like DARK / MMPose, the result is rescaled so that each map keeps its original maximum.
    """
    import cv2

    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd integer, got {kernel}")
    hm = np.asarray(heatmaps, dtype=np.float64)
    if kernel == 1:
        return hm.copy()
    h, w = hm.shape[-2:]
    if min(h, w) <= kernel // 2:
        raise ValueError(f"blur kernel {kernel} too large for a {w}x{h} heatmap")
    out = hm.reshape(-1, h, w).copy()
    for m in out:
        m[...] = cv2.GaussianBlur(m, (kernel, kernel), 0, borderType=cv2.BORDER_REFLECT_101)
    out = out.reshape(hm.shape)
    orig_max = hm.max(axis=(-2, -1), keepdims=True) if hm.size else hm
    new_max = out.max(axis=(-2, -1), keepdims=True) if hm.size else out
    scale = np.where(new_max > 0, orig_max / np.where(new_max > 0, new_max, 1.0), 1.0)
    return out * scale


def _argmax_2d(hm: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer argmax (x, y) and max value of every map of ``(M, h, w)``."""
    m, h, w = hm.shape
    flat = hm.reshape(m, -1)
    idx = flat.argmax(axis=1)
    return idx % w, idx // w, flat[np.arange(m), idx]


#: The methods of :func:`decode` (``MODEL.HEATMAP.DECODE``).
DECODE_METHODS = ("dark", "argmax")


def decode(
    heatmaps: np.ndarray,
    method: str = "dark",
    udp: bool = False,
    kernel: int = 11,
) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps ``(N, K, h, w)`` or ``(K, h, w)`` → ``(coords (..., K, 2), maxvals (..., K))``.

    Coordinates are in **heatmap pixel-index coordinates** (:func:`heatmap_to_image` takes them to
    the image); ``maxvals`` is the raw heatmap value at the integer argmax. A map whose maximum is
    not positive has no peak: its coordinates are NaN (never a silent zero).

    - ``"argmax"``: integer argmax, then a quarter-pixel step towards the higher neighbour on each
      axis (original HRNet ``get_final_preds``) where both neighbours exist.
    - ``"dark"`` (Zhang et al., CVPR 2020): blur each map with a ``kernel``-sized Gaussian
      (:func:`gaussian_blur`), take the log, and refine the argmax ``m`` by one Newton step of the
      second-order Taylor expansion, ``m - H⁻¹ g``, with central differences for the gradient ``g``
      and Hessian ``H`` (exact for a Gaussian, whose log is quadratic). The step is skipped where
      ``H`` is not negative definite, or at the border, and clipped to one pixel per axis.

    ``udp`` does not change the decoding in heatmap pixels (UDP differs only in the input ↔
    heatmap factor, applied by :func:`heatmap_to_image`); it is accepted for a uniform API.
    """
    del udp  # same decoding in heatmap pixels; the UDP factor lives in heatmap_to_image
    hm = np.asarray(heatmaps, dtype=np.float64)
    if hm.ndim not in (3, 4):
        raise ValueError(f"heatmaps must be (K, h, w) or (N, K, h, w), got shape {hm.shape}")
    lead = hm.shape[:-2]
    h, w = hm.shape[-2:]
    flat = hm.reshape(-1, h, w)
    px, py, maxvals = _argmax_2d(flat)
    coords = np.stack([px, py], axis=-1).astype(np.float64)
    rows = np.arange(len(flat))

    if method == "argmax":
        inner_x = (px > 0) & (px < w - 1)
        inner_y = (py > 0) & (py < h - 1)
        dx = np.where(
            inner_x,
            flat[rows, py, np.minimum(px + 1, w - 1)] - flat[rows, py, np.maximum(px - 1, 0)],
            0.0,
        )
        dy = np.where(
            inner_y,
            flat[rows, np.minimum(py + 1, h - 1), px] - flat[rows, np.maximum(py - 1, 0), px],
            0.0,
        )
        coords += 0.25 * np.stack([np.sign(dx), np.sign(dy)], axis=-1)
    elif method == "dark":
        logh = np.log(np.maximum(gaussian_blur(flat, kernel), 1e-10))
        inner = (px > 0) & (px < w - 1) & (py > 0) & (py < h - 1)
        x0, y0 = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)

        def at(dy_, dx_):
            return logh[rows, y0 + dy_, x0 + dx_]

        c = at(0, 0)
        gx = 0.5 * (at(0, 1) - at(0, -1))
        gy = 0.5 * (at(1, 0) - at(-1, 0))
        hxx = at(0, 1) - 2 * c + at(0, -1)
        hyy = at(1, 0) - 2 * c + at(-1, 0)
        hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        det = hxx * hyy - hxy**2
        ok = inner & (hxx < 0) & (det > 1e-12)
        safe = np.where(ok, det, 1.0)
        # offset = -H^-1 g, H^-1 = [[hyy, -hxy], [-hxy, hxx]] / det
        ox = -(hyy * gx - hxy * gy) / safe
        oy = -(-hxy * gx + hxx * gy) / safe
        off = np.stack([ox, oy], axis=-1)
        off = np.where(ok[:, None], np.clip(off, -1.0, 1.0), 0.0)
        coords += off
    else:
        raise ValueError(f"unknown decode method {method!r}: use one of {DECODE_METHODS}")

    coords[~(maxvals > 0)] = np.nan
    return coords.reshape(*lead, 2), maxvals.reshape(lead)


# ------------------------------------------------------------------------------------ flip test
def flip_heatmaps(
    heatmaps: np.ndarray, flip_index: Sequence[int], shift: bool = True
) -> np.ndarray:
    """Heatmaps predicted on the mirrored crop → heatmaps in the frame of the original crop.

    Mirrors the last axis (heatmap pixel ``j → w_hm - 1 - j``), then permutes channels:
    ``out[k] = mirrored[flip_index[k]]`` (``flip_index[k]`` is keypoint k's left/right partner,
    itself on the centre line: the kit's ``FLIP_INDEX``). Works on ``(K, h, w)`` and
    ``(N, K, h, w)``.

    ``shift=True`` then moves the maps one heatmap pixel to the right (``out[..., 1:] =
    out[..., :-1]``, column 0 kept), the original HRNet flip test. Which is right depends on the
    encoding (derivation: a flip-equivariant model puts the peak for ``x_in`` at
    ``(w_in - 1 - x_in) · f`` on the mirrored crop; mirroring the map gives ``w_hm - 1`` minus it):

    - **UDP**: exactly ``x_hm`` back — use ``shift=False`` (exact).
    - **standard** (``x_hm = x_in / stride``): ``x_hm - (1 - 1/stride)``, i.e. 0.75 heatmap px to
      the left for stride 4. Neither choice is exact: ``shift=False`` leaves -0.75 px,
      ``shift=True`` leaves +0.25 px (1 input pixel), so the 1-px shift is the better one, as
      HRNet found empirically. (For an exact flip test with the standard encoding, decode the two
      predictions separately and average coordinates instead of heatmaps.)
    """
    hm = np.asarray(heatmaps)
    idx = np.asarray(flip_index, dtype=np.int64)
    if idx.shape != (hm.shape[-3],):
        raise ValueError(f"flip_index has {idx.size} entries for {hm.shape[-3]} channels")
    out = np.take(hm[..., ::-1], idx, axis=-3)
    if shift:
        out = out.copy()
        out[..., 1:] = out[..., :-1].copy()
    return np.ascontiguousarray(out)


def fuse_flip(heatmaps: np.ndarray, heatmaps_flipped_back: np.ndarray) -> np.ndarray:
    """Flip test fusion: the mean of the original and the flipped-back heatmaps."""
    a, b = np.asarray(heatmaps), np.asarray(heatmaps_flipped_back)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    return 0.5 * (a + b)


__all__ = [
    "affine_from_center_scale",
    "box_to_center_scale",
    "crop_affine",
    "decode",
    "encode_gaussian",
    "flip_heatmaps",
    "fuse_flip",
    "gaussian_blur",
    "heatmap_to_image",
    "heatmap_to_input",
    "input_to_heatmap",
]
