"""The model-family registry: the ONE place that names the kit's model families.

Each family declares, in one :func:`register` call at the bottom of this module:

- ``name`` — what ``run_info.json``/``run.json`` record as ``"family"``;
- ``meta_archs`` — the detectron2 ``MODEL.META_ARCHITECTURE`` names of its configs;
- entry points, each a ``"module:attribute"`` string (or the object itself), loaded only when
  asked for (:meth:`Family.load`), like a package's entry points: ``add_config`` (its config keys,
  added to every config so any config file loads), ``config_rules`` (the rules of those keys,
  always checked), ``model_rules`` (rules checked only for the family's own configs),
  ``trainer`` (``train(cfg, resume, eval_only) -> results``), ``predictor`` (``predict_run``)
  and ``video_member`` (the ``motion.video`` member class).

The rest of the kit asks this module: :func:`family_of` (a config's family), :func:`family_of_run`
(a run folder's, through :func:`motion_keypoints.io.runs.read_run_family`), :func:`family_names`,
:func:`train_family`, :func:`predictor`, :func:`video_member`. Importing it imports no family
(and no torch or detectron2): the families sit on top of :mod:`motion_keypoints.engine`, and
the engine reaches them only through these entry points. See ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..errors import UserError
from ..io.runs import RUN_INFO_FILE, RunError, read_run_family

EntryPoint = Union[str, Callable, Dict, None]

#: The family of a config whose meta-architecture no family declares (detectron2's own
#: meta-architectures: GeneralizedRCNN and friends).
DEFAULT_FAMILY = "rcnn"

ENTRY_POINTS = ("add_config", "config_rules", "model_rules", "trainer", "predictor",
                "video_member")


@dataclass(frozen=True)
class Family:
    """One model family: its name, meta-architectures and entry points (see the module)."""

    name: str
    meta_archs: Tuple[str, ...]
    add_config: EntryPoint = None
    config_rules: EntryPoint = None
    model_rules: EntryPoint = None
    trainer: EntryPoint = None
    predictor: EntryPoint = None
    video_member: EntryPoint = None
    #: Whether its runs' predictions give person boxes to top-down families (``--boxes-from``).
    person_boxes: bool = False
    description: str = ""

    def load(self, part: str) -> Any:
        """The entry point ``part`` (one of :data:`ENTRY_POINTS`), imported on first use; None
        where the family declares none."""
        if part not in ENTRY_POINTS:
            raise ValueError(f"unknown entry point {part!r}; one of {', '.join(ENTRY_POINTS)}")
        return resolve(getattr(self, part))


class FamilyError(UserError, ValueError):
    """An unknown family name, or a family that lacks what is asked of it."""


def resolve(entry: EntryPoint) -> Any:
    """``"package.module:attr"`` -> that attribute (imported now); anything else as it is."""
    if not isinstance(entry, str):
        return entry
    module, _, attr = entry.partition(":")
    obj = importlib.import_module(module)
    for name in filter(None, attr.split(".")):
        obj = getattr(obj, name)
    return obj


_FAMILIES: Dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` (a name or meta-architecture already taken is a ValueError)."""
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered")
    taken = {a: f.name for f in _FAMILIES.values() for a in f.meta_archs}
    clash = [a for a in family.meta_archs if a in taken]
    if clash:
        raise ValueError(f"meta-architecture {clash[0]!r} already belongs to family "
                         f"{taken[clash[0]]!r}")
    _FAMILIES[family.name] = family
    return family


def unregister(name: str) -> Optional[Family]:
    """Remove a family (tests register and remove their own)."""
    return _FAMILIES.pop(name, None)


def families() -> List[Family]:
    """The registered families, in registration order."""
    return list(_FAMILIES.values())


def family_names() -> Tuple[str, ...]:
    """The registered family names, in registration order (``("rcnn", "heatmap")``)."""
    return tuple(_FAMILIES)


