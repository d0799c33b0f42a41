"""The ensemble driver: load the members' predictions (run folders of any model family), check
they can be fused, fuse them (:mod:`.fuse`), score members and ensemble against labels, write the
submission (or the fused validation CSV) and sample pictures.

A member that detected nobody on an image is left out there and filled from the others (counted
per member). When no member has a prediction, the **fallback** is the mean training pose
(:func:`motion_keypoints.evaluation.evaluate.training_mean_pose`: the training rows of the
members' split, in image-relative units, scaled into the image); such images are counted and
named. Missing values are never written as zeros. The command line is
:mod:`motion_keypoints.cli.ensemble`; this module never imports detectron2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

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
from .fuse import METHODS, EnsembleError, FusionResult, fuse_with_fallback, rmse_weights

WEIGHT_BY: Tuple[str, ...] = ("rmse", "score")

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
    ``"ensemble"`` to RMSE (None: not available)."""

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



def _labels(runs: Sequence[PathLike]) -> List[str]:
    names = [Path(r).name for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def _ensemble_table(labels, members, result: FusionResult, method, weights, rmse, rmse_nf,
                    has_noflip: bool) -> str:
    """Members and the ensemble side by side: detections, fills, drops, weights, RMSEs."""
    n = len(members[0].images)
    headers = ["member", "detected", "filled"]
    extra = {
        "outliers dropped": None if result.dropped_per_model is None
        else [int(d) for d in result.dropped_per_model],
        "weight": None if weights is None else [float(w) for w in weights],
        "RMSE": [rmse[lab] for lab in labels] if rmse else None,
        "RMSE no flip": [rmse_nf[lab] for lab in labels] if has_noflip else None,
    }
    extra = {k: v for k, v in extra.items() if v is not None}
    ensemble = {"RMSE": rmse.get("ensemble"), "RMSE no flip": rmse_nf.get("ensemble")}
    rows: List[List[object]] = []
    for i, (lab, m) in enumerate(zip(labels, members)):
        rows.append([lab, f"{int(m.detected.sum())}/{n}", int(result.fills_per_model[i])]
                    + [v[i] for v in extra.values()])
    rows.append([f"ensemble ({method})", f"{n - result.fallback_count}/{n}", None]
                + [ensemble.get(k) for k in extra])
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
    samples: int = 8,
    samples_dir: PathLike | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> EnsembleSummary:
    """Fuse the runs' ``predictions_<split>.csv`` and write ``out``.

    test: ``out`` is the submission (sample_submission.csv columns and order, validated); val:
    ``out`` is a keypoint CSV of the fused predictions. RMSEs of each member, the ensemble and,
    where ``predictions_<split>_noflip.csv`` exist, without flip TTA, are printed side by side
    when labels exist (val: train_df.csv; test: test_labels.csv). With ``samples`` > 0, sample
    grids go to ``<run>/samples/`` and to ``samples_dir`` (default: ``samples/`` next to ``out``,
    else ``outputs/ensemble/samples``).
    """
    if method not in METHODS:
        raise EnsembleError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if split not in PREDICTION_SPLITS:
        raise EnsembleError(f"unknown split {split!r}; valid: {', '.join(PREDICTION_SPLITS)}")
    if weight_by not in WEIGHT_BY:
        raise EnsembleError(f"unknown --weight-by {weight_by!r}; valid: {', '.join(WEIGHT_BY)}")
    if not runs:
        raise EnsembleError("no runs given")
    resolved = [Path(r).resolve() for r in runs]
    dup = [str(r) for r in runs if resolved.count(Path(r).resolve()) > 1]
    if dup:
        raise EnsembleError(f"run given more than once: {dup[0]}")
    paths = DataPaths.from_root(data_root)
    if out is not None:  # before any work: never write over an input (the data, the runs)
        from ..io.guards import check_output, check_writable_file

        member_files = [Path(r) / f"predictions_{split}{tail}.csv" for r in runs
                        for tail in ("", "_noflip")]
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
    sizes = members[0].sizes

    weights = None
    if method == "weighted" and weight_by == "rmse":
        rmses = [m.info.get("val_rmse") for m in members]
        for m, r in zip(members, rmses):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise EnsembleError(
                    f"--method weighted --weight-by rmse needs a positive val_rmse in every "
                    f"run_info.json; {m.run_dir} has {r!r}: use --weight-by score or another method"
                )
        weights = rmse_weights(rmses)
    use_scores = method == "weighted" and weight_by == "score"

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

    def fused(group: Sequence[RunPredictions]) -> FusionResult:
        c = np.stack([g.coords for g in group])
        missing = ~np.isfinite(c).all(axis=-1).any(axis=0).all(axis=-1)
        fb = fallback() if missing.any() else None
        s = np.stack([g.scores for g in group]) if use_scores else None
        w = weights if len(group) == len(members) else None
        mth = method if len(group) > 1 else "mean"
        return fuse_with_fallback(c, mth, weights=w, scores=s, k=k, fallback=fb)

    result = fused(members)
    fallback_names = [images[i] for i in result.fallback_images]

    truth = None
    if split == "val":
        truth = truth_for(images, paths.train_csv, load_train_df(paths.root))
    elif paths.test_labels.is_file():
        truth = truth_for(images, paths.test_labels)

    rmse: Dict[str, float | None] = {}
    rmse_nf: Dict[str, float | None] = {}
    if truth is not None:
        for lab, m, nf in zip(labels, members, noflip):
            rmse[lab] = metrics.rmse(fused([m]).coords, truth)
            rmse_nf[lab] = None if nf is None else metrics.rmse(fused([nf]).coords, truth)
        rmse["ensemble"] = metrics.rmse(result.coords, truth)
        all_nf = all(nf is not None for nf in noflip)
        rmse_nf["ensemble"] = metrics.rmse(fused(noflip).coords, truth) if all_nf else None

    n = len(images)
    has_noflip = truth is not None and any(nf is not None for nf in noflip)
    table = _ensemble_table(labels, members, result, method, weights, rmse, rmse_nf, has_noflip)

    detail = f" (k={k})" if method == "robust" else f" (by {weight_by})" if method == "weighted" else ""
    echo(f"ensemble of {len(members)} runs on {split} ({n} images), method {method}{detail}")
    echo(table)
    if truth is None:
        echo(f"no labels for {split} ({paths.test_labels} absent): RMSE not computed")
    elif has_noflip:
        echo(f"RMSE no flip: from predictions_{split}_noflip.csv (the same models without flip TTA)")
    fills = dict(zip(labels, (int(f) for f in result.fills_per_model)))
    echo("filled from the other members: " + ", ".join(f"{lab} {f}" for lab, f in fills.items()) + " images")
    if fallback_names:
        echo(f"fallback ({FALLBACK_RULE}) on {len(fallback_names)} images nobody detected: "
             f"{short_list(fallback_names)}")
    else:
        echo("fallback: not needed (every image has a detection)")

    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if split == "test":
            write_submission(images, result.coords, paths.sample_submission, out_path)
            echo(f"wrote {out_path} ({n} rows; checked against {paths.sample_submission})")
        else:
            write_keypoint_csv(keypoints_frame(images, result.coords), out_path)
            echo(f"wrote {out_path} ({n} rows)")

    written: List[Path] = []
    if samples > 0:
        from ..visualize import save_samples

        image_dir = paths.test_images if split == "test" else paths.train_images
        for lab, m in zip(labels, members):
            written.append(save_samples(
                image_dir, images, m.coords, m.run_dir / "samples" / f"{split}_samples.jpg",
                n=samples, seed=seed, boxes=m.boxes, title=f"{lab} ({split})",
            ))
        if samples_dir is None:
            samples_dir = out_path.parent / "samples" if out_path else Path("outputs/ensemble/samples")
        written.append(save_samples(
            image_dir, images, result.coords, Path(samples_dir) / f"ensemble_{method}_{split}.jpg",
            n=samples, seed=seed, title=f"ensemble ({method}, {split})",
        ))
        echo("samples: " + ", ".join(str(p) for p in written))

    dropped = result.dropped_per_model
    return EnsembleSummary(
        split=split, method=method, runs=labels, images=list(images), coords=result.coords,
        fills=fills,
        fallback_images=fallback_names,
        dropped={} if dropped is None else dict(zip(labels, (int(d) for d in dropped))),
        rmse=rmse, rmse_noflip=rmse_nf, out=out_path, samples=written, table=table,
    )
