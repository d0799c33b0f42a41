"""Augmentation configs (``configs/augmentation.yaml``): named transforms and sets, loaded and
checked, every error naming the file and the key.

The default config is ``configs/augmentation.yaml`` in the current folder when there is one (the
user-facing file at the repository root, which the README's commands are run from), else the copy
packaged with the kit (:func:`default_config_path`).
"""
from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

from .ops import (
    PRIMITIVES,
    AugmentationError,
    Chain,
    Primitive,
    _albu_ops,
)

#: The user-facing config, relative to the folder the commands run from.
USER_CONFIG = Path("configs") / "augmentation.yaml"


def default_config_path() -> Path:
    """``configs/augmentation.yaml`` of the current folder when it exists, else the packaged copy
    (the same file, shipped as package data so an installed kit works from any folder)."""
    if USER_CONFIG.is_file():
        return USER_CONFIG
    from importlib import resources

    return Path(str(resources.files("motion_keypoints.augment") / "augmentation.yaml"))

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


def load_augmentation_config(path=None) -> AugmentationConfig:
    """Load and check an augmentation config: every error names the file and the key."""
    import yaml

    path = default_config_path() if path is None else Path(path)
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
