"""Crops for the heatmap family: detectron2 dataset mappers (training and test) and the crop helper.

Every coordinate goes through :mod:`motion_keypoints.geometry` (pixel-index coordinates; the
dataset dicts hold detectron2's continuous keypoints, converted with ``from_continuous``) and
:mod:`.codec` (crop affine, Gaussian targets).

- :class:`HeatmapTrainMapper`: the person box from the keypoints with the kit's margin
  (``geometry.box_from_points(·, DATA.BBOX_MARGIN)``), then on the fly (on top of the pre-rendered
  augmentation sets): horizontal flip, half-body, centre/scale jitter, rotation, all folded into
  one crop affine; targets by ``codec.encode_gaussian``.
- :class:`HeatmapTestMapper`: the crop on a given person box (``person_box``, continuous coords,
  e.g. a Keypoint R-CNN detection), else on the ground-truth box (in-training validation).

Mapped dicts hold ``image``: the crop, a ``(3, h_in, w_in)`` uint8 **RGB** tensor (the heatmap
family ignores ``INPUT.FORMAT``: timm's normalisation is for RGB).
"""

from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from ...geometry import (
    apply_affine,
    box_from_points,
    flip_points,
    from_continuous,
    to_continuous,
)
from ...meta import FLIP_INDEX, KEYPOINT_NAMES
from . import codec

#: Keypoints of the upper body for half-body augmentation (by name; the rest is the lower body).
UPPER_BODY_WORDS = ("nose", "eye", "ear", "shoulder", "elbow", "wrist", "neck", "palm", "spine2")


def upper_body_mask(names: Sequence[str] = KEYPOINT_NAMES) -> np.ndarray:
    """Boolean mask of the upper-body keypoints (names containing :data:`UPPER_BODY_WORDS`)."""
    return np.array([any(w in n for w in UPPER_BODY_WORDS) for n in names], dtype=bool)


def read_bgr(path: str) -> np.ndarray:
    """HxWx3 uint8 BGR: the kit's one reader (io.images.read_image) when present, else OpenCV."""
    from ...io import images

    reader = getattr(images, "read_image", None)
    if reader is not None:
        return reader(path)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"{path}: cannot read image (run python code/check_data.py)")
    return img


def input_size_of(cfg) -> Tuple[int, int]:
    """``(w, h)`` of the network input from ``MODEL.HEATMAP.INPUT_SIZE``."""
    w, h = (int(v) for v in cfg.MODEL.HEATMAP.INPUT_SIZE)
    return w, h


def heatmap_size_of(cfg) -> Tuple[int, int]:
    from .model import OUTPUT_STRIDE

    w, h = input_size_of(cfg)
    return w // OUTPUT_STRIDE, h // OUTPUT_STRIDE


def warp_crop(image: np.ndarray, matrix: np.ndarray, input_size: Tuple[int, int]) -> np.ndarray:
    """``cv2.warpAffine`` of a BGR image into an RGB crop of ``input_size = (w, h)``."""
    crop = cv2.warpAffine(
        image, np.asarray(matrix, dtype=np.float64), (int(input_size[0]), int(input_size[1])),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
    )
    return np.ascontiguousarray(crop[:, :, ::-1])


def crop_person(
    image: np.ndarray, box_continuous: Sequence[float], input_size: Tuple[int, int],
    margin: float = 1.25, udp: bool = False,
) -> Tuple[np.ndarray, np.ndarray]:
    """Crop of a BGR image on a detectron2 (continuous) box → ``(RGB crop, M_inv crop→image)``."""
    box = from_continuous(np.asarray(box_continuous, dtype=np.float64).reshape(2, 2)).reshape(-1)
    m, m_inv = codec.crop_affine(box, input_size, margin=margin, udp=udp)
    return warp_crop(image, m, input_size), m_inv


def _chw(crop: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(crop.transpose(2, 0, 1)))


def _label_points(record: dict) -> np.ndarray:
    """(K, 2) pixel-index keypoints of a single-person dataset dict."""
    kps = np.asarray(record["annotations"][0]["keypoints"], dtype=np.float64).reshape(-1, 3)
    return from_continuous(kps[:, :2])