def get(name: str) -> Family:
    """The family called ``name``; FamilyError naming the known ones otherwise."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise FamilyError(f"unknown model family {name!r} ({_known()})") from None


def _known() -> str:
    names = list(_FAMILIES)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def family_of_arch(meta_arch: str) -> str:
    """The family of a detectron2 meta-architecture name (:data:`DEFAULT_FAMILY` for one that
    no family declares)."""
    for fam in _FAMILIES.values():
        if meta_arch in fam.meta_archs:
            return fam.name
    return DEFAULT_FAMILY


def family_of(cfg) -> str:
    """The family of a config, by its ``MODEL.META_ARCHITECTURE``."""
    return family_of_arch(str(cfg.MODEL.META_ARCHITECTURE))


def family_meta_archs(exclude: str = DEFAULT_FAMILY) -> List[str]:
    """The meta-architectures the families register themselves (not detectron2's own)."""
    return [a for f in _FAMILIES.values() if f.name != exclude for a in f.meta_archs]


def box_families() -> Tuple[str, ...]:
    """The families whose runs' predictions give person boxes (``--boxes-from``)."""
    return tuple(f.name for f in _FAMILIES.values() if f.person_boxes)


def family_of_run(run) -> str:
    """The family of a trained run folder (its ``run_info.json``); an unknown name is a
    one-line RunError naming the known ones."""
    name = read_run_family(run)
    if name not in _FAMILIES:
        from pathlib import Path

        raise RunError(f"{Path(run) / RUN_INFO_FILE}: unknown family {name!r} ({_known()})")
    return name


def _part(name: str, part: str) -> Any:
    obj = get(name).load(part)
    if obj is None:
        raise FamilyError(f"model family {name!r} has no {part.replace('_', ' ')}")
    return obj


def trainer(name: str) -> Callable:
    """``train(cfg, resume=False, eval_only=False) -> results`` of a family."""
    return _part(name, "trainer")


def predictor(name: str) -> Callable:
    """``predict_run(run, data_root, split, ...) -> summary`` of a family."""
    return _part(name, "predictor")


def video_member(name: str) -> Any:
    """The video member class of a family (``motion.video``: ``Member(run, checkpoint,
    flip_tta, opts)``; ``needs_boxes`` members are given the reference member's boxes)."""
    return _part(name, "video_member")


def train_family(cfg, resume: bool = False, eval_only: bool = False) -> dict:
    """Train (or only evaluate) one run with its family's trainer; returns the validation results."""
    return trainer(family_of(cfg))(cfg, resume=resume, eval_only=eval_only)


def config_adders() -> List[Callable]:
    """Every family's ``add_config`` (each config carries every family's keys, so a config file
    or a run's config.yaml of any family loads)."""
    return [a for a in (f.load("add_config") for f in _FAMILIES.values()) if a is not None]


def config_rules(cfg_family: str) -> dict:
    """The key rules of every family's own keys, plus the model rules of ``cfg_family``."""
    rules: dict = {}
    for fam in _FAMILIES.values():
        rules.update(fam.load("config_rules") or {})
    if cfg_family in _FAMILIES:
        rules.update(get(cfg_family).load("model_rules") or {})
    return rules


# ----------------------------------------------------------------------------- the families
_PKG = "motion_keypoints"

register(Family(
    "rcnn", ("GeneralizedRCNN",), description="Keypoint R-CNN (detectron2)", person_boxes=True,
    model_rules=f"{_PKG}.models.config_check:RCNN_KEY_RULES",
    trainer=f"{_PKG}.models.rcnn.trainer:train",
    predictor=f"{_PKG}.models.rcnn.predictor:predict_run",
    video_member=f"{_PKG}.motion.video:RcnnMember",
))
register(Family(
    "heatmap", ("TopDownHeatmap",), description="top-down HRNet heatmaps on person boxes",
    add_config=f"{_PKG}.models.heatmap.config:add_heatmap_config",
    config_rules=f"{_PKG}.models.heatmap.config:HEATMAP_KEY_RULES",
    trainer=f"{_PKG}.models.heatmap.trainer:train",
    predictor=f"{_PKG}.models.heatmap.predictor:predict_run",
    video_member=f"{_PKG}.motion.video:HeatmapMember",
))
