"""The ensemble driver: load the members' predictions (run folders of any model family), choose
the test-time options on validation, fuse (:mod:`.fuse`), score members and ensemble against
labels beside the mean pose, report, and write the submission (or the fused validation CSV), the
sample pictures and the error picture. The stages are separate modules —
:mod:`.members` (:func:`load_members`) → :mod:`.choose` (:func:`choose_plan`) → :mod:`.scoring`
(:func:`score`) → :mod:`.report` (:func:`report_lines`) → :mod:`.writing` (:func:`write_outputs`)
— and :func:`run_ensemble` here chains them into an :class:`EnsembleSummary`; the names of the
stages stay importable from this module.

**Chosen on validation** (:func:`choose_plan`; every choice is printed with its validation
RMSEs): ``flip`` ``auto`` uses each member's flip-TTA predictions or its
``predictions_<split>_noflip.csv``, whichever is better on its validation predictions;
``lr_align`` ``auto`` turns the left/right-consistent fusion (:func:`.fuse.align_left_right`) on
only when it lowers the validation RMSE of the fusion; ``method`` ``auto`` takes the fusion
method and member weights (mean, median, robust, weighted by RMSE, weighted per keypoint) with
the lowest validation RMSE. Without every member's ``predictions_val.csv`` auto falls back to the
mean, the predictions as made and no left/right exchange, and says so.

A member that detected nobody on an image is left out there and filled from the others (counted
per member). When no member has a prediction, the **fallback** is the mean training pose
(:func:`motion_keypoints.evaluation.evaluate.training_mean_pose`: the training rows of the
members' split, in image-relative units, scaled into the image); such images are counted and
named. Missing values are never written as zeros. The same mean pose is the baseline printed
beside every RMSE (the ``mean pose`` row, and each row's ratio to it).

Members of any family (``run_info.json`` "family": ``rcnn`` or ``heatmap``; a run without the key
predates the heatmap family and is ``rcnn``) share the predictions CSV and fuse with every method.
Before fusing, members are aligned on the same person by box overlap (:func:`.fuse.align_by_boxes`);
a member on another person is left out on that image and counted. The fused predictions can be
smoothed over time in the same go (``smooth``: :mod:`motion_keypoints.motion.smooth`). The command line is
:mod:`motion_keypoints.cli.ensemble`; this module never imports detectron2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from ..utils import PathLike
from .choose import choose_plan
from .fuse import EnsembleError
from .fusing import fuse_group
from .members import (
    Loaded,
    check_compatible,
    family_order,
    has_val_predictions,
    load_members,
    member_family,
    member_keypoint_rmse,
)
from .options import (
    DEFAULT_MIN_IOU,
    FALLBACK_RULE,
    MEAN_POSE_ROW,
    METHOD_CHOICES,
    SWITCH_CHOICES,
    WEIGHT_BY,
    FuseOptions,
    Plan,
    method_name,
    validate_options,
)
from .report import ensemble_table, report_lines, verdict_line
from .scoring import Scores, score, smooth_stage
from .smoothing import SMOOTH_MODES
from .writing import output_stem, write_error_picture, write_outputs, write_samples

__all__ = [
    "DEFAULT_MIN_IOU", "FALLBACK_RULE", "MEAN_POSE_ROW", "METHOD_CHOICES",
    "SMOOTH_MODES", "SWITCH_CHOICES", "WEIGHT_BY", "EnsembleError", "EnsembleSummary",
    "FuseOptions", "Loaded", "Plan", "Scores", "check_compatible", "choose_plan",
    "ensemble_table", "family_order", "fuse_group", "load_members", "member_family",
    "member_keypoint_rmse", "method_name", "output_stem", "report_lines", "run_ensemble", "score",
    "smooth_stage", "validate_options", "verdict_line", "write_error_picture", "write_outputs",
    "write_samples",
]


@dataclass
class EnsembleSummary:
    """What :func:`run_ensemble` did; ``rmse``/``rmse_noflip`` map member labels,
    ``"ensemble"`` (before smoothing) and :data:`MEAN_POSE_ROW` to RMSE (None: not available).
    ``coords`` are what was written (smoothed when smoothing was applied). ``families`` maps
    labels to families, ``other_person`` labels to images left out by the same-person alignment,
    ``lr_swaps`` labels to left/right exchanges, ``plan`` the test-time options (chosen on
    validation or given) and ``smoothing`` what the smoothing stage did. ``lines`` is what the
    command prints."""

    split: str
    method: str
    runs: List[str]
    images: List[str]
    coords: np.ndarray
    fills: Dict[str, int]
    fallback_images: List[str]
    dropped: Dict[str, int]
    rmse: Dict[str, float | None]
    rmse_noflip: Dict[str, float | None]
    out: Path | None
    samples: List[Path]
    table: str
    families: Dict[str, str] = field(default_factory=dict)
    other_person: Dict[str, int] = field(default_factory=dict)
    weights: np.ndarray | None = None
    smoothing: Dict[str, Any] = field(default_factory=dict)
    plan: Plan | None = None
    lr_swaps: Dict[str, int] = field(default_factory=dict)
    pictures: List[Path] = field(default_factory=list)
    lines: List[str] = field(default_factory=list)


def run_ensemble(
    runs: Sequence[PathLike],
    data_root: PathLike,
    split: str = "test",
    method: str = "auto",
    out: PathLike | None = None,
    *,
    weight_by: str = "rmse",
    k: float = 2.0,
    align: bool = True,
    min_iou: float = DEFAULT_MIN_IOU,
    align_reference: str = "median",
    smooth: str | None = "off",
    flip: str = "auto",
    lr_align: str = "auto",
    samples: int = 8,
    samples_dir: PathLike | None = None,
    picture: bool = False,
    html: bool = False,
    seed: int = 0,
    echo: Callable[[str], None] | None = None,
) -> EnsembleSummary:
    """Fuse the runs' ``predictions_<split>.csv`` and write ``out``: load → choose on
    validation → score → report → write (see the module).

    test: ``out`` is the submission (sample_submission.csv columns and order, validated); val:
    ``out`` is a keypoint CSV of the fused predictions. ``method`` ``auto`` (or one of
    :data:`.fuse.METHODS`; ``weight_by`` for ``weighted``: ``rmse`` = run_info val_rmse,
    ``score``, ``keypoint`` = ∝ 1/rmse_k² of the member's ``predictions_val.csv``), ``flip`` and
    ``lr_align`` (``auto``/``on``/``off``) as in :func:`choose_plan`. ``align``: same-person
    alignment by box IoU ``min_iou``. ``smooth``: ``off``, ``default``, ``auto`` or None (``auto``
    when every member has ``predictions_val.csv``). With ``samples`` > 0 sample grids go to
    ``<run>/samples/`` and ``samples_dir`` (default: ``samples/`` next to ``out``); with labels
    and ``picture`` the error picture (and with ``html`` its HTML page) goes next to ``out``,
    all named after ``out`` (:func:`output_stem`). The lines to print are in the summary's
    ``lines`` (and passed to ``echo`` when given).
    """
    validate_options(method, split, weight_by, smooth, align_reference, min_iou, flip, lr_align,
                     runs)
    opts = FuseOptions(k, align, min_iou, align_reference)
    out_path = Path(out) if out is not None else None
    loaded = load_members(runs, data_root, split, out_path, samples)
    smooth_note = None
    if smooth is None:
        smooth = "auto" if has_val_predictions(runs) else "off"
        smooth_note = ("auto: every member has predictions_val.csv" if smooth == "auto" else
                       "off: not every member has predictions_val.csv to choose it on")
    elif smooth == "off":
        smooth_note = "off"
    plan = choose_plan(loaded, method, weight_by, flip, lr_align, opts)
    sc = score(loaded, plan, opts)
    final, smoothing, smooth_lines = smooth_stage(loaded, plan, opts, sc, smooth)
    table = ensemble_table(loaded, plan, sc)
    lines = report_lines(loaded, plan, opts, sc, table)
    lines += ([f"smoothing: {smooth_note}"] if smooth_note else []) + smooth_lines
    lines += write_outputs(loaded, final, out_path)
    folder, stem = output_stem(out_path, split, method, runs,
                               (weight_by, k, align, min_iou, align_reference, smooth, flip, lr_align))
    written: List[Path] = []
    if samples > 0:
        written = write_samples(loaded, plan, final, Path(samples_dir or folder / "samples"), stem,
                                samples, seed)
        lines.append("samples: " + ", ".join(str(p) for p in written))
    pictures: List[Path] = []
    if picture and loaded.truth is not None:
        pictures = write_error_picture(loaded, plan, sc, final, folder, stem, html)
        lines.append("error picture: " + ", ".join(str(p) for p in pictures))
    if echo is not None:
        for line in lines:
            echo(line)
    return _summary(loaded, plan, sc, final, smoothing, out_path, written, pictures, table, lines)


def _summary(loaded, plan, sc, final, smoothing, out_path, written, pictures, table, lines):
    result, labels = sc.result, loaded.labels
    dropped = result.dropped_per_model
    other = {} if result.other_person_per_model is None else dict(
        zip(labels, (int(v) for v in result.other_person_per_model)))
    return EnsembleSummary(
        split=loaded.split, method=plan.method, runs=labels, images=list(loaded.images),
        coords=final, fills=dict(zip(labels, (int(f) for f in result.fills_per_model))),
        fallback_images=[loaded.images[i] for i in result.fallback_images],
        dropped={} if dropped is None else dict(zip(labels, (int(d) for d in dropped))),
        rmse=sc.rmse, rmse_noflip=sc.rmse_noflip, out=out_path, samples=written, table=table,
        families=dict(zip(labels, loaded.families)), other_person=other, weights=plan.weights,
        smoothing=smoothing, plan=plan, lr_swaps=dict(zip(labels, (int(v) for v in sc.swaps))),
        pictures=pictures, lines=lines,
    )
