"""The whole config checked before any work: detectron2's order ``get_cfg -> add_*_config ->
merge -> checks -> freeze``, this module being the checks (called by
:func:`motion_keypoints.engine.config.setup_cfg`, which every command goes through).

Every problem is one line naming the key and the fix, with a "did you mean" where a close name
exists:

- **values**: each kit key has a rule (type, range, choices) in a declarative table beside its
  default and comment (``KIT_KEY_RULES`` in :mod:`motion_keypoints.engine.config`, each family's
  rules as the model registry declares them, e.g. ``HEATMAP_KEY_RULES`` in :mod:`.heatmap.config`;
  :data:`RCNN_KEY_RULES` here for R-CNN configs only); the detectron2 keys the kit depends on have theirs here
  (:data:`DETECTRON2_KEY_RULES`): solver numbers, input sizes, norms, and the model parts
  checked against detectron2's registries;
- **the machine**: ``MODEL.DEVICE`` present (:func:`device_problem`) and ``MODEL.WEIGHTS``
  readable (:func:`weights_problem`).

Rules are plain data (:class:`Rule`, built with :func:`flag`, :func:`integer`, :func:`number`,
:func:`text`, :func:`one_of`, :func:`sequence`, :func:`registry`); choices may be a function,
called only when the key is checked (registries and timm are imported then, not at import
time). This module imports nothing of the kit but :mod:`motion_keypoints.errors` (and, when
``MODEL.META_ARCHITECTURE`` is checked, the model registry for the families' own names).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

Choices = Union[Tuple, Callable[[], Iterable]]


@dataclass(frozen=True)
class Rule:
    """What a key's value may be: ``kind`` (``bool``, ``int``, ``float``, ``str``, ``seq``),
    bounds, choices, and for a sequence the rule of its items and its length."""

    kind: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    multiple_of: Optional[int] = None
    odd: bool = False
    nonempty: bool = False
    choices: Optional[Choices] = None
    ignore_case: bool = False
    item: Optional[Rule] = None
    length: Optional[int] = None
    ascending: bool = False
    what: str = ""  # names the choices in messages ("detectron2 backbone", ...)


def flag() -> Rule:
    return Rule("bool")


def integer(lo=None, hi=None, multiple_of=None, odd=False) -> Rule:
    return Rule("int", lo=lo, hi=hi, multiple_of=multiple_of, odd=odd)


def number(lo=None, hi=None, lo_open=False, hi_open=False) -> Rule:
    return Rule("float", lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)


def text(nonempty=False) -> Rule:
    return Rule("str", nonempty=nonempty)


def one_of(choices: Choices, ignore_case=False, what="") -> Rule:
    return Rule("str", choices=choices, ignore_case=ignore_case, what=what)


def sequence(item: Rule, length=None, nonempty=False, ascending=False) -> Rule:
    return Rule("seq", item=item, length=length, nonempty=nonempty, ascending=ascending)


def registry(name: str, empty: bool = False) -> Rule:
    """A name registered in detectron2's ``<name>_REGISTRY`` (``META_ARCH``, ``BACKBONE``...);
    ``empty``: "" allowed too (a part some architectures do not build)."""
    return one_of(lambda: [""] * empty + registry_names(name),
                  what=f"registered detectron2 {name.lower()}")


def registry_names(name: str) -> List[str]:
    import detectron2.modeling as modeling

    from .registry import family_meta_archs  # registered by the families' modules (timm...)

    extra = family_meta_archs() if name == "META_ARCH" else []
    if name == "ANCHOR_GENERATOR":
        from detectron2.modeling.anchor_generator import ANCHOR_GENERATOR_REGISTRY as reg
    elif name == "ROI_KEYPOINT_HEAD":
        from detectron2.modeling.roi_heads.keypoint_head import ROI_KEYPOINT_HEAD_REGISTRY as reg
    elif name == "ROI_BOX_HEAD":
        from detectron2.modeling.roi_heads.box_head import ROI_BOX_HEAD_REGISTRY as reg
    elif name == "RPN_HEAD":
        from detectron2.modeling.proposal_generator.rpn import RPN_HEAD_REGISTRY as reg
    else:
        reg = getattr(modeling, f"{name}_REGISTRY")
    return sorted({k for k, _ in reg} | set(extra))


#: detectron2's normalisation names (detectron2.layers.get_norm); "" = none.
NORMS = ("", "BN", "SyncBN", "FrozenBN", "GN", "nnSyncBN", "naiveSyncBN", "naiveSyncBN_N", "LN")

#: The detectron2 keys the kit depends on (the kit's own keys have their tables beside their
#: defaults). Registry names are checked against what detectron2 (and the kit) registered.
#: The Keypoint R-CNN family's parts (not built by the heatmap family):
RCNN_KEY_RULES: Dict[str, Rule] = {
    "MODEL.BACKBONE.NAME": registry("BACKBONE"),
    "MODEL.BACKBONE.FREEZE_AT": integer(0, 5),
    "MODEL.PROPOSAL_GENERATOR.NAME": registry("PROPOSAL_GENERATOR"),
    "MODEL.RPN.HEAD_NAME": registry("RPN_HEAD"),
    "MODEL.ANCHOR_GENERATOR.NAME": registry("ANCHOR_GENERATOR"),
    "MODEL.ROI_HEADS.NAME": registry("ROI_HEADS"),
    "MODEL.ROI_BOX_HEAD.NAME": registry("ROI_BOX_HEAD", empty=True),  # "": Res5ROIHeads
    "MODEL.ROI_KEYPOINT_HEAD.NAME": registry("ROI_KEYPOINT_HEAD"),
    "MODEL.RESNETS.DEPTH": Rule("int", choices=(18, 34, 50, 101, 152), what="ResNet depth"),
    "MODEL.RESNETS.NORM": one_of(NORMS, what="detectron2 norm"),
    "MODEL.FPN.NORM": one_of(NORMS, what="detectron2 norm"),
    "MODEL.ROI_BOX_HEAD.NORM": one_of(NORMS, what="detectron2 norm"),
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": integer(1),
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": number(0, 1, lo_open=True),
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": integer(1),
    "TEST.DETECTIONS_PER_IMAGE": integer(1),
    "INPUT.MIN_SIZE_TRAIN": sequence(integer(1), nonempty=True),
    "INPUT.MAX_SIZE_TRAIN": integer(1),
    "INPUT.MIN_SIZE_TEST": integer(0),
    "INPUT.MAX_SIZE_TEST": integer(1),
}

#: The keys of every family: solver, evaluation, loading, image format, seed.
DETECTRON2_KEY_RULES: Dict[str, Rule] = {
    "MODEL.META_ARCHITECTURE": registry("META_ARCH"),
    "SOLVER.BASE_LR": number(0, lo_open=True),
    "SOLVER.MAX_ITER": integer(1),
    "SOLVER.IMS_PER_BATCH": integer(1),
    "SOLVER.STEPS": sequence(integer(1), ascending=True),
    "SOLVER.GAMMA": number(0, lo_open=True),
    "SOLVER.MOMENTUM": number(0, 1, hi_open=True),
    "SOLVER.WEIGHT_DECAY": number(0),
    "SOLVER.WARMUP_FACTOR": number(0, 1),
    "SOLVER.WARMUP_ITERS": integer(0),
    "SOLVER.WARMUP_METHOD": one_of(("linear", "constant")),
    "SOLVER.LR_SCHEDULER_NAME": one_of(("WarmupMultiStepLR", "WarmupCosineLR")),
    "SOLVER.CHECKPOINT_PERIOD": integer(1),
    "TEST.EVAL_PERIOD": integer(0),
    "DATALOADER.NUM_WORKERS": integer(0),
    "INPUT.FORMAT": one_of(("BGR", "RGB")),
    "SEED": integer(-1, 2**32 - 1),
}


# ----------------------------------------------------------------------------- value rules


def get_key(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def close_names(name: str, names: Iterable, n: int = 3) -> str:
    """`` (did you mean A or B?)`` for the names close to ``name``; "" when none is."""
    close = difflib.get_close_matches(str(name), [str(x) for x in names], n=n, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _bounds(rule: Rule) -> str:
    lo = None if rule.lo is None else f"{'>' if rule.lo_open else '>='} {rule.lo}"
    hi = None if rule.hi is None else f"{'<' if rule.hi_open else '<='} {rule.hi}"
    return " and ".join(x for x in (lo, hi) if x)


def _describe(rule: Rule) -> str:
    kinds = {"bool": "True or False", "int": "an integer", "float": "a number", "str": "a string"}
    if rule.kind == "seq":
        return f"a list of {_describe(rule.item)[2:] if rule.item else 'values'}s"
    parts = [kinds[rule.kind]]
    if _bounds(rule):
        parts.append(_bounds(rule))
    if rule.multiple_of:
        parts.append(f"a multiple of {rule.multiple_of}")
    if rule.odd:
        parts.append("odd")
    return ", ".join(parts)


def _type_ok(kind: str, value) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, (list, tuple))


def _choice_problem(key: str, value, rule: Rule) -> Optional[str]:
    choices = list(rule.choices() if callable(rule.choices) else rule.choices)
    if rule.ignore_case and isinstance(value, str):
        if value.upper() in (str(c).upper() for c in choices):
            return None
    elif value in choices:
        return None
    what = rule.what or "value"
    listed = ", ".join(repr(c) for c in choices) if len(choices) <= 12 else f"{len(choices)} names"
    return f"{key} {value!r} is not a {what} ({listed}){close_names(value, choices)}"


def value_problem(key: str, value, rule: Rule) -> Optional[str]:
    """One line saying why ``value`` breaks ``rule`` for ``key``; None when it does not."""
    if not _type_ok(rule.kind, value):
        return f"{key} is {value!r}: it must be {_describe(rule)}"
    if rule.kind == "seq":
        return _sequence_problem(key, value, rule)
    if rule.choices is not None:
        return _choice_problem(key, value, rule)
    if rule.kind == "str":
        return f"{key} is empty: give a value" if rule.nonempty and not value.strip() else None
    if rule.kind == "bool":
        return None
    bad = (
        (rule.lo is not None and (value <= rule.lo if rule.lo_open else value < rule.lo))
        or (rule.hi is not None and (value >= rule.hi if rule.hi_open else value > rule.hi))
        or (rule.multiple_of and value % rule.multiple_of)
        or (rule.odd and value % 2 == 0)
    )
    return f"{key} is {value!r}: it must be {_describe(rule)}" if bad else None


def _sequence_problem(key: str, value, rule: Rule) -> Optional[str]:
    if rule.length is not None and len(value) != rule.length:
        return f"{key} is {tuple(value)!r}: it must have {rule.length} values"
    if rule.nonempty and not value:
        return f"{key} is empty: give at least one value"
    for i, item in enumerate(value):
        problem = value_problem(f"{key}[{i}]", item, rule.item) if rule.item else None
        if problem:
            return problem
    if rule.ascending and any(b <= a for a, b in zip(value, value[1:])):
        return f"{key} is {tuple(value)!r}: the values must increase"
    return None


def rule_problems(cfg, rules: Mapping[str, Rule]) -> List[str]:
    """The problems of ``cfg``'s values against ``rules`` (a key missing from ``cfg`` is a bug of
    the table, not of the user's config: KeyError)."""
    problems = []
    for key, rule in rules.items():
        problem = value_problem(key, get_key(cfg, key), rule)
        if problem:
            problems.append(problem)
    return problems


