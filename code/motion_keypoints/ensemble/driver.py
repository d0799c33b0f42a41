"""The ensemble driver: load the members' predictions (run folders of any model family), check
they can be fused, fuse them (:mod:`.fuse`), score members and ensemble against labels, write the
submission (or the fused validation CSV) and sample pictures.

A member that detected nobody on an image is left out there and filled from the others (counted
per member). When no member has a prediction, the **fallback** is the mean training pose
(:func:`motion_keypoints.evaluation.evaluate.training_mean_pose`: the training rows of the
members' split, in image-relative units, scaled into the image); such images are counted and
named. Missing values are never written as zeros.

Members of any family (``run_info.json`` "family": ``rcnn`` or ``heatmap``; a run without the key
predates the heatmap family and is ``rcnn``) share the predictions CSV and fuse with every method.
Before fusing, members are aligned on the same person by box overlap (:func:`.fuse.align_by_boxes`);
a member on another person is left out on that image and counted. The fused predictions can be
smoothed over time in the same go (``smooth``: :mod:`motion_keypoints.motion.smooth`). The command line is
:mod:`motion_keypoints.cli.ensemble`; this module never imports detectron2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from ..data.layout import DataPaths, load_train_df
from ..evaluation import metrics
from ..evaluation.evaluate import format_table, short_list, training_mean_pose, truth_for
from ..io.predictions import PREDICTION_SPLITS, RunPredictions, load_member_predictions
from ..io.runs import SPLIT_FILE, split_val_images
from ..io.tables import keypoints_frame, write_keypoint_csv
from ..meta import FLIP_PAIRS, KEYPOINT_NAMES
from ..submission import write_submission
from ..utils import PathLike
from .fuse import (
    ALIGN_REFERENCES,
    METHODS,
    EnsembleError,
    FusionResult,
    align_by_boxes,
    fuse_with_fallback,
    keypoint_rmse_weights,
    rmse_weights,
)
from .smoothing import SMOOTH_MODES, prediction_table, smooth_fused

#: ``weighted``: by run_info val_rmse (per member), by keypoint scores, or by each member's
#: per-keypoint RMSE on its validation predictions (per member and keypoint).
WEIGHT_BY: Tuple[str, ...] = ("rmse", "score", "keypoint")
#: Order of the families in the table; others follow in the order given.
FAMILY_ORDER: Tuple[str, ...] = ("rcnn", "heatmap")
DEFAULT_MIN_IOU = 0.3

FALLBACK_RULE = "mean training pose (image-relative) scaled into the image"

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
class EnsembleSummary:
    """What :func:`run_ensemble` did; ``rmse``/``rmse_noflip`` map member labels and
    ``"ensemble"`` to RMSE (None: not available; ``"ensemble"`` is before smoothing). ``coords``
    are what was written (smoothed when smoothing was applied). ``families`` maps labels to
    families, ``other_person`` labels to images left out by the same-person alignment, and
    ``smoothing`` says what the smoothing stage did (mode, chosen, RMSE before/after)."""

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


def _ensemble_table(labels, families, members, result: FusionResult, method, weights, rmse,
                    rmse_nf, has_noflip: bool, extra_rows=(), after_rows=()) -> str:
    """Members grouped by family and the fusion(s) side by side: detections, fills, members on
    another person, drops, weights, RMSEs. ``extra_rows``: ``(name, rmse, rmse no flip)`` rows
    (the fusion of each family) put before the ensemble row, ``after_rows`` (the smoothed
    ensemble) after it."""
    n = len(members[0].images)
    headers = ["member", "family", "detected", "filled"]
    w_col = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        w_col = [float(v) for v in (w if w.ndim == 1 else w.mean(axis=1))]
    extra = {
        "other person": None if result.other_person_per_model is None
        else [int(d) for d in result.other_person_per_model],
        "outliers dropped": None if result.dropped_per_model is None
        else [int(d) for d in result.dropped_per_model],
        ("weight" if weights is None or np.ndim(weights) == 1 else "mean weight"): w_col,
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
            vals = {"RMSE": r, "RMSE no flip": r_nf}
            rows.append([name, None, None, None] + [vals.get(k) for k in extra])

    fusion_rows(extra_rows)
    ensemble = {"RMSE": rmse.get("ensemble"), "RMSE no flip": rmse_nf.get("ensemble")}
    fam = "+".join(dict.fromkeys(families[i] for i in family_order(families)))
    rows.append([f"ensemble ({method})", fam, f"{n - result.fallback_count}/{n}", None]
                + [ensemble.get(k) for k in extra])
    fusion_rows(after_rows)
    return format_table(headers + list(extra), rows)


def run_ensemble(
    runs: Sequence[PathLike],
    data_root: PathLike,
    split: str = "test",
    method: str = "mean",
    out: PathLike | None = None,
    *,
    weight_by: str = "rmse",
    k: float = 2.0,
    align: bool = True,
    min_iou: float = DEFAULT_MIN_IOU,
    align_reference: str = "median",
    smooth: str | None = "off",
    samples: int = 8,
    samples_dir: PathLike | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> EnsembleSummary:
    """Fuse the runs' ``predictions_<split>.csv`` and write ``out``.

    test: ``out`` is the submission (sample_submission.csv columns and order, validated); val:
    ``out`` is a keypoint CSV of the fused predictions. RMSEs of each member (grouped by family),
    the fusion per family (when there are several) and the ensemble and, where
    ``predictions_<split>_noflip.csv`` exist, without flip TTA, are printed side by side when
    labels exist (val: train_df.csv; test: test_labels.csv). With ``samples`` > 0, sample grids
    go to ``<run>/samples/`` and to ``samples_dir`` (default: ``samples/`` next to ``out``, else
    ``outputs/ensemble/samples``).

    ``weight_by`` (``weighted`` only): ``rmse`` (run_info val_rmse), ``score`` (keypoint scores;
    rescaled per member when families are mixed) or ``keypoint`` (per member and keypoint,
    ∝ 1/rmse_k² of the member's ``predictions_val.csv``). A member without validation (val_rmse
    null, no validation predictions) is a clear error for ``rmse``/``keypoint``, never a silent
    equal weight. ``align``: leave out, per image, members whose box overlaps the consensus box
    by less than ``min_iou`` (:func:`.fuse.align_by_boxes`). ``smooth``: ``off``, ``default``
    (the conservative default smoothing), ``auto`` (chosen on the fused validation predictions,
    applied only if it lowers the validation RMSE) or None (``auto`` when every member has
    ``predictions_val.csv``, else ``off``).
    """
    if method not in METHODS:
        raise EnsembleError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if split not in PREDICTION_SPLITS:
        raise EnsembleError(f"unknown split {split!r}; valid: {', '.join(PREDICTION_SPLITS)}")
    if weight_by not in WEIGHT_BY:
        raise EnsembleError(f"unknown --weight-by {weight_by!r}; valid: {', '.join(WEIGHT_BY)}")
    if smooth is not None and smooth not in SMOOTH_MODES:
        raise EnsembleError(f"unknown --smooth {smooth!r}; valid: {', '.join(SMOOTH_MODES)}")
    if align_reference not in ALIGN_REFERENCES:
        raise EnsembleError(f"unknown alignment reference {align_reference!r}; valid: "
                            f"{', '.join(ALIGN_REFERENCES)}")
    if not 0 < min_iou <= 1:
        raise EnsembleError(f"--min-iou must be in (0, 1]; got {min_iou}")
    if not runs:
        raise EnsembleError("no runs given")
    resolved = [Path(r).resolve() for r in runs]
    dup = [str(r) for r in runs if resolved.count(Path(r).resolve()) > 1]
    if dup:
        raise EnsembleError(f"run given more than once: {dup[0]}")
    paths = DataPaths.from_root(data_root)
    if out is not None:  # before any work: never write over an input (the data, the runs)
        from ..io.guards import check_output, check_writable_file

        member_files = [Path(r) / f"predictions_{s}{tail}.csv" for r in runs
                        for s in PREDICTION_SPLITS for tail in ("", "_noflip")]
        check_output(out, data_root=data_root, runs=runs, inputs=member_files)
        check_writable_file(out)
    members = [load_member_predictions(r, split, data_root) for r in runs]
    check_compatible(members, split)
    images = members[0].images
    if samples > 0:  # the pictures need the images: a missing one is named before any work
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
    members = [m.aligned(images) for m in members]
    noflip = [load_member_predictions(r, split, data_root, noflip=True) for r in runs]
    for main_run, nf in zip(members, noflip):
        if nf is not None:
            check_compatible([main_run, nf], split)
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    labels = _labels(runs)
    families = [member_family(m.info) for m in members]
    sizes = members[0].sizes
    if smooth is None:
        smooth = "auto" if _has_val_predictions(runs) else "off"
        smooth_note = ("auto: every member has predictions_val.csv" if smooth == "auto" else
                       "off: not every member has predictions_val.csv to choose it on")
    else:
        smooth_note = "off" if smooth == "off" else None

    train_cache: List[object] = []

    def train_df():
        if not train_cache:
            train_cache.append(load_train_df(paths.root))
        return train_cache[0]

    val_cache: List[List[RunPredictions]] = []

    def val_members(why: str) -> List[RunPredictions]:
        if not val_cache:
            val_cache.append(members if split == "val" else _val_members(runs, data_root, why))
        return val_cache[0]

    weights = None
    if method == "weighted" and weight_by == "rmse":
        rmses = [m.info.get("val_rmse") for m in members]
        for m, r in zip(members, rmses):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise EnsembleError(
                    f"--method weighted --weight-by rmse needs a positive val_rmse in every "
                    f"run_info.json; {m.run_dir} has {r!r} (a run trained without validation): "
                    "use --weight-by score or another method"
                )
        weights = rmse_weights(rmses)
    elif method == "weighted" and weight_by == "keypoint":
        per_kp = np.stack([member_keypoint_rmse(v, train_df(), paths.train_csv)
                           for v in val_members("--weight-by keypoint")])
        try:
            weights = keypoint_rmse_weights(per_kp)
        except ValueError as exc:
            raise EnsembleError(f"--weight-by keypoint: {exc}") from None
    use_scores = method == "weighted" and weight_by == "score"
    mixed = len(set(families)) > 1

    fallback_cache: List[np.ndarray] = []

    def fallback() -> np.ndarray:
        if not fallback_cache:
            # The one mean pose of the kit: the training rows of the members' split (they
            # share it), as the trainer's evaluator uses it.
            split_file = members[0].run_dir / SPLIT_FILE
            val = split_val_images(members[0].run_dir) if split_file.is_file() else (
                images if split == "val" else ())
            rel = training_mean_pose(data_root, exclude=val)
            fallback_cache.append(metrics.scale_pose(rel, sizes))
        return fallback_cache[0]

    def fused(group: Sequence[RunPredictions], idx: Sequence[int] | None = None,
              fb_sizes=None) -> FusionResult:
        """Fusion of ``group`` (members ``idx`` of the run list; default all, in order)."""
        idx = list(range(len(group))) if idx is None else list(idx)
        c = np.stack([g.coords for g in group])
        missing = ~np.isfinite(c).all(axis=-1).any(axis=0).all(axis=-1)
        fb = None
        if missing.any():
            fb = fallback() if fb_sizes is None else metrics.scale_pose(
                training_mean_pose(data_root, exclude=group[0].images), fb_sizes)
        s = None
        if use_scores:
            s = np.stack([g.scores for g in group])
            if mixed:  # families score on other scales: a typical keypoint weighs 1 in each
                s = s / _score_scales(group)[:, None, None]
        w = None if weights is None else np.asarray(weights)[idx]
        mth = method if len(group) > 1 else "mean"
        same = None
        if align and len(group) >= 3:
            same = align_by_boxes(np.stack([g.boxes for g in group]),
                                  np.stack([np.asarray(g.detected, bool) for g in group]),
                                  min_iou, align_reference)
        return fuse_with_fallback(c, mth, weights=w, scores=s, k=k, fallback=fb, same_person=same)

    result = fused(members)
    fallback_names = [images[i] for i in result.fallback_images]

    truth = None
    if split == "val":
        truth = truth_for(images, paths.train_csv, train_df())
    elif paths.test_labels.is_file():
        truth = truth_for(images, paths.test_labels)

    rmse: Dict[str, float | None] = {}
    rmse_nf: Dict[str, float | None] = {}
    extra_rows: List[Tuple[str, float | None, float | None]] = []
    after_rows: List[Tuple[str, float | None, float | None]] = []
    all_nf = all(nf is not None for nf in noflip)
    if truth is not None:
        for lab, m, nf in zip(labels, members, noflip):
            rmse[lab] = metrics.rmse(fused([m]).coords, truth)
            rmse_nf[lab] = None if nf is None else metrics.rmse(fused([nf]).coords, truth)
        rmse["ensemble"] = metrics.rmse(result.coords, truth)
        rmse_nf["ensemble"] = metrics.rmse(fused(noflip).coords, truth) if all_nf else None
        if mixed:  # each family's own fusion, to show what the other family adds
            for fam in dict.fromkeys(families[i] for i in family_order(families)):
                idx = [i for i, f in enumerate(families) if f == fam]
                if len(idx) < 2:
                    continue
                key = f"fusion {fam}"
                rmse[key] = metrics.rmse(fused([members[i] for i in idx], idx).coords, truth)
                rmse_nf[key] = metrics.rmse(fused([noflip[i] for i in idx], idx).coords, truth) \
                    if all(noflip[i] is not None for i in idx) else None
                extra_rows.append((f"{key} ({method})", rmse[key], rmse_nf[key]))

    # ------------------------------------------------------------------ smoothing in one go
    table_df = prediction_table(images, result.coords, result.fallback_images)

    def val_table():
        if split == "val":
            return table_df
        vm = val_members("--smooth auto")
        vr = fused(vm, fb_sizes=vm[0].sizes)
        return prediction_table(vm[0].images, vr.coords, vr.fallback_images)

    def val_truth(names):
        return keypoints_frame(names, truth_for(names, paths.train_csv, train_df()))

    smoothed, smoothing, smooth_lines = smooth_fused(smooth, table_df, split, val_table, val_truth)
    final = result.coords if smoothed is None else smoothed
    if smoothed is not None and truth is not None:
        before, after = rmse["ensemble"], metrics.rmse(final, truth)
        smoothing.update(before=before, after=after)
        rmse["ensemble smoothed"] = after
        after_rows.append((f"ensemble ({method}) smoothed", after, None))
        smooth_lines.append(f"{split} RMSE before / after smoothing: {before:.3f} / {after:.3f} px")

    n = len(images)
    has_noflip = truth is not None and any(nf is not None for nf in noflip)
    table = _ensemble_table(labels, families, members, result, method, weights, rmse, rmse_nf,
                            has_noflip, extra_rows, after_rows)

    detail = f" (k={k})" if method == "robust" else f" (by {weight_by})" if method == "weighted" else ""
    fam_count = ", ".join(f"{families.count(f)} {f}" for f in dict.fromkeys(
        families[i] for i in family_order(families)))
    echo(f"ensemble of {len(members)} runs ({fam_count}) on {split} ({n} images), "
         f"method {method}{detail}")
    echo(table)
    if truth is None:
        echo(f"no labels for {split} ({paths.test_labels} absent): RMSE not computed")
    elif has_noflip:
        echo(f"RMSE no flip: from predictions_{split}_noflip.csv (the same models without flip TTA)")
    if weight_by == "keypoint" and weights is not None:
        best = np.asarray(weights).argmax(axis=0)
        echo("per-keypoint weights ∝ 1/rmse_k² of each member's predictions_val.csv; keypoints "
             "where a member weighs most: "
             + ", ".join(f"{lab} {int((best == i).sum())}" for i, lab in enumerate(labels))
             + (" (weights from these same validation images: optimistic)" if split == "val"
                else ""))
    if use_scores and mixed:
        echo("weights by score: each member's scores divided by its median score (the families "
             "score on different scales)")
    fills = dict(zip(labels, (int(f) for f in result.fills_per_model)))
    echo("filled from the other members: " + ", ".join(f"{lab} {f}" for lab, f in fills.items()) + " images")
    other = {} if result.other_person_per_model is None else dict(
        zip(labels, (int(v) for v in result.other_person_per_model)))
    if align and len(members) >= 3:
        echo(f"same person (box IoU >= {min_iou} with the {align_reference} box): "
             + (", ".join(f"{lab} {v}" for lab, v in other.items() if v)
                + " images on another person, left out" if any(other.values())
                else "every member on the same person"))
    elif align and len(members) == 2:
        echo("same person: not checked (two members: no majority)")
    if fallback_names:
        echo(f"fallback ({FALLBACK_RULE}) on {len(fallback_names)} images nobody detected: "
             f"{short_list(fallback_names)}")
    else:
        echo("fallback: not needed (every image has a detection)")
    if smooth_note:
        echo(f"smoothing: {smooth_note}")
    for line in smooth_lines:
        echo(line)

    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if split == "test":
            write_submission(images, final, paths.sample_submission, out_path)
            echo(f"wrote {out_path} ({n} rows; checked against {paths.sample_submission})")
        else:
            write_keypoint_csv(keypoints_frame(images, final), out_path)
            echo(f"wrote {out_path} ({n} rows)")

    written: List[Path] = []
    if samples > 0:
        from ..visualize import save_samples

        image_dir = paths.test_images if split == "test" else paths.train_images
        for lab, m, fam in zip(labels, members, families):
            written.append(save_samples(
                image_dir, images, m.coords, m.run_dir / "samples" / f"{split}_samples.jpg",
                n=samples, seed=seed, boxes=m.boxes, title=f"{lab} ({fam}, {split})",
            ))
        if samples_dir is None:
            samples_dir = out_path.parent / "samples" if out_path else Path("outputs/ensemble/samples")
        written.append(save_samples(
            image_dir, images, final, Path(samples_dir) / f"ensemble_{method}_{split}.jpg",
            n=samples, seed=seed, title=f"ensemble ({method}, {split})",
        ))
        echo("samples: " + ", ".join(str(p) for p in written))

    dropped = result.dropped_per_model
    return EnsembleSummary(
        split=split, method=method, runs=labels, images=list(images), coords=final,
        fills=fills,
        fallback_images=fallback_names,
        dropped={} if dropped is None else dict(zip(labels, (int(d) for d in dropped))),
        rmse=rmse, rmse_noflip=rmse_nf, out=out_path, samples=written, table=table,
        families=dict(zip(labels, families)), other_person=other, weights=weights,
        smoothing=smoothing,
    )