class HeatmapTrainMapper:
    """Dataset dict → ``{"image", "heatmaps", "target_weight", ...}`` (see the module doc)."""

    def __init__(self, cfg, rng: Optional[np.random.Generator] = None):
        h = cfg.INPUT.HEATMAP
        self.input_size = input_size_of(cfg)
        self.heatmap_size = heatmap_size_of(cfg)
        self.sigma = float(cfg.MODEL.HEATMAP.SIGMA)
        self.udp = bool(cfg.MODEL.HEATMAP.UDP)
        self.box_margin = float(cfg.DATA.BBOX_MARGIN)
        self.crop_margin = float(cfg.MODEL.HEATMAP.BOX_MARGIN)
        self.center_jitter = float(h.CENTER_JITTER)
        self.scale_jitter = float(h.SCALE_JITTER)
        self.rotation = float(h.ROTATION)
        self.rotation_prob = float(h.ROTATION_PROB)
        self.flip_prob = float(h.FLIP_PROB)
        self.half_body_prob = float(h.HALF_BODY_PROB)
        self.half_body_min = int(h.HALF_BODY_MIN_KEYPOINTS)
        self.upper = upper_body_mask()
        self._rng = rng

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:  # per worker process (seeded by detectron2's worker init)
            self._rng = np.random.default_rng(int(np.random.randint(0, 2**31 - 1)))
        return self._rng

    def crop_params(self, points: np.ndarray, width: int) -> Tuple[np.ndarray, np.ndarray, float]:
        """``(center, scale, rotation)`` of a training crop for pixel-index ``points`` (K, 2)."""
        rng = self.rng
        aspect = self.input_size[0] / self.input_size[1]
        finite = np.isfinite(points).all(axis=1)
        box = box_from_points(points, self.box_margin)
        center, scale = codec.box_to_center_scale(box, aspect, self.crop_margin)
        if finite.sum() >= self.half_body_min and rng.random() < self.half_body_prob:
            part = self.upper if rng.random() < 0.5 else ~self.upper
            sel = points[part & finite]
            if len(sel) < 2:
                sel = points[~part & finite]
            if len(sel) >= 2:
                hb = box_from_points(sel, self.box_margin)
                center, scale = codec.box_to_center_scale(hb, aspect, self.crop_margin * 1.2)
        if self.center_jitter > 0:
            center = center + rng.uniform(-1, 1, 2) * self.center_jitter * scale
        if self.scale_jitter > 0:
            scale = scale * rng.uniform(1 - self.scale_jitter, 1 + self.scale_jitter)
        rotation = 0.0
        if self.rotation > 0 and rng.random() < self.rotation_prob:
            rotation = float(rng.uniform(-self.rotation, self.rotation))
        return center, scale, rotation

    def __call__(self, record: dict) -> Dict:
        record = copy.copy(record)
        image = read_bgr(record["file_name"])
        height, width = image.shape[:2]
        points = _label_points(record)
        if self.flip_prob > 0 and self.rng.random() < self.flip_prob:
            image = np.ascontiguousarray(image[:, ::-1])
            points = flip_points(points, width)[list(FLIP_INDEX)]
        center, scale, rotation = self.crop_params(points, width)
        m = codec.affine_from_center_scale(center, scale, self.input_size, rotation, self.udp)
        crop = warp_crop(image, m, self.input_size)
        pts_in = apply_affine(points, m)
        visible = np.isfinite(points).all(axis=1).astype(np.float32)
        heatmaps, weights = codec.encode_gaussian(
            pts_in, visible, self.heatmap_size, self.input_size, self.sigma, self.udp
        )
        return {
            "file_name": record["file_name"],
            "image_id": record["image_id"],
            "height": self.input_size[1],
            "width": self.input_size[0],
            "image": _chw(crop),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(weights),
        }


class HeatmapTestMapper:
    """Dataset dict → the crop on its person box, with what is needed to map predictions back.

    The box is ``record["person_box"]`` (continuous coordinates, e.g. an R-CNN detection) when
    present, else the ground-truth box (keypoints' extent with ``DATA.BBOX_MARGIN``). The output
    keeps the original ``height``/``width`` (for the Instances) and adds ``crop_inverse`` (2×3,
    crop → image pixel-index coords), ``box`` (continuous) and ``box_score``.
    """

    def __init__(self, cfg):
        self.input_size = input_size_of(cfg)
        self.udp = bool(cfg.MODEL.HEATMAP.UDP)
        self.box_margin = float(cfg.DATA.BBOX_MARGIN)
        self.crop_margin = float(cfg.MODEL.HEATMAP.BOX_MARGIN)

    def box_of(self, record: dict) -> Tuple[np.ndarray, float]:
        if record.get("person_box") is not None:
            return np.asarray(record["person_box"], dtype=np.float64), float(
                record.get("box_score", 1.0)
            )
        if not record.get("annotations"):
            raise ValueError(f"{record.get('file_name')}: no person_box and no annotations to crop on")
        box = box_from_points(_label_points(record), self.box_margin)
        return to_continuous(box.reshape(2, 2)).reshape(-1), 1.0

    def __call__(self, record: dict) -> Dict:
        image = read_bgr(record["file_name"])
        height, width = image.shape[:2]
        box, score = self.box_of(record)
        crop, m_inv = crop_person(image, box, self.input_size, self.crop_margin, self.udp)
        out = {k: record[k] for k in ("file_name", "image_id", "index") if k in record}
        out.update(
            height=height, width=width, image=_chw(crop), crop_inverse=m_inv,
            box=box, box_score=score,
        )
        return out


__all__ = [
    "HeatmapTestMapper",
    "HeatmapTrainMapper",
    "crop_person",
    "heatmap_size_of",
    "input_size_of",
    "read_bgr",
    "upper_body_mask",
    "warp_crop",
]