# ------------------------------------------------------------------------------ the machine

_DEVICE = re.compile(r"^(cpu|cuda)(:(\d+))?$")
CPU_HINT = "configs/tiny-cpu.yaml and configs/tiny-hrnet.yaml are made for CPUs"


def device_problem(device: str, require: bool, gpus: Optional[int] = None) -> Optional[str]:
    """Why ``MODEL.DEVICE`` cannot be used on this machine; None when it can. ``cuda`` without a
    GPU is a problem only when ``require`` (training); otherwise the caller falls back to the
    CPU. ``gpus``: default ``torch.cuda.device_count()``."""
    match = _DEVICE.match(str(device))
    if not match:
        return (f"MODEL.DEVICE {device!r} is not a device: use cpu, or cuda (cuda:N for the "
                f"N-th GPU){close_names(device, ('cpu', 'cuda'))}")
    if match.group(1) == "cpu":
        return None
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus == 0:
        if not require:
            return None
        return (f"MODEL.DEVICE {device}: this machine has no CUDA GPU; add MODEL.DEVICE cpu to "
                f"the command ({CPU_HINT})")
    index = int(match.group(3) or 0)
    if index >= gpus:
        return (f"MODEL.DEVICE {device}: this machine has {gpus} GPU{'s' if gpus > 1 else ''} "
                f"(cuda:0 to cuda:{gpus - 1}); use MODEL.DEVICE cuda or MODEL.DEVICE cpu")
    return None


