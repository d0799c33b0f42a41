"""The kit's config keys and loading, following detectron2's order:
``get_cfg() -> add_kit_config -> merge_from_file -> merge_from_list(opts) -> checks -> freeze``.

Config files may inherit detectron2's packaged model-zoo configs with
``_BASE_: "model_zoo://COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml"``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, Sequence

from detectron2.config import CfgNode as _D2CfgNode
from detectron2.config import get_cfg

from ..errors import UserError
from ..io.images import IMAGE_CHECK_LEVELS, image_level
from ..meta import DEFAULT_OKS_SIGMAS, KEYPOINT_NAMES, metadata_problems
from ..models import registry
from ..models.config_check import (
    close_names,
    flag,
    format_problems,
    integer,
    number,
    one_of,
    raised_in_config_library,
    sequence,
    text,
    yaml_problem,
)

ZOO_PREFIX = "model_zoo://"
DEFAULT_OUTPUT_DIR = "./output"  # detectron2's default; replaced by outputs/<config-stem>


class CfgNode(_D2CfgNode):
    """detectron2's CfgNode that also resolves ``model_zoo://`` bases to the packaged YAMLs."""

    @classmethod
    def load_yaml_with_base(cls, filename, allow_unsafe: bool = False):
        name = str(filename)
        if ZOO_PREFIX in name:
            from detectron2 import model_zoo

            zoo_name = name.split(ZOO_PREFIX, 1)[1]
            try:
                filename = model_zoo.get_config_file(zoo_name)
            except RuntimeError as exc:
                raise FileNotFoundError(
                    f"model-zoo config {zoo_name!r} is not packaged with this detectron2; "
                    "re-run `bash scripts/setup_env.sh` (it packages the model-zoo YAMLs)"
                ) from exc
        cfg = super().load_yaml_with_base(filename, allow_unsafe=allow_unsafe)
        return legacy_check_images(cfg)

    def merge_from_list(self, cfg_list):
        """detectron2's merge_from_list that also takes an integer for a float key
        (``DATA.VAL_FRACTION 0``), as a YAML file would, and true/false for DATA.CHECK_IMAGES."""
        opts = coerce_int_for_float(self, cfg_list)
        for i in range(0, len(opts) - 1, 2):
            if str(opts[i]) == "DATA.CHECK_IMAGES" and str(opts[i + 1]).lower() in ("true", "false"):
                opts[i + 1] = image_level(str(opts[i + 1]).lower() == "true")
        return super().merge_from_list(opts)


def legacy_check_images(cfg: dict) -> dict:
    """``DATA.CHECK_IMAGES: true/false`` (configs and run folders written before the levels) as
    the level it meant: ``decode`` / ``exists``."""
    data = cfg.get("DATA") if isinstance(cfg, dict) else None
    if isinstance(data, dict) and isinstance(data.get("CHECK_IMAGES"), bool):
        data["CHECK_IMAGES"] = image_level(data["CHECK_IMAGES"])
    return cfg


def coerce_int_for_float(cfg, opts: Sequence[str]) -> list:
    """``KEY VALUE`` pairs with an integer literal given for a float key rewritten as a float
    literal (yacs refuses int -> float); everything else is passed on unchanged."""
    import ast

    out = list(opts)
    for i in range(0, len(out) - 1, 2):
        node = cfg
        for part in str(out[i]).split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if isinstance(node, float) and not isinstance(node, bool):
            try:
                value = ast.literal_eval(str(out[i + 1]))
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                out[i + 1] = repr(float(value))
    return out


