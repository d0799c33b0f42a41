"""The ensemble's options: the valid choices and defaults, how members are fused besides the
method (:class:`FuseOptions`), the test-time plan (:class:`Plan`, chosen on validation by
:mod:`.choose`) and the check of the options before any work (:func:`validate_options`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..io.predictions import PREDICTION_SPLITS
from .fuse import ALIGN_REFERENCES, METHODS, EnsembleError
from .smoothing import SMOOTH_MODES

#: ``weighted``: by run_info val_rmse (per member), by keypoint scores, or by each member's
#: per-keypoint RMSE on its validation predictions (per member and keypoint).
WEIGHT_BY: Tuple[str, ...] = ("rmse", "score", "keypoint")
#: ``auto``: the method (and weights) with the lowest validation RMSE of the fusion.
METHOD_CHOICES: Tuple[str, ...] = ("auto",) + METHODS
#: Flip TTA per member and left/right-consistent fusion: chosen on validation, or forced.
SWITCH_CHOICES: Tuple[str, ...] = ("auto", "on", "off")
DEFAULT_MIN_IOU = 0.3

FALLBACK_RULE = "mean training pose (image-relative) scaled into the image"
MEAN_POSE_ROW = "mean pose (baseline)"


@dataclass
class FuseOptions:
    """How members are fused besides the method: ``k`` of ``robust``, same-person alignment."""

    k: float = 2.0
    align: bool = True
    min_iou: float = DEFAULT_MIN_IOU
    align_reference: str = "median"


@dataclass
class Plan:
    """The test-time options, chosen on validation or given: fusion ``method`` and ``weights``,
    per member ``flip`` (True: ``predictions_<split>.csv``; False: its ``_noflip`` file),
    left/right alignment ``lr`` (``anchor``: the member two are aligned on), and ``notes``: one
    printed line per choice, with the validation RMSEs it was made on."""

    method: str
    weight_by: str
    flip: List[bool]
    weights: np.ndarray | None = None
    use_scores: bool = False
    lr: bool = False
    anchor: int | None = None
    notes: List[str] = field(default_factory=list)
    method_rmse: Dict[str, float] = field(default_factory=dict)


def validate_options(method, split, weight_by, smooth, align_reference, min_iou, flip, lr_align,
                     runs) -> None:
    """EnsembleError for a bad option or run list, before any work."""
    checks = ((method, METHOD_CHOICES, "method"), (split, PREDICTION_SPLITS, "split"),
              (weight_by, WEIGHT_BY, "--weight-by"), (flip, SWITCH_CHOICES, "--flip"),
              (lr_align, SWITCH_CHOICES, "--lr-align"),
              (align_reference, ALIGN_REFERENCES, "alignment reference"))
    if method not in METHOD_CHOICES:
        raise EnsembleError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}, or "
                            "auto (chosen on validation)")
    for value, valid, what in checks[1:]:
        if value not in valid:
            raise EnsembleError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    if smooth is not None and smooth not in SMOOTH_MODES:
        raise EnsembleError(f"unknown --smooth {smooth!r}; valid: {', '.join(SMOOTH_MODES)}")
    if not 0 < min_iou <= 1:
        raise EnsembleError(f"--min-iou must be in (0, 1]; got {min_iou}")
    if not runs:
        raise EnsembleError("no runs given")
    resolved = [Path(r).resolve() for r in runs]
    dup = [str(r) for r in runs if resolved.count(Path(r).resolve()) > 1]
    if dup:
        raise EnsembleError(f"run given more than once: {dup[0]}")


def method_name(plan: Plan, members: int) -> str:
    """The fusion as printed: ``median`` of two members is the mean it is."""
    if plan.method == "median" and members == 2:
        return "median = mean of two"
    return plan.method
