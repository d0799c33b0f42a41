"""Stage 3 of the ensemble: the fusion of the split by the plan and, with labels, the RMSEs of
members, family fusions, the ensemble and the mean pose (:func:`score`); the optional temporal
smoothing of the fusion (:func:`smooth_stage`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Tuple

import numpy as np

from ..evaluation import metrics
from ..evaluation.evaluate import truth_for
from ..io.problems import DataError
from ..io.tables import keypoints_frame
from .fuse import FusionResult
from .fusing import fuse_group, fused_rmse
from .members import Loaded, family_order
from .options import MEAN_POSE_ROW, FuseOptions, Plan, method_name
from .smoothing import prediction_table, smooth_fused


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
        sc.rmse[lab] = fused_rmse(loaded, [chosen[i]], plan, opts, [i])
        sc.rmse_noflip[lab] = None if noflip[i] is None else fused_rmse(loaded, [noflip[i]], plan,
                                                                         opts, [i])
    sc.rmse["ensemble"] = metrics.rmse(result.coords, loaded.truth)
    all_nf = all(nf is not None for nf in noflip)
    sc.rmse_noflip["ensemble"] = fused_rmse(loaded, noflip, plan, opts) if all_nf else None
    families = loaded.families
    if loaded.mixed:  # each family's own fusion, to show what the other family adds
        for fam in dict.fromkeys(families[i] for i in family_order(families)):
            idx = [i for i, f in enumerate(families) if f == fam]
            if len(idx) < 2:
                continue
            key = f"fusion {fam}"
            sc.rmse[key] = fused_rmse(loaded, [chosen[i] for i in idx], plan, opts, idx)
            sc.rmse_noflip[key] = fused_rmse(loaded, [noflip[i] for i in idx], plan, opts, idx) \
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