def weights_problem(weights: str, key: str = "MODEL.WEIGHTS") -> Optional[str]:
    """Why the local weights file cannot be loaded as a checkpoint (a text file, a truncated
    download, ...); None when it can, or when it is a URL or missing (resolved, with their own
    messages, by :func:`motion_keypoints.engine.weights_check.check_weights`). A zip checkpoint (torch's
    format) is opened memory-mapped, so its tensors are not read."""
    path = Path(str(weights))
    if not str(weights) or "://" in str(weights) or not path.is_file():
        return None
    import pickle
    import zipfile

    import torch

    try:
        if zipfile.is_zipfile(path):
            torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        elif path.suffix == ".pkl":  # detectron2's model zoo format
            with open(path, "rb") as f:
                pickle.load(f, encoding="latin1")
        else:
            torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any failure to parse the user's file is the file's problem
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        return (f"{key} {path}: cannot be read as a checkpoint ({type(exc).__name__}: {why}); "
                "it is truncated or not a checkpoint: download or copy it again, or pass "
                f"{key} '' to train from scratch")
    return None


#: Where yacs, fvcore and detectron2 merge and load configs (their errors there are the config's).
CONFIG_LIBRARIES = ("/yacs/", "/fvcore/common/config.py", "/detectron2/config/")


def raised_in_config_library(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside the config libraries (a user's config), not by a bug of
    code that called them: its innermost traceback frame is theirs."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = tb.tb_frame.f_code.co_filename.replace("\\", "/")
    return any(part in filename for part in CONFIG_LIBRARIES)


def yaml_problem(exc) -> str:
    """One line for a YAML syntax error: file, line, column and what the parser says."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.name}: line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    what = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
    return (f"{where}: YAML syntax error ({what}); fix the file (indentation, a missing ':', an "
            "unclosed bracket or quote)")


def format_problems(problems: Sequence[str]) -> str:
    """One problem as its line; several as a count and one indented line each."""
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} config problems:\n  " + "\n  ".join(problems)


__all__ = [
    "DETECTRON2_KEY_RULES", "RCNN_KEY_RULES", "NORMS", "Rule", "close_names", "device_problem", "flag",
    "format_problems", "get_key", "integer", "number", "one_of", "raised_in_config_library",
    "registry", "registry_names", "yaml_problem",
    "rule_problems", "sequence", "text", "value_problem", "weights_problem",
]
