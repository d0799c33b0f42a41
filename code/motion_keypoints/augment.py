"""Augmentation sets: named albumentations transforms rendered into image folders.

A *set* (declared in ``configs/augmentation.yaml``) is a list of transform names, a number of
copies and a seed. :func:`build_sets` renders every training image through every transform of
the set into ``OUT/<set>/images/<stem>__<transform>__<copy>.jpg`` and writes
``OUT/<set>/annotations.csv`` (the train CSV columns plus ``source_image`` and ``transform``) and
``OUT/<set>/manifest.json``.

Transform names resolve, in this order, to an entry of the config's ``transforms:`` section, a
built-in name (:data:`BUILTIN_TRANSFORMS`), or a parametrised name: ``random_crop_<H>x<W>``,
``center_crop_<H>x<W>`` (height x width, as albumentations) and ``rotate<DEG>``. ``A+B`` applies
A then B. Horizontal flips also swap the left/right keypoint labels (``keypoints.FLIP_INDEX``), so
``left_*`` stays the person's left. Keypoints that leave the frame keep their coordinates.
Coordinates are the kit's continuous pixel coordinates (see :mod:`motion_keypoints.data`),
rounded to 1/1000 px after a transform.

Reproducibility: every output's randomness comes from (set seed, source image, transform, copy)
only, so results do not depend on the number of workers or their order.

Resume: a source image is finished when all its JPEGs exist (each written to a temporary name,
then renamed) and its record ``OUT/<set>/records/<image>.json`` (the keypoints of its outputs,
written after the JPEGs) exists. A re-run skips finished images and rebuilds ``annotations.csv``
from the records. The manifest holds a hash of the resolved set definition, the source CSV and
the library versions; when it differs, the set is rebuilt from scratch.
"""

from __future__ import annotations

import motion_keypoints.compat  # noqa: F401

import argparse
import difflib
import functools
import hashlib
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from . import __version__
from . import data as D
from .keypoints import FLIP_INDEX, KEYPOINT_NAMES
from .utils import atomic_path, atomic_write_text, file_sha256

#: The shipped config (``configs/augmentation.yaml`` of the repository).
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "augmentation.yaml"

#: Bump when the layout or the rendering of a set changes: existing sets are then rebuilt.
AUGMENT_FORMAT = 1

EXTRA_COLUMNS = ("source_image", "transform")

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

#: Named transforms available to every config (its ``transforms:`` section may override them).
BUILTIN_TRANSFORMS: Dict[str, Dict[str, Any]] = {
    "original": {"type": "identity"},
    "center_crop": {"type": "center_crop", "height": 720, "width": 1280},
    "hflip": {"type": "hflip"},
    "rotate45": {"type": "rotate", "limit": 45},
    "shift_scale": {"type": "shift_scale"},
    "brightness_contrast": {"type": "brightness_contrast"},
    "blur": {"type": "blur"},
}
_PATTERNS = (
    (re.compile(r"random_crop_(\d+)x(\d+)"), "random_crop"),
    (re.compile(r"center_crop_(\d+)x(\d+)"), "center_crop"),
    (re.compile(r"rotate(\d+)"), "rotate"),
)
PATTERN_HELP = "random_crop_<H>x<W>, center_crop_<H>x<W>, rotate<DEG>, and A+B compositions"
OVERSIZE_POLICIES = ("pad", "clamp")
_SET_KEYS = {"transforms", "copies", "seed", "description"}
_TOP_KEYS = {"sets", "transforms", "jpeg_quality", "oversize"}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")  # set and transform names become file names

Primitive = Tuple[str, Dict[str, Any]]
Chain = Tuple[Primitive, ...]


class AugmentationError(ValueError):
    """A bad augmentation config, set or transform name, or a transform that failed."""