def add_kit_config(cfg) -> None:
    """Add the kit's keys, each with a default, and the keypoint defaults of this task."""
    _C = cfg
    _C.DATA = type(cfg)()
    # Data folder in the competition layout (train_df.csv, sample_submission.csv, images/...).
    _C.DATA.ROOT = "outputs/synthetic"
    # Augmentation set to train on (a folder under DATA.AUGMENTED_DIR built by
    # code/augmentation.py); "" trains on the original images of DATA.ROOT.
    _C.DATA.AUG_SET = ""
    # Where the augmentation sets live.
    _C.DATA.AUGMENTED_DIR = "augmented"
    # Fraction of the original training images held out for validation (grouped by clip/camera).
    _C.DATA.VAL_FRACTION = 0.1
    # Seed of the validation split: runs with the same seed and data share the same split.
    _C.DATA.SPLIT_SEED = 0
    # "none": validation groups drawn from all images; "camera": drawn per camera (subject +
    # camera, as the 2nd-place solution), from every camera with two or more groups, never a
    # camera's last group, so that no viewpoint is left out of training.
    _C.DATA.SPLIT_STRATIFY = "none"
    # Box around the keypoints: their extent grown by this fraction on each side.
    _C.DATA.BBOX_MARGIN = 0.1
    # How training checks the images before it starts: "header" (size and format read from each
    # file's header; truncated JPEGs caught), "decode" (every image decoded: also catches corrupt
    # data; slow on big folders, as check_data.py does) or "exists". true/false in configs written
    # before the levels mean "decode"/"exists".
    _C.DATA.CHECK_IMAGES = "header"
    # Accept keypoints more than half the image size outside their image (else an error naming
    # file, line and column; points just outside stay warnings with visibility 0).
    _C.DATA.ALLOW_FAR_POINTS = False

    _C.TRACKING = type(cfg)()
    # Log to Neptune (also enabled by MOTION_KEYPOINTS_NEPTUNE=1). Token and project come from
    # NEPTUNE_API_TOKEN / NEPTUNE_PROJECT; without them the run is kept offline.
    _C.TRACKING.NEPTUNE = False
    # Tags added to the Neptune run.
    _C.TRACKING.TAGS = []
    # Log scalars every this many iterations.
    _C.TRACKING.PERIOD = 20

    # Validation metric that picks model_best.pth ("min" mode).
    _C.TEST.BEST_METRIC = "keypoints_rmse/rmse"

    # Keypoints of this task: one class (person); counts and OKS sigmas derive from meta.py.
    _C.MODEL.KEYPOINT_ON = True
    _C.MODEL.ROI_HEADS.NUM_CLASSES = 1
    _C.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS = len(KEYPOINT_NAMES)
    _C.TEST.KEYPOINT_OKS_SIGMAS = list(DEFAULT_OKS_SIGMAS)


#: The rule of each key above (models/config_check.py checks them in setup_cfg, before any work);
#: the keypoint count and OKS sigmas are checked against meta.py by check_config.
KIT_KEY_RULES = {
    "DATA.ROOT": text(nonempty=True),
    "DATA.AUG_SET": text(),
    "DATA.AUGMENTED_DIR": text(nonempty=True),
    "DATA.VAL_FRACTION": number(0, 1, hi_open=True),
    "DATA.SPLIT_SEED": integer(0, 2**32 - 1),
    "DATA.SPLIT_STRATIFY": one_of(("none", "camera"), what="split stratification"),
    "DATA.BBOX_MARGIN": number(0),
    "DATA.CHECK_IMAGES": one_of(IMAGE_CHECK_LEVELS, what="check level"),
    "DATA.ALLOW_FAR_POINTS": flag(),
    "TRACKING.NEPTUNE": flag(),
    "TRACKING.TAGS": sequence(text()),
    "TRACKING.PERIOD": integer(1),
    "TEST.BEST_METRIC": text(nonempty=True),
    "MODEL.KEYPOINT_ON": flag(),
    "MODEL.ROI_HEADS.NUM_CLASSES": integer(1, 1),
    "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS": integer(1),
    "TEST.KEYPOINT_OKS_SIGMAS": sequence(number(0, lo_open=True)),
}


class ConfigError(UserError, ValueError):
    """A config that cannot work for this task; the message says how to fix it."""


def check_config(cfg, require_device: bool = False) -> None:
    """Fail at config time, with the fix: every key against its rule (the kit's tables, the
    detectron2 keys the kit depends on and their registries), the device, the weights file,
    then whether the config can match this keypoint set (:mod:`..config_check`)."""
    from ..models.config_check import (
        DETECTRON2_KEY_RULES,
        device_problem,
        rule_problems,
        weights_problem,
    )

    rules = {**DETECTRON2_KEY_RULES, **KIT_KEY_RULES}
    problems = rule_problems(cfg, {"MODEL.META_ARCHITECTURE": rules["MODEL.META_ARCHITECTURE"]})
    # every family's own keys; the model rules of the config's family once its name is valid
    rules.update(registry.config_rules(None if problems else registry.family_of(cfg)))
    problems = problems or rule_problems(cfg, rules)
    problems += [p for p in (device_problem(cfg.MODEL.DEVICE, require_device),
                             weights_problem(cfg.MODEL.WEIGHTS)) if p]
    if problems:  # values first: the checks below assume well-typed values
        raise ConfigError(format_problems(problems))
    n = len(KEYPOINT_NAMES)
    if cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS != n:
        problems.append(
            f"MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS is {cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS} "
            f"but the task has {n} keypoints: remove the override or set it to {n}"
        )
    sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    problems += [
        f"TEST.KEYPOINT_OKS_SIGMAS: {p} (default: {n} × 1.0; leave the key unset to use it)"
        for p in metadata_problems(sigmas=sigmas)
        if "sigma" in p
    ]
    if not cfg.MODEL.KEYPOINT_ON:
        problems.append("MODEL.KEYPOINT_ON is False: the kit trains Keypoint R-CNN models")
    if cfg.DATA.SPLIT_STRATIFY not in ("none", "camera"):
        problems.append(f"DATA.SPLIT_STRATIFY must be \"none\" or \"camera\", got "
                        f"{cfg.DATA.SPLIT_STRATIFY!r}")
    if problems:
        raise ConfigError(format_problems(problems))


