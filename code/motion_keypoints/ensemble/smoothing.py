"""Temporal smoothing of the fused predictions in the same go as the ensemble (issue 13.2).

The fused predictions become a table (image, coordinates, ``detected`` 0 for fallback poses, so
those are neither smoothed nor used) for :mod:`motion_keypoints.motion.smooth`, which groups rows
by clip and camera from the image names and never smooths across gaps or person switches.

Modes (:data:`SMOOTH_MODES`): ``auto`` chooses the smoothing on the fused *validation*
predictions (:func:`motion_keypoints.motion.smooth.choose_params`) and applies it only if it
lowers the validation RMSE; ``default`` applies the conservative default (frames at most
``DEFAULT_MAX_GAP`` apart: a sparse sequence comes out unchanged); ``off`` does nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from ..io.tables import keypoints_frame
from ..meta import COORD_COLUMNS

SMOOTH_MODES: Tuple[str, ...] = ("auto", "default", "off")


def prediction_table(images: Sequence[str], coords: np.ndarray,
                     fallback_images: Sequence[int] = ()) -> pd.DataFrame:
    """The fused predictions as a table; fallback poses are marked ``detected`` 0."""
    detected = np.ones(len(images), dtype=int)
    detected[list(fallback_images)] = 0
    return keypoints_frame(images, coords, extra={"detected": detected})


def coords_of(df: pd.DataFrame) -> np.ndarray:
    """``(N, K, 2)`` coordinates of a keypoint table."""
    return df[list(COORD_COLUMNS)].to_numpy(dtype=float).reshape(len(df), -1, 2)


def smooth_fused(
    mode: str,
    table: pd.DataFrame,
    split: str,
    val_table: Callable[[], pd.DataFrame],
    val_truth: Callable[[Sequence[str]], pd.DataFrame],
) -> Tuple[np.ndarray | None, Dict[str, Any], List[str]]:
    """Smooth the fused predictions ``table`` (:func:`prediction_table`) by ``mode``.

    ``val_table()`` gives the fused validation predictions (called for ``auto`` only; on the val
    split pass ``table`` itself) and ``val_truth(images)`` their labels as a keypoint table.
    Returns the smoothed coordinates (None: unchanged), a report (mode, chosen, val_before,
    val_after, val_images, smoothed_rows) and the lines to print.
    """
    from ..motion import smooth as S

    if mode not in SMOOTH_MODES:
        raise ValueError(f"unknown smoothing mode {mode!r}; valid: {', '.join(SMOOTH_MODES)}")
    report: Dict[str, Any] = {"mode": mode, "chosen": S.OFF}
    lines: List[str] = []
    smoothed = None
    if mode == "default":
        smoothed = S.smooth_table(table)
        report["chosen"] = S.candidate_label({"method": S.DEFAULT_METHOD})
        lines.append(f"smoothing default: {report['chosen']} (not chosen on data)")
    elif mode == "auto":
        val_df = val_table()
        chosen, rep = S.choose_params(val_df, val_truth(list(val_df["image"])))
        report.update(val_before=rep["before"], val_after=rep["after"], val_images=rep["images"],
                      chosen=rep["chosen"])
        if chosen == S.OFF:
            lines.append(f"smoothing auto: no candidate lowers the validation RMSE "
                         f"({rep['before']:.3f} px on {rep['images']} images): smoothing off")
        else:
            method, params, max_gap, switch_k = S.parse_candidate(chosen)
            smoothed = S.smooth_table(table, method, params, max_gap, switch_k)
            lines.append(
                f"smoothing auto: chose {rep['chosen']} on {rep['images']} validation images: "
                f"validation RMSE {rep['before']:.3f} -> {rep['after']:.3f} px"
                + (" (chosen on these same images: optimistic)" if split == "val" else
                   f"; applied to the {split} predictions"))
    if smoothed is None:
        return None, report, lines
    rep = smoothed.attrs["smoothing"]
    report["smoothed_rows"] = rep["smoothed_rows"]
    report["outliers"] = rep["outliers"]
    lines.append(S.describe(rep))
    return coords_of(smoothed), report, lines