def _albumentations():
    """Import albumentations without its network version check (workers import it too)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SetDef:
    name: str
    transforms: Tuple[str, ...]
    copies: int
    seed: int
    description: str = ""


@dataclass(frozen=True)
class AugmentationConfig:
    """A loaded ``augmentation.yaml``: named transforms, sets and the rendering options."""

    path: Path
    transforms: Dict[str, Dict[str, Any]]
    sets: Dict[str, SetDef]
    jpeg_quality: int = 95
    oversize: str = "pad"

    def resolve(self, name: str, where: str = "") -> Chain:
        """The primitive chain of a transform name (``A+B`` is A then B)."""
        where = where or f"{self.path}"
        return tuple(self._primitive(part, where) for part in name.split("+"))

    def _primitive(self, part: str, where: str) -> Primitive:
        spec = self.transforms.get(part) or BUILTIN_TRANSFORMS.get(part)
        if spec is None:
            for pattern, kind in _PATTERNS:
                m = pattern.fullmatch(part)
                if m:
                    keys = list(PRIMITIVES[kind])
                    spec = {"type": kind, **dict(zip(keys, map(int, m.groups())))}
                    break
        if spec is None:
            raise AugmentationError(
                f"{where}: unknown transform {part!r}{_suggest(part, self.known_names())}; "
                f"known: {', '.join(self.known_names())} (and {PATTERN_HELP})"
            )
        return _check_primitive(part, spec, where)

    def known_names(self) -> List[str]:
        """Named transforms plus the parametrised names the sets use."""
        used = {p for s in self.sets.values() for t in s.transforms for p in t.split("+")}
        used = {p for p in used if any(pattern.fullmatch(p) for pattern, _ in _PATTERNS)}
        return sorted(set(BUILTIN_TRANSFORMS) | set(self.transforms) | used)

    def get_set(self, name: str) -> SetDef:
        if name not in self.sets:
            raise AugmentationError(
                f"unknown augmentation set {name!r} in {self.path}{_suggest(name, self.sets)}; "
                f"known sets: {', '.join(sorted(self.sets))}"
            )
        return self.sets[name]


def _check_primitive(name: str, spec: Dict[str, Any], where: str) -> Primitive:
    if not isinstance(spec, dict) or "type" not in spec:
        raise AugmentationError(f"{where}: transform {name!r} needs a mapping with a 'type' key")
    kind = spec["type"]
    if kind not in PRIMITIVES:
        raise AugmentationError(
            f"{where}: transform {name!r} has unknown type {kind!r}{_suggest(str(kind), PRIMITIVES)}; "
            f"known types: {', '.join(PRIMITIVES)}"
        )
    defaults = PRIMITIVES[kind]
    unknown = sorted(set(spec) - {"type"} - set(defaults))
    if unknown:
        raise AugmentationError(
            f"{where}: transform {name!r} ({kind}) has unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(defaults) or 'none'}"
        )
    params = {k: spec.get(k, v) for k, v in defaults.items()}
    missing = [k for k, v in params.items() if v is None]
    if missing:
        raise AugmentationError(f"{where}: transform {name!r} ({kind}) needs {', '.join(missing)}")
    limit = params.get("limit", 1)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit <= 180:
        raise AugmentationError(
            f"{where}: transform {name!r}: limit must be an angle in (0, 180] degrees, got {limit!r}"
        )
    for key in ("height", "width"):
        if key in params and (not isinstance(params[key], int) or params[key] < 1):
            raise AugmentationError(
                f"{where}: transform {name!r}: {key} must be a positive integer, got {params[key]!r}"
            )
    primitive = (kind, params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _albu_ops((primitive,), (params.get("height", 1), params.get("width", 1)), "pad")
    except (ValueError, TypeError, UserWarning) as exc:
        detail = str(exc).replace("\n", " ")
        raise AugmentationError(f"{where}: transform {name!r} ({kind}): {detail}") from None
    return primitive


def _fail(path: Path, key: str, message: str):
    raise AugmentationError(f"{path}: {key}: {message}")


def load_augmentation_config(path=DEFAULT_CONFIG) -> AugmentationConfig:
    """Load and check an augmentation config: every error names the file and the key."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise AugmentationError(f"augmentation config {path} does not exist (see configs/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise AugmentationError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("sets"), dict) or not raw["sets"]:
        raise AugmentationError(f"{path}: needs a top-level 'sets:' mapping of set name -> set")
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        _fail(
            path, unknown[0], f"unknown key; allowed top-level keys: {', '.join(sorted(_TOP_KEYS))}"
        )
    quality = raw.get("jpeg_quality", 95)
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        _fail(path, "jpeg_quality", f"must be an integer in 1..100, got {quality!r}")
    oversize = raw.get("oversize", "pad")
    if oversize not in OVERSIZE_POLICIES:
        _fail(path, "oversize", f"must be one of {', '.join(OVERSIZE_POLICIES)}, got {oversize!r}")
    transforms = raw.get("transforms") or {}
    if not isinstance(transforms, dict):
        _fail(path, "transforms", "must be a mapping of transform name -> {type: ..., params}")

    sets: Dict[str, SetDef] = {}
    for name, body in raw["sets"].items():
        key = f"sets.{name}"
        if not _NAME.fullmatch(str(name)):
            _fail(path, key, "set names may use letters, digits, '_', '-' and '.' only")
        if not isinstance(body, dict):
            _fail(path, key, "must be a mapping with transforms, copies and seed")
        bad = sorted(set(body) - _SET_KEYS)
        if bad:
            _fail(path, f"{key}.{bad[0]}", f"unknown key; allowed: {', '.join(sorted(_SET_KEYS))}")
        missing = sorted({"transforms", "copies", "seed"} - set(body))
        if missing:
            _fail(path, key, f"missing {', '.join(missing)}")
        names = body["transforms"]
        if not isinstance(names, list) or not names or not all(isinstance(t, str) for t in names):
            _fail(path, f"{key}.transforms", "must be a non-empty list of transform names")
        dupes = sorted({t for t in names if names.count(t) > 1})
        if dupes:
            _fail(path, f"{key}.transforms", f"lists {', '.join(dupes)} more than once")
        copies, seed = body["copies"], body["seed"]
        if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
            _fail(path, f"{key}.copies", f"must be a positive integer, got {copies!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            _fail(path, f"{key}.seed", f"must be an integer, got {seed!r}")
        sets[str(name)] = SetDef(
            str(name), tuple(names), copies, seed, str(body.get("description", ""))
        )

    config = AugmentationConfig(
        path, {str(k): v for k, v in transforms.items()}, sets, quality, oversize
    )
    for name in config.transforms:
        if not _NAME.fullmatch(name):
            _fail(
                path,
                f"transforms.{name}",
                "transform names may use letters, digits, '_', "
                "'-' and '.' only ('+' joins names in sets)",
            )
        config.resolve(name, where=f"{path}: transforms.{name}")
    for s in sets.values():
        for i, t in enumerate(s.transforms):
            config.resolve(t, where=f"{path}: sets.{s.name}.transforms[{i}]")
    return config


# --------------------------------------------------------------------------- transforms


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
            matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
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
            out[:, :2] = keypoints[:, :2] @ matrix[:, :2].T + matrix[:, 2]
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
            ops.append(A.HorizontalFlip(p=1.0))
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


def transform_dict(
    config: AugmentationConfig | None = None,
    image_size: Tuple[int, int] = (1920, 1080),
    fuse: bool = True,
) -> Dict[str, Any]:
    """Every named transform of a config (built-ins, its ``transforms:`` section and the names
    its sets use) as an ``A.Compose`` with keypoints, for a ``(width, height)`` image.

    Flips mirror x only here; :func:`augment_image` also swaps the left/right labels.
    ``fuse=False`` keeps a rotation and the crop after it as two transforms (plain albumentations).
    """
    config = config or load_augmentation_config()
    width, height = image_size
    out = {}
    names = config.known_names() + [t for s in config.sets.values() for t in s.transforms]
    for name in dict.fromkeys(names):
        ops, _ = _albu_ops(config.resolve(name), (height, width), config.oversize, fuse)
        out[name] = _compose(ops)
    return out


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
    # The kit's coordinates are continuous (the image spans [0, W]); albumentations works in
    # pixel indices (pixel i is centred at i): shift by half a pixel on the way in and out.
    result = compose(image=image, keypoints=np.asarray(keypoints, np.float64) - 0.5)
    kps = np.asarray(result["keypoints"], np.float64).reshape(len(KEYPOINT_NAMES), 2) + 0.5
    if sum(kind == "hflip" for kind, _ in chain) % 2:
        kps = kps[list(FLIP_INDEX)]
    bad = ~np.isfinite(kps).all(axis=1)
    if bad.any():
        names = ", ".join(KEYPOINT_NAMES[i] for i in np.flatnonzero(bad))
        raise AugmentationError(f"{label}: produced non-finite (NaN) keypoints: {names}")
    # albumentations computes in float32: 1/1000 px is all the precision there is
    return result["image"], np.round(kps, 3), list(notes)


def augment_image(
    image: np.ndarray,
    keypoints,
    transform: str,
    seed: int = 0,
    config: AugmentationConfig | None = None,
    label: str = "image",
):
    """Apply one named transform: ``(image, keypoints (K, 2), notes)``.

    Keypoints follow the pixels (a flip also swaps the left/right labels); keypoints that leave
    the frame keep their coordinates. Raises :class:`AugmentationError` on NaN keypoints.
    """
    config = config or load_augmentation_config()
    chain = config.resolve(transform)
    return _apply_chain(
        image, keypoints, chain, seed, config.oversize, f"{label}: transform {transform!r}"
    )


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Output:
    image: str
    transform: str
    copy: int
    chain: Chain
    seed: int


@dataclass(frozen=True)
class _Task:
    source: str
    image: str
    keypoints: Tuple[Tuple[float, float], ...]
    outputs: Tuple[_Output, ...]
    images_dir: str
    records_dir: str
    jpeg_quality: int
    oversize: str


def _write_jpeg(path: Path, image, quality: int) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {path} (disk full or unwritable folder?)")


def _render_source(task: _Task) -> dict:
    """Render all outputs of one source image, then write its record. Runs in a worker."""
    import cv2

    image = None
    outputs = []
    for out in task.outputs:
        dst = Path(task.images_dir) / out.image
        if all(kind == "identity" for kind, _ in out.chain) and task.source.lower().endswith(
            (".jpg", ".jpeg")
        ):
            with atomic_path(dst) as tmp:
                shutil.copyfile(task.source, tmp)
            kps, notes = np.asarray(task.keypoints, np.float64), []
        else:
            if image is None:
                image = cv2.imread(task.source, cv2.IMREAD_COLOR)
                if image is None:
                    raise AugmentationError(f"{task.source}: cannot be decoded as an image")
            label = f"{task.source}: transform {out.transform!r} (copy {out.copy})"
            img, kps, notes = _apply_chain(
                image, task.keypoints, out.chain, out.seed, task.oversize, label
            )
            _write_jpeg(dst, img, task.jpeg_quality)
        outputs.append(
            {
                "image": out.image,
                "transform": out.transform,
                "copy": out.copy,
                "keypoints": kps.tolist(),
                "notes": notes,
            }
        )
    record = {"source_image": task.image, "outputs": outputs}
    atomic_write_text(Path(task.records_dir) / f"{task.image}.json", json.dumps(record))
    return record


def _init_worker() -> None:
    """One image per process: OpenCV runs single-threaded. 0 (not 1) also keeps a forked child
    away from the parent's OpenCV thread pool, which it inherits without its threads."""
    import cv2

    cv2.setNumThreads(0)


def _read_record(path: Path, outputs: Sequence[_Output], images_dir: Path) -> dict | None:
    """The record of a finished source image, or None when it must be (re)rendered."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = [o["image"] for o in record.get("outputs", [])]
    if names != [o.image for o in outputs]:
        return None
    if not all((images_dir / n).is_file() for n in names):
        return None
    return record


def _versions() -> Dict[str, str]:
    import cv2

    return {
        "motion_keypoints": __version__,
        "albumentations": _albumentations().__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _definition(config: AugmentationConfig, set_def: SetDef) -> dict:
    return {
        "name": set_def.name,
        "description": set_def.description,
        "transforms": list(set_def.transforms),
        "resolved": {
            t: [{"type": k, **p} for k, p in config.resolve(t)] for t in set_def.transforms
        },
        "copies": set_def.copies,
        "seed": set_def.seed,
        "jpeg_quality": config.jpeg_quality,
        "oversize": config.oversize,
    }


def _set_hash(definition: dict, csv_sha256: str, versions: Dict[str, str]) -> str:
    payload = {
        "format": AUGMENT_FORMAT,
        "definition": definition,
        "source_csv_sha256": csv_sha256,
        "versions": {k: versions[k] for k in ("motion_keypoints", "albumentations", "opencv")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _plan(df, set_def: SetDef, config: AugmentationConfig) -> List[Tuple[str, List[_Output]]]:
    """Per source image (CSV order): its outputs in set order, then copy order."""
    chains = {t: config.resolve(t) for t in set_def.transforms}
    plan = []
    for image in df["image"]:
        stem = Path(image).stem
        outs = []
        for t in set_def.transforms:
            copies = 1 if is_deterministic(chains[t]) else set_def.copies
            for c in range(copies):
                seed = task_seed(set_def.seed, image, t, c)
                outs.append(_Output(f"{stem}__{t}__{c}.jpg", t, c, chains[t], seed))
        plan.append((image, outs))
    return plan


def _reset_set(set_dir: Path) -> None:
    for sub in ("images", "records"):
        if (set_dir / sub).exists():
            shutil.rmtree(set_dir / sub)
    for name in ("annotations.csv", "manifest.json"):
        (set_dir / name).unlink(missing_ok=True)


def _stale_check(set_dir: Path, expected_hash: str) -> str | None:
    """Why an existing set folder cannot be resumed (None: it can, or there is nothing)."""
    manifest = set_dir / "manifest.json"
    if manifest.is_file():
        try:
            old = json.loads(manifest.read_text()).get("hash")
        except ValueError:
            return "its manifest.json is unreadable"
        if old != expected_hash:
            return (
                "the set definition, the source CSV or the library versions changed "
                "(manifest hash differs)"
            )
        return None
    if any((set_dir / sub).exists() for sub in ("images", "records", "annotations.csv")):
        return "it has outputs but no manifest.json"
    return None


def _run_tasks(tasks: List[_Task], workers: int, name: str, progress: bool) -> List[dict]:
    from tqdm import tqdm

    records = []
    total = sum(len(t.outputs) for t in tasks)
    progress = progress and total > 0
    if workers <= 1 or len(tasks) <= 1:
        with tqdm(total=total, unit="img", desc=name, disable=not progress) as bar:
            for task in tasks:
                records.append(_render_source(task))
                bar.update(len(task.outputs))
        return records
    # fork starts workers at once (the parent has albumentations loaded); elsewhere spawn.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
        with tqdm(total=total, unit="img", desc=name, disable=not progress) as bar:
            for record in pool.imap_unordered(_render_source, tasks, chunksize=1):
                records.append(record)
                bar.update(len(record["outputs"]))
    return records


def _summarise_notes(records: Iterable[dict]) -> Dict[str, Dict[str, int]]:
    adjusted: Dict[str, Dict[str, int]] = {}
    for record in records:
        for out in record["outputs"]:
            for note in out["notes"]:
                per = adjusted.setdefault(out["transform"], {})
                per[note] = per.get(note, 0) + 1
    return {t: dict(sorted(v.items())) for t, v in sorted(adjusted.items())}


def build_set(
    data_root,
    out,
    set_name: str,
    config: AugmentationConfig,
    df,
    csv_sha256: str,
    workers: int,
    limit: int | None = None,
    progress: bool = True,
) -> dict:
    """Render one set of an already validated data root; see :func:`build_sets`."""
    t0 = time.perf_counter()
    paths = D.DataPaths.from_root(data_root)
    set_def = config.get_set(set_name)
    set_dir = Path(out) / set_name
    images_dir, records_dir = set_dir / "images", set_dir / "records"
    versions = _versions()
    definition = _definition(config, set_def)
    digest = _set_hash(definition, csv_sha256, versions)

    reason = _stale_check(set_dir, digest)
    if reason:
        print(f"{set_name}: {reason}: rebuilding the set from scratch", flush=True)
        _reset_set(set_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    records_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "set": set_name,
        "status": "running",
        "hash": digest,
        "definition": definition,
        "source": {
            "data_root": str(paths.root),
            "train_csv": str(paths.train_csv),
            "sha256": csv_sha256,
        },
        "limit": limit,
        "versions": versions,
    }
    atomic_write_text(set_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    for leftover in [*images_dir.glob(".*.tmp*"), *records_dir.glob(".*.tmp*")]:
        leftover.unlink()

    rows = df if limit is None else df.iloc[:limit]
    kps = D.keypoints_array(rows)
    plan = _plan(rows, set_def, config)
    records: Dict[str, dict] = {}
    tasks: List[_Task] = []
    for (image, outs), pts in zip(plan, kps):
        record = _read_record(records_dir / f"{image}.json", outs, images_dir)
        if record is not None:
            records[image] = record
            continue
        tasks.append(
            _Task(
                str(paths.train_images / image),
                image,
                tuple(map(tuple, pts.tolist())),
                tuple(outs),
                str(images_dir),
                str(records_dir),
                config.jpeg_quality,
                config.oversize,
            )
        )
    t_render = time.perf_counter()
    for record in _run_tasks(tasks, workers, set_name, progress):
        records[record["source_image"]] = record
    render_seconds = time.perf_counter() - t_render

    expected_images = {o.image for _, outs in plan for o in outs}
    expected_records = {f"{image}.json" for image, _ in plan}
    stale = [p for p in images_dir.iterdir() if p.name not in expected_images]
    stale += [p for p in records_dir.iterdir() if p.name not in expected_records]
    for p in stale:
        p.unlink()

    rows_out = [
        (records[image]["source_image"], o) for image, _ in plan for o in records[image]["outputs"]
    ]
    frame = D.keypoints_frame(
        [o["image"] for _, o in rows_out],
        np.array([o["keypoints"] for _, o in rows_out], np.float64).reshape(
            len(rows_out), len(KEYPOINT_NAMES), 2
        ),
        extra={
            "source_image": [source for source, _ in rows_out],
            "transform": [o["transform"] for _, o in rows_out],
        },
    )
    D.write_keypoint_csv(frame, set_dir / "annotations.csv")
    adjusted = _summarise_notes(records[image] for image, _ in plan)
    wall = time.perf_counter() - t0
    n_rendered = sum(len(t.outputs) for t in tasks)
    summary = {
        "set": set_name,
        "dir": str(set_dir),
        "source_images": len(plan),
        "outputs": len(rows_out),
        "rendered": n_rendered,
        "skipped": len(rows_out) - n_rendered,
        "stale_removed": len(stale),
        "rebuilt": reason,
        "workers": workers,
        "wall_seconds": round(wall, 3),
        "render_seconds": round(render_seconds, 3),
        "images_per_second": round(n_rendered / render_seconds, 2) if n_rendered else None,
        "adjusted": adjusted,
    }
    counts = ("source_images", "outputs", "rendered", "skipped", "stale_removed")
    manifest.update(
        status="complete",
        counts={k: summary[k] for k in counts},
        adjusted=adjusted,
        workers=workers,
        wall_seconds=summary["wall_seconds"],
        render_seconds=summary["render_seconds"],
    )
    atomic_write_text(set_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return summary


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def build_sets(
    data_root,
    out="augmented",
    set_names: Sequence[str] = ("demo",),
    workers: int | None = None,
    limit: int | None = None,
    config=DEFAULT_CONFIG,
    progress: bool = True,
) -> List[dict]:
    """Validate the data root, then render each named set into ``out/<set>``.

    Returns one summary dict per set (counts, ``rendered``/``skipped``, wall time, adjustments).
    Unknown set names fail before any work, with the closest known name.
    """
    if not isinstance(config, AugmentationConfig):
        config = load_augmentation_config(config)
    for name in set_names:
        config.get_set(name)
    if limit is not None and limit < 1:
        raise AugmentationError(f"--limit must be a positive number of images, got {limit}")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise AugmentationError(f"--workers must be at least 1, got {workers}")
    paths = D.DataPaths.from_root(data_root)
    D.validate_data_root(paths.root, splits=("train",))
    df = D.load_train_df(paths.root)  # label_overrides.csv applied
    stems = [Path(i).stem for i in df["image"]]
    clash = sorted(s for s, n in Counter(stems).items() if n > 1)
    if clash:
        raise AugmentationError(
            f"{paths.train_csv}: images {', '.join(clash[:5])} share a file stem with another "
            "image; rename them so that output names stay unique"
        )
    # The labels the set is made from: the CSV and, when present, its overrides.
    csv_sha256 = file_sha256(paths.train_csv)
    if paths.overrides.is_file():
        csv_sha256 = f"{csv_sha256}+{file_sha256(paths.overrides)}"
    summaries = []
    for name in set_names:
        s = build_set(paths.root, out, name, config, df, csv_sha256, workers, limit, progress)
        rate = f", {s['images_per_second']:.1f} img/s" if s["images_per_second"] else ""
        n_adjusted = sum(sum(v.values()) for v in s["adjusted"].values())
        adjusted = (
            f"; {n_adjusted} outputs adjusted (crop larger than the image, see manifest.json)"
            if n_adjusted
            else ""
        )
        print(
            f"{name}: {s['outputs']} images from {s['source_images']} sources "
            f"({s['rendered']} rendered, {s['skipped']} already done) in {s['wall_seconds']:.1f}s "
            f"with {workers} worker(s){rate} -> {s['dir']}{adjusted}",
            flush=True,
        )
        summaries.append(s)
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="augmentation.py",
        description="Render augmentation sets (configs/augmentation.yaml) from the training images.",
    )
    parser.add_argument("--data-root", required=True, help="data folder in the competition layout")
    parser.add_argument("--out", default="augmented", help="output folder (one sub-folder per set)")
    parser.add_argument(
        "--sets", required=True, help="comma-separated set names, e.g. demo,reference8"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first K training images")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="augmentation config YAML")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(n.strip() for n in args.sets.split(",") if n.strip()))
    if not names:
        parser.error("--sets needs at least one set name, e.g. --sets demo")
    try:
        build_sets(
            args.data_root,
            args.out,
            names,
            args.workers,
            args.limit,
            args.config,
            progress=not args.no_progress,
        )
    except (AugmentationError, D.DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