def _all_keys(cfg, prefix: str = ""):
    for k, v in cfg.items():
        if isinstance(v, dict):
            yield from _all_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def merge_problem(cfg, exc: BaseException, where: str) -> str:
    """One line for an error of yacs/detectron2 merging ``where`` (a config file, or
    ``"override"``) into ``cfg``: the key, what is wrong, the fix."""
    import re

    message = str(exc.args[0]) if exc.args else type(exc).__name__
    unknown = re.match(r"Non-existent (?:config )?key: (\S+)", message)
    if unknown:
        key = unknown.group(1)
        return (f"{where}: unknown config key {key}{close_names(key, list(_all_keys(cfg)))}; "
                "fix its name or remove it (the kit's keys are listed in docs/configs.md)")
    if isinstance(exc, (TypeError, AttributeError)):  # fvcore reading a YAML that is no mapping
        return (f"{where}: not a mapping of config keys (an empty file, or a list at the top); "
                "write KEY: value blocks as the files in configs/ do")
    mismatch = re.search(r"\(<class '([\w.]+)'> vs\. <class '([\w.]+)'>\) with values \((.*) vs\. "
                         r"(.*)\) for config key: (\S+)", message, re.S)
    if mismatch:
        want, _, default, given, key = mismatch.groups()
        if want.endswith("CfgNode"):
            return (f"{where}: {key} is {given!r}: it is a section of keys ({key}: followed by "
                    "indented KEY: value lines), not a value")
        want = {"int": "an integer", "float": "a number", "bool": "True or False",
                "str": "a string", "tuple": "a list", "list": "a list"}.get(want, f"a {want}")
        return f"{where}: {key} is {given!r}: it must be {want}, like its default {default}"
    if "odd length" in message:
        return f"{where}: overrides must be KEY VALUE pairs, and one value is missing"
    return f"{where}: {message}"


def _merge_file(cfg, config_file: str) -> None:
    import yaml

    try:
        cfg.merge_from_file(str(config_file))
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_problem(exc)) from exc
    except (AssertionError, KeyError, ValueError, TypeError, AttributeError) as exc:
        if not raised_in_config_library(exc):
            raise
        raise ConfigError(merge_problem(cfg, exc, str(config_file))) from exc


def _merge_opts(cfg, opts: Sequence[str]) -> None:
    try:
        cfg.merge_from_list(list(opts))
    except (AssertionError, KeyError, ValueError) as exc:
        if not raised_in_config_library(exc):
            raise
        raise ConfigError(merge_problem(cfg, exc, "command-line override")) from exc


def default_output_dir(config_file: Optional[str]) -> str:
    stem = Path(config_file).stem if config_file else "run"
    return os.path.join("outputs", stem)


def setup_cfg(config_file: Optional[str], opts: Sequence[str] = (), freeze: bool = True,
              require_device: bool = False):
    """Build the kit's config: get_cfg -> add_kit_config -> file -> opts -> checks -> freeze.

    Every mistake is a :class:`ConfigError` of one line per problem, raised before any work
    (:func:`check_config`). ``MODEL.DEVICE cuda`` on a machine without a GPU is an error with
    ``require_device`` (training), else a warning and the CPU (predicting with a run trained
    on a GPU)."""
    cfg = CfgNode(get_cfg())
    add_kit_config(cfg)
    for add_family_config in registry.config_adders():  # every family's keys (PointRend style)
        add_family_config(cfg)
    if config_file:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist (see configs/)")
        _merge_file(cfg, config_file)
    _merge_opts(cfg, opts)
    if cfg.OUTPUT_DIR == DEFAULT_OUTPUT_DIR:
        cfg.OUTPUT_DIR = default_output_dir(config_file)
    check_config(cfg, require_device=require_device)
    if cfg.MODEL.DEVICE.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            logging.getLogger("motion_keypoints").warning(
                "MODEL.DEVICE %s but no GPU is available: running on the CPU (slow for the full "
                "configs; configs/tiny-cpu.yaml is made for CPUs)", cfg.MODEL.DEVICE
            )
            cfg.MODEL.DEVICE = "cpu"
    if freeze:
        cfg.freeze()
    return cfg


def schedule_opts(iters: int) -> list:
    """Overrides that scale the solver schedule of a config to ``iters`` iterations: LR steps at
    75 % and 90 %, evaluation at half-way and at the end, four checkpoints."""
    s1, s2 = int(iters * 0.75), int(iters * 0.9)
    steps = f"({s1},{s2})" if 0 < s1 < s2 < iters else "()"
    return [
        "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", steps,
        "SOLVER.WARMUP_ITERS", str(min(50, max(iters // 5, 0))),
        "TEST.EVAL_PERIOD", str(max(iters // 2, 1)),
        "SOLVER.CHECKPOINT_PERIOD", str(max(iters // 4, 1)),
    ]
