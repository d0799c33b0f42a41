"""The ensemble driver: load the members' predictions (run folders of any model family), choose
the test-time options on validation, fuse (:mod:`.fuse`), score members and ensemble against
labels beside the mean pose, report, and write the submission (or the fused validation CSV), the
sample pictures and the error picture. The stages are separate functions —
:func:`load_members` → :func:`choose_plan` → :func:`score` → :func:`report_lines` →
:func:`write_outputs` — and :func:`run_ensemble` chains them into an :class:`EnsembleSummary`.

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

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..data.layout import DataPaths, load_train_df
from ..evaluation import metrics
from ..evaluation.evaluate import format_table, short_list, training_mean_pose, truth_for
from ..io.predictions import PREDICTION_SPLITS, RunPredictions, load_member_predictions
from ..io.problems import DataError
from ..io.runs import SPLIT_FILE, split_val_images
from ..io.tables import keypoints_frame, write_keypoint_csv
from ..meta import FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES
from ..submission import write_submission
from ..utils import PathLike
from .fuse import (
    ALIGN_REFERENCES,
    METHODS,
    EnsembleError,
    FusionResult,
    align_by_boxes,
    align_left_right,
    fuse_with_fallback,
    keypoint_rmse_weights,
    rmse_weights,
)
from .smoothing import SMOOTH_MODES, prediction_table, smooth_fused

#: ``weighted``: by run_info val_rmse (per member), by keypoint scores, or by each member's
#: per-keypoint RMSE on its validation predictions (per member and keypoint).
WEIGHT_BY: Tuple[str, ...] = ("rmse", "score", "keypoint")
#: ``auto``: the method (and weights) with the lowest validation RMSE of the fusion.
METHOD_CHOICES: Tuple[str, ...] = ("auto",) + METHODS
#: Flip TTA per member and left/right-consistent fusion: chosen on validation, or forced.
SWITCH_CHOICES: Tuple[str, ...] = ("auto", "on", "off")
#: Order of the families in the table; others follow in the order given.
FAMILY_ORDER: Tuple[str, ...] = ("rcnn", "heatmap")
DEFAULT_MIN_IOU = 0.3

FALLBACK_RULE = "mean training pose (image-relative) scaled into the image"
MEAN_POSE_ROW = "mean pose (baseline)"

def _names_difference(a: Sequence[str], b: Sequence[str]) -> str | None:
    a, b = list(a), list(b)
    if a == b:
        return None
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if only_a or only_b:
        return (f"{len(a)} vs {len(b)} keypoints; only in the first: {short_list(only_a) or '-'}; "
                f"only in the second: {short_list(only_b) or '-'}")
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"same keypoints in another order (position {i}: {a[i]!r} vs {b[i]!r})"


def check_compatible(runs: Sequence[RunPredictions], split: str = "test") -> None:
    """Refuse runs with other keypoint definitions, image sets or image sizes, naming the
    difference."""
    ref = runs[0]
    kit_pairs = {tuple(p) for p in FLIP_PAIRS}
    for run in runs:
        names = run.info["keypoint_names"]
        diff = _names_difference(ref.info["keypoint_names"], names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} and {ref.run_dir} have different keypoint definitions: {diff}"
            )
        diff = _names_difference(KEYPOINT_NAMES, names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} uses other keypoints than this kit (keypoints.KEYPOINT_NAMES): {diff}"
            )
        pairs = {tuple(p) for p in run.info["flip_pairs"]}
        if pairs != kit_pairs:
            raise EnsembleError(
                f"{run.run_dir}/run_info.json has other flip pairs than the kit: "
                f"extra {sorted(pairs - kit_pairs)}, missing {sorted(kit_pairs - pairs)}"
            )
        if set(run.images) != set(ref.images):
            lacks = sorted(set(ref.images) - set(run.images))
            extra = sorted(set(run.images) - set(ref.images))
            raise EnsembleError(
                f"{run.file} and {ref.file} predict different image sets: "
                f"{len(lacks)} missing ({short_list(lacks) or '-'}), {len(extra)} extra "
                f"({short_list(extra) or '-'}); "
                + ("the runs hold out different validation images: train them with the same "
                   "DATA.SPLIT_SEED and DATA.VAL_FRACTION" if split == "val"
                   else "predict all runs on the same data")
            )
        aligned = run.aligned(ref.images)
        bad = np.nonzero(np.any(aligned.sizes != ref.sizes, axis=1))[0]
        if bad.size:
            i = int(bad[0])
            raise EnsembleError(
                f"{run.file} and {ref.file} disagree on the size of {bad.size} images, e.g. "
                f"{ref.images[i]}: {aligned.sizes[i].tolist()} vs {ref.sizes[i].tolist()}"
            )





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


@dataclass
class Loaded:
    """The members' predictions of one split, aligned on the same images: ``main``
    (``predictions_<split>.csv``), ``noflip`` (``_noflip.csv`` or None), labels, families and the
    labels (``truth``, None without them)."""

    runs: List[Path]
    data_root: Path
    split: str
    labels: List[str]
    families: List[str]
    main: List[RunPredictions]
    noflip: List[RunPredictions | None]
    truth: np.ndarray | None = None
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def paths(self) -> DataPaths:
        return DataPaths.from_root(self.data_root)

    @property
    def images(self) -> List[str]:
        return self.main[0].images

    @property
    def mixed(self) -> bool:
        return len(set(self.families)) > 1

    def train_df(self):
        if "train_df" not in self.cache:
            self.cache["train_df"] = load_train_df(self.paths.root)
        return self.cache["train_df"]

    def mean_pose(self) -> np.ndarray:
        """The kit's one mean pose (the training rows of the members' split) in these images."""
        if "mean_pose" not in self.cache:
            split_file = self.main[0].run_dir / SPLIT_FILE
            val = split_val_images(self.main[0].run_dir) if split_file.is_file() else (
                self.images if self.split == "val" else ())
            rel = training_mean_pose(self.data_root, exclude=val)
            self.cache["mean_pose"] = metrics.scale_pose(rel, self.main[0].sizes)
        return self.cache["mean_pose"]

    def chosen(self, plan: Plan) -> List[RunPredictions]:
        """Each member's predictions as the plan uses them (flip TTA or not)."""
        return [m if f or nf is None else nf for m, nf, f in zip(self.main, self.noflip, plan.flip)]

    def val(self, why: str | None = None) -> Loaded | None:
        """The members' validation predictions (this object on the val split); None when not
        every member has them, or EnsembleError naming the run and the fix when ``why`` needs
        them."""
        if self.split == "val":
            return self
        if "val" not in self.cache:
            self.cache["val"] = (_load_val(self) if _has_val_predictions(self.runs) else None)
        if self.cache["val"] is None and why is not None:
            _val_members(self.runs, self.data_root, why)  # raises, naming the run
        return self.cache["val"]


