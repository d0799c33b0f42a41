"""The transform vocabulary of augmentation sets: primitive types, their albumentations ops
(with ``RotateCrop``, one warp for rotate-then-crop), and applying a chain to an image and its
keypoints, with horizontal flips swapping left/right labels (``meta.FLIP_INDEX``).

Coordinates: the kit's pixel convention (:mod:`motion_keypoints.geometry`: the centre of pixel
column ``j`` is ``x = j``). albumentations 2.x keypoints use the same grid (its flip maps
``x -> W - 1 - x``, its rotations and affine maps turn about ``((W - 1) / 2, (H - 1) / 2)`` with
the matrix it warps the image with, its crops subtract the corner), so keypoints go in and come
out unchanged; the kit's own ops (``KitHFlip``, ``RotateCrop``) move them with geometry's
helpers. ``tests/test_pixel_convention.py`` checks every built-in transform against the pixels.

Add a transform here: a primitive type in :data:`PRIMITIVES` (parameters and defaults) and its
albumentations op in :func:`_albu_ops`; a named default in :data:`.config.BUILTIN_TRANSFORMS`.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from typing import Any, Dict, List, Tuple

import numpy as np

from ..errors import UserError
from ..geometry import apply_affine, flip_points, image_center, rotation_matrix
from ..meta import FLIP_INDEX, KEYPOINT_NAMES

#: Primitive transform types: their parameters and defaults (``None``: required).
PRIMITIVES: Dict[str, Dict[str, Any]] = {
    "identity": {},
    "center_crop": {"height": None, "width": None},
    "random_crop": {"height": None, "width": None},
    "rotate": {"limit": 45},
    "hflip": {},
    "shift_scale": {"shift": 0.1, "scale": [0.8, 1.2]},
    "brightness_contrast": {"brightness": 0.2, "contrast": 0.2},
    "blur": {"blur_limit": [3, 7]},
}
#: Types without randomness: a transform made only of these renders one copy.
DETERMINISTIC = frozenset({"identity", "center_crop", "hflip"})

Primitive = Tuple[str, Dict[str, Any]]
Chain = Tuple[Primitive, ...]


class AugmentationError(UserError, ValueError):
    """A bad augmentation config, set or transform name, or a transform that failed."""

def _albumentations():
    """Import albumentations without its network version check (workers import it too)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


# --------------------------------------------------------------------------- transforms


def read_source_image(path) -> np.ndarray:
    """A source image for rendering, as every stage reads it (:func:`..io.images.read_image`:
    HxWx3 uint8 BGR; 16-bit, grayscale, alpha and EXIF orientation handled)."""
    from ..io.images import read_image

    return read_image(path)


@functools.cache
def hflip_class():
    """``KitHFlip``: a horizontal mirror whose keypoints use :func:`geometry.flip_points`
    (pixel ``j`` goes to ``W - 1 - j``, and so does a keypoint on it)."""
    import cv2

    A = _albumentations()

    class KitHFlip(A.DualTransform):
        def __init__(self, p: float = 1.0):
            super().__init__(p=p)

        def apply(self, img, **params):
            return np.ascontiguousarray(cv2.flip(img, 1))

        def apply_to_keypoints(self, keypoints, **params):
            out = np.array(keypoints, copy=True)
            out[:, :2] = flip_points(keypoints[:, :2], params["shape"][1])
            return out

        def get_transform_init_args_names(self):
            return ()

    return KitHFlip


@functools.cache
def rotate_crop_class():
    """``RotateCrop``: an albumentations transform for a rotation followed by a crop that fits.

    Same result as ``A.Rotate`` (random angle in [-limit, limit] about the image centre, linear
    interpolation, black border) then ``A.RandomCrop``/``A.CenterCrop``, but one ``warpAffine``
    straight into the crop instead of a full-size warp that is mostly thrown away: about 3x less
    work for a 960x720 crop of a 1920x1080 image.
    """
    import cv2

    A = _albumentations()

    class RotateCrop(A.DualTransform):
        def __init__(
            self,
            limit: float,
            height: int,
            width: int,
            random_position: bool = True,
            p: float = 1.0,
        ):
            super().__init__(p=p)
            self.limit, self.height, self.width = float(limit), int(height), int(width)
            self.random_position = random_position

        def get_params_dependent_on_data(self, params, data):
            h, w = params["shape"][:2]
            angle = self.py_random.uniform(-self.limit, self.limit)
            if self.random_position:  # as A.RandomCrop draws its corner
                y0 = int((h - self.height) * self.py_random.random())
                x0 = int((w - self.width) * self.py_random.random())
            else:
                y0, x0 = (h - self.height) // 2, (w - self.width) // 2
            matrix = rotation_matrix(image_center(w, h), angle)  # = cv2.getRotationMatrix2D
            matrix[:, 2] -= (x0, y0)
            return {"matrix": matrix}

        def apply(self, img, matrix, **params):
            return cv2.warpAffine(
                img,
                matrix,
                (self.width, self.height),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )

        def apply_to_keypoints(self, keypoints, matrix, **params):
            out = keypoints.copy()
            out[:, :2] = apply_affine(keypoints[:, :2], matrix)
            return out

        def get_transform_init_args_names(self):
            return ("limit", "height", "width", "random_position")

    return RotateCrop


