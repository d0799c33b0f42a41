"""Stage 4 of the ensemble: the table (members by family, fusions, RMSEs beside the mean pose)
and the lines the command prints (:func:`report_lines`; the caller prints)."""

from __future__ import annotations

from typing import List

import numpy as np

from ..evaluation import metrics
from ..evaluation.evaluate import format_table, short_list
from .fuse import FusionResult
from .members import Loaded, family_order
from .options import FALLBACK_RULE, MEAN_POSE_ROW, FuseOptions, Plan, method_name
from .scoring import Scores


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