def _load_val(loaded: Loaded) -> Loaded:
    main = _val_members(loaded.runs, loaded.data_root, "validation choices")
    images = main[0].images
    noflip = [load_member_predictions(r, "val", loaded.data_root, noflip=True) for r in loaded.runs]
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    val = Loaded(loaded.runs, loaded.data_root, "val", loaded.labels, loaded.families, main, noflip)
    val.cache["train_df"] = loaded.train_df()
    val.truth = truth_for(images, val.paths.train_csv, val.train_df())
    return val


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


def load_members(runs: Sequence[PathLike], data_root: PathLike, split: str, out=None,
                 samples: int = 0) -> Loaded:
    """Stage 1: the members' predictions of ``split`` (and ``_noflip``), checked compatible and
    aligned on the same images, with the labels when they exist. ``out`` is refused before any
    work when it would write over an input; with ``samples`` a missing image is named."""
    paths = DataPaths.from_root(data_root)
    if out is not None:  # before any work: never write over an input (the data, the runs)
        from ..io.outputs import check_output_file, register_inputs

        member_files = [Path(r) / f"predictions_{s}{tail}.csv" for r in runs
                        for s in PREDICTION_SPLITS for tail in ("", "_noflip")]
        register_inputs(paths.train_csv, paths.sample_submission, paths.test_labels,
                        *[f for f in member_files if f.is_file()])
        check_output_file(out, "submission" if split == "test" else "fused predictions", "--out")
    members = [load_member_predictions(r, split, data_root) for r in runs]
    check_compatible(members, split)
    images = members[0].images
    if samples > 0:  # the pictures need the images: a missing one is named before any work
        _check_images(paths, split, images)
    members = [m.aligned(images) for m in members]
    noflip = [load_member_predictions(r, split, data_root, noflip=True) for r in runs]
    for main_run, nf in zip(members, noflip):
        if nf is not None:
            check_compatible([main_run, nf], split)
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    loaded = Loaded([Path(r) for r in runs], Path(data_root), split, _labels(runs),
                    [member_family(m.info) for m in members], members, noflip)
    if split == "val":
        loaded.truth = truth_for(images, paths.train_csv, loaded.train_df())
    elif paths.test_labels.is_file():
        loaded.truth = truth_for(images, paths.test_labels)
    return loaded


def _check_images(paths: DataPaths, split: str, images: Sequence[str]) -> None:
    image_dir = paths.test_images if split == "test" else paths.train_images
    listed_in = paths.sample_submission if split == "test" else paths.train_csv
    gone = [i for i in images if not (image_dir / i).is_file()]
    if gone:
        raise EnsembleError(
            f"{image_dir / gone[0]}: image listed in {listed_in} is missing"
            + (f" ({len(gone)} images missing)" if len(gone) > 1 else "")
            + "; restore it (python code/check_data.py --data-root "
            f"{paths.root} lists them) or run with --samples 0"
        )