def _albu_ops(chain: Chain, size_hw: Tuple[int, int], oversize: str, fuse: bool = True):
    """albumentations transforms of a chain for an image of ``size_hw``, and what was adjusted.

    With ``fuse``, a rotation followed by a crop that fits the image becomes one ``RotateCrop``.
    """
    A = _albumentations()
    ops, notes = [], []
    h, w = size_hw
    for i, (kind, p) in enumerate(chain):
        if kind in ("center_crop", "random_crop"):
            ch, cw = p["height"], p["width"]
            fits = ch <= h and cw <= w
            if not fits:
                if oversize == "clamp":
                    ch, cw = min(ch, h), min(cw, w)
                    action = f"clamped the crop to {ch}x{cw}"
                else:
                    action = f"padded with black to {ch}x{cw}"
                notes.append(
                    f"{kind} {p['height']}x{p['width']} larger than the {h}x{w} image (HxW): {action}"
                )
            if fuse and fits and i and chain[i - 1][0] == "rotate":
                ops.pop()  # the A.Rotate of the previous step
                limit = chain[i - 1][1]["limit"]
                ops.append(rotate_crop_class()(limit, ch, cw, kind == "random_crop"))
            else:
                crop = A.CenterCrop if kind == "center_crop" else A.RandomCrop
                ops.append(crop(height=ch, width=cw, pad_if_needed=True, p=1.0))
            h, w = ch, cw
        elif kind == "rotate":
            ops.append(A.Rotate(limit=p["limit"], p=1.0))
        elif kind == "hflip":
            ops.append(hflip_class()(p=1.0))
        elif kind == "shift_scale":
            s = p["shift"]
            ops.append(A.Affine(scale=tuple(p["scale"]), translate_percent=(-s, s), p=1.0))
        elif kind == "brightness_contrast":
            ops.append(
                A.RandomBrightnessContrast(
                    brightness_limit=p["brightness"], contrast_limit=p["contrast"], p=1.0
                )
            )
        elif kind == "blur":
            ops.append(A.Blur(blur_limit=tuple(p["blur_limit"]), p=1.0))
    return ops, notes


def _compose(ops, seed: int | None = None):
    A = _albumentations()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Got processor for keypoints")
        return A.Compose(
            ops, keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=seed
        )


def is_deterministic(chain: Chain) -> bool:
    return all(kind in DETERMINISTIC for kind, _ in chain)


def task_seed(set_seed: int, image: str, transform: str, copy: int) -> int:
    """The seed of one output: a function of its identity only (not of workers or order)."""
    digest = hashlib.sha256(f"{set_seed}|{image}|{transform}|{copy}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


_PIPELINES: Dict[Tuple[str, int, int, str], Tuple[Any, List[str]]] = {}


def _pipeline(chain: Chain, size_hw: Tuple[int, int], oversize: str):
    """Cached (per process) ``A.Compose`` of a chain for an image size, and its notes."""
    key = (json.dumps(chain, sort_keys=True), size_hw[0], size_hw[1], oversize)
    if key not in _PIPELINES:
        if len(_PIPELINES) > 256:
            _PIPELINES.clear()
        ops, notes = _albu_ops(chain, size_hw, oversize)
        _PIPELINES[key] = (_compose(ops), notes)
    return _PIPELINES[key]


def _apply_chain(image, keypoints, chain: Chain, seed: int, oversize: str, label: str):
    compose, notes = _pipeline(chain, image.shape[:2], oversize)
    seeds = np.random.SeedSequence(seed).generate_state(len(compose.transforms) + 1)
    # One independent stream per step: a rotation and the crop after it must not share draws.
    compose.set_random_seed(int(seeds[0]))
    for t, s in zip(compose.transforms, seeds[1:]):
        t.set_random_seed(int(s))
    # The kit's pixel-index coordinates are albumentations' (see the module docstring): no shift.
    result = compose(image=image, keypoints=np.asarray(keypoints, np.float64))
    kps = np.asarray(result["keypoints"], np.float64).reshape(len(KEYPOINT_NAMES), 2)
    if sum(kind == "hflip" for kind, _ in chain) % 2:
        kps = kps[list(FLIP_INDEX)]
    bad = ~np.isfinite(kps).all(axis=1)
    if bad.any():
        names = ", ".join(KEYPOINT_NAMES[i] for i in np.flatnonzero(bad))
        raise AugmentationError(f"{label}: produced non-finite (NaN) keypoints: {names}")
    # albumentations computes in float32: 1/1000 px is all the precision there is
    return result["image"], np.round(kps, 3), list(notes)