# ------------------------------------------------------------------------------ fusion


def fuse_group(group: Sequence[RunPredictions], plan: Plan, opts: FuseOptions,
               idx: Sequence[int] | None = None, fallback: Callable[[], np.ndarray] | None = None,
               mixed: bool = False) -> Tuple[FusionResult, np.ndarray]:
    """Fusion of ``group`` (members ``idx`` of the run list; default all, in order) by ``plan``:
    ``(result, left/right exchanges per member)``. ``fallback()`` gives the mean pose for images
    nobody predicted."""
    idx = list(range(len(group))) if idx is None else list(idx)
    c = np.stack([g.coords for g in group])
    swaps = np.zeros(len(group), dtype=int)
    s = None
    if plan.use_scores:
        s = np.stack([g.scores for g in group])
        if mixed:  # families score on other scales: a typical keypoint weighs 1 in each
            s = s / _score_scales(group)[:, None, None]
    if plan.lr and len(group) >= 2:
        anchor = None
        if len(group) == 2:
            anchor = idx.index(plan.anchor) if plan.anchor in idx else 0
        c, swapped = align_left_right(c, anchor=anchor)
        swaps = swapped.sum(axis=1)
        if s is not None:
            s = np.where(swapped[..., None], s[:, :, list(FLIP_INDEX)], s)
    w = None if plan.weights is None else np.asarray(plan.weights)[idx]
    same = None
    if opts.align and len(group) >= 3:
        same = align_by_boxes(np.stack([g.boxes for g in group]),
                              np.stack([np.asarray(g.detected, bool) for g in group]),
                              opts.min_iou, opts.align_reference)
    missing = ~np.isfinite(c).all(axis=-1).any(axis=0).all(axis=-1)
    fb = fallback() if missing.any() and fallback is not None else None
    res = fuse_with_fallback(c, plan.method if len(group) > 1 else "mean", weights=w, scores=s,
                             k=opts.k, fallback=fb, same_person=same)
    return res, swaps


def _fused_rmse(loaded: Loaded, group, plan: Plan, opts: FuseOptions, idx=None) -> float:
    return metrics.rmse(fuse_group(group, plan, opts, idx, loaded.mean_pose, loaded.mixed)[0].coords,
                        loaded.truth)
def _labels(runs: Sequence[PathLike]) -> List[str]:
    names = [Path(r).name for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def member_family(info: dict) -> str:
    """The model family of a run (``run_info.json`` "family"; runs written before the heatmap
    family have no key and are R-CNN runs)."""
    return str(info.get("family") or "rcnn")


def family_order(families: Sequence[str]) -> List[int]:
    """Member indices grouped by family (:data:`FAMILY_ORDER` first), given order within one."""
    rank = {f: i for i, f in enumerate(FAMILY_ORDER)}
    firsts: Dict[str, int] = {}
    for i, f in enumerate(families):
        firsts.setdefault(f, len(FAMILY_ORDER) + i)
    return sorted(range(len(families)), key=lambda i: (rank.get(families[i], firsts[families[i]]), i))


def member_keypoint_rmse(member: RunPredictions, train_df, train_csv: PathLike) -> np.ndarray:
    """RMSE ``(K,)`` of each keypoint of one member's validation predictions against the
    training labels (images where it detected nobody are left out)."""
    ok = np.asarray(member.detected, bool)
    if not ok.any():
        raise EnsembleError(f"{member.file}: no image with a detection; per-keypoint weights "
                            "need validation predictions (use --weight-by score)")
    kept = [img for img, good in zip(member.images, ok) if good]
    truth = truth_for(kept, train_csv, train_df)
    return np.array(list(metrics.per_keypoint_rmse(member.coords[ok], truth).values()))


def _val_members(runs: Sequence[PathLike], data_root: PathLike, why: str) -> List[RunPredictions]:
    """The members' validation predictions (same images, same order), or EnsembleError saying
    which run lacks them and how to get them."""
    members = []
    for r in runs:
        info_file = Path(r) / "run_info.json"
        try:
            members.append(load_member_predictions(r, "val", data_root))
        except FileNotFoundError as exc:
            if info_file.is_file():
                from ..io.runs import load_run_info

                if load_run_info(r).get("validated") is False:
                    raise EnsembleError(
                        f"{why} needs each member's validation predictions; {r} was trained "
                        f"without validation ({info_file}: validated false): {_without_val(why)}"
                    ) from None
            raise EnsembleError(f"{why} needs each member's validation predictions: {exc}; "
                                f"or {_without_val(why)}") from None
    check_compatible(members, "val")
    return [m.aligned(members[0].images) for m in members]


_WITHOUT_VAL = "use --weight-by score or another --method (and --smooth default or off)"


def _without_val(why: str) -> str:
    """The way out without validation predictions for the option ``why`` that needs them."""
    if why.startswith("--smooth"):  # only the smoothing's choice needs them: not the weights
        return "use --smooth default (chosen on realistic clips, no validation needed) or off"
    return _WITHOUT_VAL


def _has_val_predictions(runs: Sequence[PathLike]) -> bool:
    return all((Path(r) / "predictions_val.csv").is_file() for r in runs)


def _score_scales(members: Sequence[RunPredictions]) -> np.ndarray:
    """Per member: the median of its positive keypoint scores on detected images (1 if none),
    so that families whose scores live on other scales (R-CNN heatmap logits, heatmap maxima)
    weigh a typical keypoint alike."""
    out = np.ones(len(members))
    for i, m in enumerate(members):
        s = m.scores[np.asarray(m.detected, bool)]
        s = s[np.isfinite(s) & (s > 0)]
        if s.size:
            out[i] = float(np.median(s))
    return out




# ------------------------------------------------------------------- options on validation


def _with(plan: Plan, **changes) -> Plan:
    """A copy of ``plan`` with ``changes`` (its own notes list)."""
    fields = {**plan.__dict__, "notes": list(plan.notes), "method_rmse": dict(plan.method_rmse)}
    return Plan(**{**fields, **changes})


def _choose_flip(loaded: Loaded, val: Loaded | None, flip: str, opts: FuseOptions) -> Tuple[List[bool], List[str]]:
    """Per member: use its flip-TTA predictions (True) or its ``_noflip`` file (False)."""
    m = len(loaded.main)
    if flip == "on" or all(nf is None for nf in loaded.noflip):
        return [True] * m, []
    if flip == "off":
        return [nf is None for nf in loaded.noflip], ["flip TTA: off (--flip off) where a member "
                                                       "has predictions without it"]
    if val is None or all(nf is None for nf in val.noflip):
        return [True] * m, ["flip TTA: as predicted (auto: no predictions_val_noflip.csv to "
                            "choose on)"]
    one = Plan("mean", "rmse", [True])
    choice, parts = [], []
    for i, lab in enumerate(loaded.labels):
        if val.noflip[i] is None or loaded.noflip[i] is None:
            choice.append(True)
            parts.append(f"{lab} as predicted")
            continue
        on = _fused_rmse(val, [val.main[i]], one, opts)
        off = _fused_rmse(val, [val.noflip[i]], one, opts)
        choice.append(on <= off)
        parts.append(f"{lab} {'on' if on <= off else 'off'} ({on:.3f} with, {off:.3f} without)")
    return choice, ["flip TTA per member, chosen on validation RMSE: " + "; ".join(parts)]


def _explicit_weights(loaded: Loaded, plan: Plan) -> Plan:
    """Weights of an explicitly given ``weighted`` method."""
    if plan.method != "weighted":
        return plan
    if plan.weight_by == "score":
        return _with(plan, use_scores=True)
    if plan.weight_by == "rmse":
        rmses = [m.info.get("val_rmse") for m in loaded.main]
        for m, r in zip(loaded.main, rmses):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise EnsembleError(
                    f"--method weighted --weight-by rmse needs a positive val_rmse in every "
                    f"run_info.json; {m.run_dir} has {r!r} (a run trained without validation): "
                    "use --weight-by score or another method"
                )
        return _with(plan, weights=rmse_weights(rmses))
    val = loaded.val("--weight-by keypoint")
    return _with(plan, weights=_keypoint_weights(val, plan))


def _keypoint_weights(val: Loaded, plan: Plan) -> np.ndarray:
    per_kp = np.stack([member_keypoint_rmse(v, val.train_df(), val.paths.train_csv)
                       for v in val.chosen(plan)])
    try:
        return keypoint_rmse_weights(per_kp)
    except ValueError as exc:
        raise EnsembleError(f"--weight-by keypoint: {exc}") from None


def _candidates(val: Loaded, plan: Plan) -> Dict[str, Plan]:
    """The fusions ``auto`` tries: mean, median and robust (three or more members), weighted by
    each member's validation RMSE and per keypoint."""
    m = len(val.main)
    out = {"mean": _with(plan, method="mean", weights=None)}
    if m >= 3:
        out["median"] = _with(plan, method="median", weights=None)
        out["robust"] = _with(plan, method="robust", weights=None)
    one = Plan("mean", "rmse", [True])
    member = [_fused_rmse(val, [p], one, FuseOptions()) for p in val.chosen(plan)]
    if all(r > 0 for r in member):
        out["weighted by rmse"] = _with(plan, method="weighted", weight_by="rmse",
                                        weights=rmse_weights(member))
    try:
        out["weighted by keypoint"] = _with(plan, method="weighted", weight_by="keypoint",
                                            weights=_keypoint_weights(val, plan))
    except EnsembleError:
        pass
    return out


def _choose_lr(loaded: Loaded, val: Loaded | None, plan: Plan, lr_align: str,
               opts: FuseOptions) -> Plan:
    if len(loaded.main) < 2 or lr_align == "off":
        return plan
    if val is not None and len(loaded.main) == 2:  # two cannot decide: anchor on the better one
        one = Plan("mean", "rmse", [True])
        member = [_fused_rmse(val, [p], one, opts) for p in val.chosen(plan)]
        plan = _with(plan, anchor=int(np.argmin(member)))
    if lr_align == "on":
        return _with(plan, lr=True)
    if val is None:
        plan.notes.append("left/right alignment: off (auto: no validation predictions to show it "
                          "helps)")
        return plan
    probe = plan if plan.method != "auto" else _with(plan, method="mean", weights=None)
    off = _fused_rmse(val, val.chosen(plan), probe, opts)
    on = _fused_rmse(val, val.chosen(plan), _with(probe, lr=True), opts)
    plan = _with(plan, lr=on < off)
    plan.notes.append(f"left/right alignment: {'on' if on < off else 'off'}, chosen on "
                      f"validation ({probe.method} fusion RMSE {off:.3f} without, {on:.3f} with)")
    return plan


def choose_plan(loaded: Loaded, method: str = "auto", weight_by: str = "rmse", flip: str = "auto",
                lr_align: str = "auto", opts: FuseOptions | None = None) -> Plan:
    """Stage 2: the test-time options. ``auto`` choices are made on the members' validation
    predictions (:meth:`Loaded.val`); every choice adds a note with the RMSEs it was made on."""
    opts = opts or FuseOptions()
    needs_val = "auto" in (method, flip, lr_align)
    val = loaded.val() if needs_val else None
    flips, notes = _choose_flip(loaded, val, flip, opts)
    plan = Plan(method, weight_by, flips, notes=notes)
    plan = _explicit_weights(loaded, plan)
    plan = _choose_lr(loaded, val, plan, lr_align, opts)
    if method != "auto":
        return plan
    if val is None or len(loaded.main) < 2:
        why = "one member" if len(loaded.main) < 2 else (
            "not every member has predictions_val.csv to choose on")
        plan = _with(plan, method="mean")
        plan.notes.append(f"method auto: mean ({why})")
        return plan
    scored = {name: _fused_rmse(val, val.chosen(p), p, opts)
              for name, p in _candidates(val, plan).items()}
    best = min(scored, key=lambda n: (scored[n], list(scored).index(n)))
    plan = _with(_candidates(val, plan)[best], method_rmse=scored)
    plan.notes.append(
        f"method auto: {best}, chosen on validation RMSE ("
        + ", ".join(f"{n} {v:.3f}" for n, v in scored.items()) + ")"
        + (" — on these same validation images: optimistic" if loaded.split == "val" else ""))
    return plan


# ------------------------------------------------------------------------------ scoring


@dataclass
class Scores:
    """Stage 3: the fusion of the split and its RMSEs. ``rmse``/``rmse_noflip`` map member
    labels, family fusions, ``"ensemble"`` and :data:`MEAN_POSE_ROW` to RMSE."""

    result: FusionResult
    swaps: np.ndarray
    rmse: Dict[str, float | None] = field(default_factory=dict)
    rmse_noflip: Dict[str, float | None] = field(default_factory=dict)
    extra_rows: List[Tuple[str, float | None, float | None]] = field(default_factory=list)
    after_rows: List[Tuple[str, float | None, float | None]] = field(default_factory=list)


def method_name(plan: Plan, members: int) -> str:
    """The fusion as printed: ``median`` of two members is the mean it is."""
    if plan.method == "median" and members == 2:
        return "median = mean of two"
    return plan.method


def score(loaded: Loaded, plan: Plan, opts: FuseOptions) -> Scores:
    """Fuse the split by ``plan``; with labels, each member's RMSE (as used and without flip
    TTA), each family's fusion, the ensemble's and the mean pose's."""
    chosen = loaded.chosen(plan)
    result, swaps = fuse_group(chosen, plan, opts, None, loaded.mean_pose, loaded.mixed)
    sc = Scores(result, swaps)
    if loaded.truth is None:
        return sc
    noflip, labels = loaded.noflip, loaded.labels
    for i, lab in enumerate(labels):
        sc.rmse[lab] = _fused_rmse(loaded, [chosen[i]], plan, opts, [i])
        sc.rmse_noflip[lab] = None if noflip[i] is None else _fused_rmse(loaded, [noflip[i]], plan,
                                                                         opts, [i])
    sc.rmse["ensemble"] = metrics.rmse(result.coords, loaded.truth)
    all_nf = all(nf is not None for nf in noflip)
    sc.rmse_noflip["ensemble"] = _fused_rmse(loaded, noflip, plan, opts) if all_nf else None
    families = loaded.families
    if loaded.mixed:  # each family's own fusion, to show what the other family adds
        for fam in dict.fromkeys(families[i] for i in family_order(families)):
            idx = [i for i, f in enumerate(families) if f == fam]
            if len(idx) < 2:
                continue
            key = f"fusion {fam}"
            sc.rmse[key] = _fused_rmse(loaded, [chosen[i] for i in idx], plan, opts, idx)
            sc.rmse_noflip[key] = _fused_rmse(loaded, [noflip[i] for i in idx], plan, opts, idx) \
                if all(noflip[i] is not None for i in idx) else None
            sc.extra_rows.append((f"{key} ({method_name(plan, len(idx))})", sc.rmse[key],
                                  sc.rmse_noflip[key]))
    try:
        sc.rmse[MEAN_POSE_ROW] = metrics.rmse(loaded.mean_pose(), loaded.truth)
    except DataError:  # no training rows left besides these images: no baseline to show
        sc.rmse[MEAN_POSE_ROW] = None
    return sc


def smooth_stage(loaded: Loaded, plan: Plan, opts: FuseOptions, sc: Scores,
                 smooth: str) -> Tuple[np.ndarray, Dict[str, Any], List[str]]:
    """The fused coordinates after smoothing (``smooth`` mode), its report and lines."""
    table_df = prediction_table(loaded.images, sc.result.coords, sc.result.fallback_images)

    def val_table():
        if loaded.split == "val":
            return table_df
        val = loaded.val("--smooth auto")
        vr = fuse_group(val.chosen(plan), plan, opts, None, val.mean_pose, val.mixed)[0]
        return prediction_table(val.images, vr.coords, vr.fallback_images)

    def val_truth(names):
        return keypoints_frame(names, truth_for(names, loaded.paths.train_csv, loaded.train_df()))

    smoothed, smoothing, lines = smooth_fused(smooth, table_df, loaded.split, val_table, val_truth)
    final = sc.result.coords if smoothed is None else smoothed
    if smoothed is not None and loaded.truth is not None:
        before, after = sc.rmse["ensemble"], metrics.rmse(final, loaded.truth)
        smoothing.update(before=before, after=after)
        sc.rmse["ensemble smoothed"] = after
        sc.after_rows.append((f"ensemble ({method_name(plan, len(loaded.main))}) smoothed", after,
                              None))
        lines.append(f"{loaded.split} RMSE before / after smoothing: {before:.3f} / {after:.3f} px")
    return final, smoothing, lines


# ------------------------------------------------------------------------------ reporting


def ensemble_table(loaded: Loaded, plan: Plan, sc: Scores) -> str:
    """Members grouped by family and the fusion(s) side by side: detections, fills, members on
    another person, drops, left/right exchanges, flip TTA, weights, RMSEs and each row's ratio to
    the mean pose's RMSE on the same images (printed under the table, :func:`report_lines`)."""
    members, labels, families, result = loaded.main, loaded.labels, loaded.families, sc.result
    n = len(members[0].images)
    rmse, rmse_nf = sc.rmse, sc.rmse_noflip
    has_noflip = loaded.truth is not None and any(nf is not None for nf in loaded.noflip)
    base = rmse.get(MEAN_POSE_ROW)
    w_col = None
    if plan.weights is not None:
        w = np.asarray(plan.weights, dtype=float)
        w_col = [float(v) for v in (w if w.ndim == 1 else w.mean(axis=1))]
    extra = {
        "other person": None if result.other_person_per_model is None
        else [int(d) for d in result.other_person_per_model],
        "outliers dropped": None if result.dropped_per_model is None
        else [int(d) for d in result.dropped_per_model],
        "L/R exchanged": [int(v) for v in sc.swaps] if plan.lr else None,
        "flip TTA": ["on" if f and nf is not None else "off" if nf is not None else "-"
                     for f, nf in zip(plan.flip, loaded.noflip)] if has_noflip else None,
        "vs mean pose": [metrics.ratio_to(rmse[lab], base) for lab in labels] if rmse else None,
        ("weight" if w_col is None or np.ndim(plan.weights) == 1 else "mean weight"): w_col,
        "RMSE": [rmse[lab] for lab in labels] if rmse else None,
        "RMSE no flip": [rmse_nf[lab] for lab in labels] if has_noflip else None,
    }
    extra = {k: v for k, v in extra.items() if v is not None}
    rows: List[List[object]] = []
    for i in family_order(families):
        m = members[i]
        rows.append([labels[i], families[i], f"{int(m.detected.sum())}/{n}",
                     int(result.fills_per_model[i])] + [v[i] for v in extra.values()])

    def fusion_rows(specs):
        for name, r, r_nf in specs:
            vals = {"RMSE": r, "RMSE no flip": r_nf, "vs mean pose": metrics.ratio_to(r, base)}
            rows.append([name, None, None, None] + [vals.get(k) for k in extra])

    fusion_rows(sc.extra_rows)
    ensemble = {"RMSE": rmse.get("ensemble"), "RMSE no flip": rmse_nf.get("ensemble"),
                "vs mean pose": metrics.ratio_to(rmse.get("ensemble"), base)}
    fam = "+".join(dict.fromkeys(families[i] for i in family_order(families)))
    rows.append([f"ensemble ({method_name(plan, len(members))})", fam,
                 f"{n - result.fallback_count}/{n}", None] + [ensemble.get(k) for k in extra])
    fusion_rows(sc.after_rows)
    headers = ["member", "family", "detected", "filled"]
    return format_table(headers + list(extra), rows)


def verdict_line(loaded: Loaded, sc: Scores) -> str | None:
    """Says when the ensemble is worse than its best member (or than the mean pose)."""
    if loaded.truth is None or len(loaded.main) < 2:
        return None
    ens = sc.rmse["ensemble"]
    best = min(loaded.labels, key=lambda lab: sc.rmse[lab])
    base = sc.rmse.get(MEAN_POSE_ROW)
    if base is not None and ens >= base:
        return (f"WORSE THAN THE MEAN POSE: the ensemble's {loaded.split} RMSE {ens:.3f} px is no "
                f"better than predicting the mean pose ({base:.3f} px)")
    if ens > sc.rmse[best]:
        return (f"WORSE THAN ITS BEST MEMBER: the ensemble's {loaded.split} RMSE {ens:.3f} px > "
                f"{best} alone {sc.rmse[best]:.3f} px")
    return (f"the ensemble ({ens:.3f} px) beats its best member {best} ({sc.rmse[best]:.3f} px)"
            + (f"; mean pose {base:.3f} px" if base is not None else ""))


def report_lines(loaded: Loaded, plan: Plan, opts: FuseOptions, sc: Scores, table: str) -> List[str]:
    """Stage 4: what the command prints (the caller prints; this returns the lines)."""
    labels, families, split = loaded.labels, loaded.families, loaded.split
    n, result = len(loaded.images), sc.result
    detail = f" (k={opts.k})" if plan.method == "robust" else (
        f" (by {plan.weight_by})" if plan.method == "weighted" else "")
    fam_count = ", ".join(f"{families.count(f)} {f}" for f in dict.fromkeys(
        families[i] for i in family_order(families)))
    lines = [f"ensemble of {len(labels)} runs ({fam_count}) on {split} ({n} images), "
             f"method {method_name(plan, len(labels))}{detail}", table]
    has_noflip = loaded.truth is not None and any(nf is not None for nf in loaded.noflip)
    if loaded.truth is None:
        lines.append(f"no labels for {split} ({loaded.paths.test_labels} absent): RMSE not computed")
    else:
        if has_noflip:
            lines.append(f"RMSE no flip: from predictions_{split}_noflip.csv (the same models "
                         "without flip TTA)")
        base = sc.rmse.get(MEAN_POSE_ROW)
        lines.append(
            (f"{MEAN_POSE_ROW}: RMSE {base:.3f} px on the same images" if base is not None else
             f"{MEAN_POSE_ROW}: not computed (no training rows besides these images)")
            + f" ({FALLBACK_RULE}); vs mean pose = RMSE / that (below 1: better than the mean pose)")
    verdict = verdict_line(loaded, sc)
    if verdict:
        lines.append(verdict)
    if plan.method == "median" and len(labels) == 2:
        lines.append("median of two members: exactly their mean")
    lines += plan.notes
    if plan.lr:
        lines.append("left/right exchanged to the consensus side: " + ", ".join(
            f"{lab} {int(v)}" for lab, v in zip(labels, sc.swaps)) + " images")
    if plan.weight_by == "keypoint" and plan.weights is not None:
        best = np.asarray(plan.weights).argmax(axis=0)
        lines.append("per-keypoint weights ∝ 1/rmse_k² of each member's predictions_val.csv; "
                     "keypoints where a member weighs most: "
                     + ", ".join(f"{lab} {int((best == i).sum())}" for i, lab in enumerate(labels))
                     + (" (weights from these same validation images: optimistic)"
                        if split == "val" else ""))
    if plan.use_scores and loaded.mixed:
        lines.append("weights by score: each member's scores divided by its median score (the "
                     "families score on different scales)")
    lines.append("filled from the other members: " + ", ".join(
        f"{lab} {int(f)}" for lab, f in zip(labels, result.fills_per_model)) + " images")
    lines += _alignment_lines(loaded, opts, result)
    fallback_names = [loaded.images[i] for i in result.fallback_images]
    if fallback_names:
        lines.append(f"fallback ({FALLBACK_RULE}) on {len(fallback_names)} images nobody "
                     f"detected: {short_list(fallback_names)}")
    else:
        lines.append("fallback: not needed (every image has a detection)")
    return lines


def _alignment_lines(loaded: Loaded, opts: FuseOptions, result: FusionResult) -> List[str]:
    m = len(loaded.main)
    other = {} if result.other_person_per_model is None else dict(
        zip(loaded.labels, (int(v) for v in result.other_person_per_model)))
    if opts.align and m >= 3:
        return [f"same person (box IoU >= {opts.min_iou} with the {opts.align_reference} box): "
                + (", ".join(f"{lab} {v}" for lab, v in other.items() if v)
                   + " images on another person, left out" if any(other.values())
                   else "every member on the same person")]
    if opts.align and m == 2:
        return ["same person: not checked (two members: no majority)"]
    return []


# ------------------------------------------------------------------------------ writing


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


def output_stem(out: PathLike | None, split: str, method: str, runs: Sequence[PathLike],
                options: Sequence[object] = ()) -> Tuple[Path, str]:
    """``(folder, stem)`` of this invocation's pictures: the output file's folder and stem, or
    without one ``outputs/ensemble`` and a stem from the options and runs (a short hash), so two
    ensembles with other options never write the same picture names."""
    if out is not None:
        return Path(out).parent, Path(out).stem
    key = "|".join([split, method] + [str(Path(r).resolve()) for r in runs]
                   + [str(o) for o in options])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Path("outputs/ensemble"), f"ensemble_{method}_{split}_{digest}"


def write_outputs(loaded: Loaded, final: np.ndarray, out: Path | None) -> List[str]:
    """Stage 5a: the submission (test) or the fused keypoint CSV (val)."""
    if out is None:
        return []
    n, paths = len(loaded.images), loaded.paths
    if loaded.split == "test":
        write_submission(loaded.images, final, paths.sample_submission, out)
        return [f"wrote {out} ({n} rows; checked against {paths.sample_submission})"]
    write_keypoint_csv(keypoints_frame(loaded.images, final), out, kind="fused predictions")
    return [f"wrote {out} ({n} rows)"]


def write_samples(loaded: Loaded, plan: Plan, final: np.ndarray, folder: Path, stem: str,
                  samples: int, seed: int) -> List[Path]:
    """Stage 5b: a sample grid per member (``<run>/samples/``) and of the ensemble
    (``<folder>/<stem>_samples.jpg``)."""
    from ..visualize import save_samples

    paths = loaded.paths
    image_dir = paths.test_images if loaded.split == "test" else paths.train_images
    written = []
    for lab, m, fam in zip(loaded.labels, loaded.chosen(plan), loaded.families):
        written.append(save_samples(
            image_dir, loaded.images, m.coords, m.run_dir / "samples" / f"{loaded.split}_samples.jpg",
            n=samples, seed=seed, boxes=m.boxes, title=f"{lab} ({fam}, {loaded.split})",
        ))
    written.append(save_samples(
        image_dir, loaded.images, final, folder / f"{stem}_samples.jpg", n=samples, seed=seed,
        title=f"ensemble ({method_name(plan, len(loaded.main))}, {loaded.split})",
    ))
    return written


def write_error_picture(loaded: Loaded, plan: Plan, sc: Scores, final: np.ndarray, folder: Path,
                        stem: str, html: bool = False, worst: int = 4) -> List[Path]:
    """Stage 5c: the error picture ``<folder>/<stem>_errors.png`` (and ``_errors.html``):
    per-keypoint RMSE of each member, the fusion and the mean pose, per-camera RMSE, and the
    ``worst`` images of the fusion with truth and prediction drawn."""
    from ..visualize import ErrorReport, save_error_report

    paths = loaded.paths
    image_dir = paths.test_images if loaded.split == "test" else paths.train_images
    preds = {lab: fuse_group([m], plan, FuseOptions(), [i], loaded.mean_pose)[0].coords
             for i, (lab, m) in enumerate(zip(loaded.labels, loaded.chosen(plan)))}
    preds[f"ensemble ({method_name(plan, len(loaded.main))})"] = final
    preds[MEAN_POSE_ROW] = loaded.mean_pose()
    report = ErrorReport.from_arrays(
        f"ensemble on {loaded.split} ({len(loaded.images)} images)", loaded.images, loaded.truth,
        preds, fused=final, image_dir=image_dir, worst=worst)
    return save_error_report(report, folder / f"{stem}_errors.png",
                             folder / f"{stem}_errors.html" if html else None)


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
        smooth = "auto" if _has_val_predictions(runs) else "off"
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
