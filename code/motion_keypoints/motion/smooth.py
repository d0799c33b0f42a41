"""Time-aware temporal smoothing of keypoints that never bridges a gap or a person switch.

Rows are grouped by clip and camera (the kit's file-name rule, see :mod:`motion_keypoints.split`)
and ordered by frame number. Within a group, *runs* are maximal stretches of frames whose
consecutive frame numbers differ by at most ``max_gap`` and between which no person switch was
detected; smoothing acts inside a run only, and a run of one frame comes out bitwise unchanged.
All filters work in the time of the actual frame numbers, never in rows:

* ``gaussian`` — Gaussian kernel regression, weights ``exp(-dt² / 2σ²)`` (``sigma`` in frames,
  truncated at ``radius`` frames, default ``3σ``);
* ``savgol`` — a local polynomial (``degree``, default 2) fitted by least squares to the points
  within ``half_window`` frames (a Savitzky–Golay filter in time, not in rows);
* ``one_euro`` — the One-Euro filter (Casiez et al. 2012), online, for video (``min_cutoff``,
  ``beta``, ``d_cutoff`` in Hz and ``fps``).

Missing points (NaN) are ignored by every filter and stay missing. Conservative defaults
(:data:`DEFAULT_MAX_GAP` = 1 frame: only consecutive frames) leave a sparse sequence — frames 7–8 apart, like the
competition's test images — exactly unchanged; :func:`choose_params` turns smoothing on only when
it lowers the RMSE of validation clips.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

try:  # the kit's file-name rule (``data.naming`` since the package re-layout)
    from ..data.naming import GROUP_PATTERN
except ImportError:  # pragma: no cover - older package layout
    from ..split import GROUP_PATTERN
try:  # the keypoint metadata module was renamed from ``keypoints`` to ``meta``
    from ..meta import COORD_COLUMNS
except ImportError:  # pragma: no cover - depends on the package layout
    from ..keypoints import COORD_COLUMNS

METHODS: Tuple[str, ...] = ("gaussian", "savgol", "one_euro")
#: Largest frame distance that still counts as "nearby": frames further apart are not smoothed
#: together. 1 (only consecutive frames) leaves any sparse sequence unchanged: on synthetic clips
#: with frames 2–11 apart a gap of 2 took noisy predictions from 3.01 to 3.60 px.
DEFAULT_MAX_GAP = 1
#: A jump of the median keypoint by more than this fraction of the body size (keypoint box
#: diagonal) per frame step is taken for a person switch.
DEFAULT_SWITCH_K = 0.25
DEFAULT_METHOD = "gaussian"
DEFAULT_PARAMS: Dict[str, Dict[str, float]] = {
    "gaussian": {"sigma": 1.5},
    "savgol": {"half_window": 4, "degree": 2},
    "one_euro": {"min_cutoff": 1.0, "beta": 0.05, "d_cutoff": 1.0, "fps": 30.0},
}
#: Candidates tried by :func:`choose_params` when none are given.
DEFAULT_CANDIDATES: Tuple[Dict[str, Any], ...] = (
    {"method": "gaussian", "sigma": 0.75, "max_gap": 2},
    {"method": "gaussian", "sigma": 1.5, "max_gap": 2},
    {"method": "gaussian", "sigma": 3.0, "max_gap": 2},
    {"method": "gaussian", "sigma": 1.5, "max_gap": 4},
    {"method": "savgol", "half_window": 4, "degree": 2, "max_gap": 2},
    {"method": "savgol", "half_window": 8, "degree": 2, "max_gap": 2},
    {"method": "one_euro", "min_cutoff": 1.0, "beta": 0.05, "max_gap": 2},
)
OFF = "off"


# ------------------------------------------------------------------------------------ names
def parse_frame_name(name: str) -> Optional[Tuple[str, str, int]]:
    """``(clip, camera, frame)`` of ``<clip>_<camera>-<frame>.<ext>``, else None."""
    match = GROUP_PATTERN.match(str(name))
    if match is None:
        return None
    return match["clip"], match["camera"], int(match["frame"])


# ------------------------------------------------------------------------------------- runs
def segments(
    frames, max_gap: int = DEFAULT_MAX_GAP, breaks: Optional[np.ndarray] = None
) -> List[np.ndarray]:
    """Index runs of nearby frames: ``frames`` (ascending ints) are cut where consecutive frames
    are more than ``max_gap`` apart or where ``breaks[i]`` is True (a switch between rows ``i-1``
    and ``i``). Returns a list of index arrays covering ``0..N-1`` in order."""
    frames = np.asarray(frames)
    n = len(frames)
    if n == 0:
        return []
    if frames.ndim != 1:
        raise ValueError(f"frames must be one-dimensional, got shape {frames.shape}")
    steps = np.diff(frames.astype(np.int64))
    if np.any(steps < 0):
        raise ValueError("frames must be in ascending order")
    cut = np.zeros(n, dtype=bool)
    cut[1:] = steps > max_gap
    if breaks is not None:
        breaks = np.asarray(breaks, dtype=bool)
        if breaks.shape != (n,):
            raise ValueError(f"breaks must have shape ({n},), got {breaks.shape}")
        cut[1:] |= breaks[1:]
    starts = np.flatnonzero(cut)
    return [np.asarray(r) for r in np.split(np.arange(n), starts)]


def detect_switches(xy, frames=None, k: float = DEFAULT_SWITCH_K) -> np.ndarray:
    """Boolean ``(N,)``: True at ``i`` when rows ``i-1`` → ``i`` jump implausibly (a person switch).

    The jump is the median over keypoints of their displacement, divided by the frame step (when
    ``frames`` are given) and by the body size (diagonal of the keypoint box, the larger of the
    two frames); a jump above ``k`` is a switch. A frame with no finite keypoint is skipped: the
    next frame is compared with the last frame that had one.
    """
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 3 or xy.shape[-1] != 2:
        raise ValueError(f"expected (frames, keypoints, 2), got {xy.shape}")
    n = len(xy)
    out = np.zeros(n, dtype=bool)
    seen = np.flatnonzero(np.isfinite(xy).all(axis=-1).any(axis=-1))
    if len(seen) < 2:
        return out
    cur, prev = seen[1:], seen[:-1]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # keypoints missing in one of the pair
        disp = np.nanmedian(np.linalg.norm(xy[cur] - xy[prev], axis=-1), axis=1)
        lo, hi = np.nanmin(xy[seen], axis=1), np.nanmax(xy[seen], axis=1)
        size = np.linalg.norm(hi - lo, axis=-1)
        size = np.fmax(size[1:], size[:-1])
        step = (cur - prev).astype(float)
        if frames is not None:
            f = np.asarray(frames, dtype=float)
            step = f[cur] - f[prev]
        rate = disp / np.maximum(step, 1.0) / np.maximum(size, 1.0)
    out[cur] = np.nan_to_num(rate, nan=0.0) > k
    return out


# ---------------------------------------------------------------------------------- filters
def _flat(t, xy) -> Tuple[np.ndarray, np.ndarray, Tuple[int, ...]]:
    t = np.asarray(t, dtype=float)
    xy = np.asarray(xy, dtype=float)
    if t.ndim != 1 or len(t) != len(xy):
        raise ValueError(f"t must be (N,) matching xy's first axis, got {t.shape} and {xy.shape}")
    if len(t) > 1 and np.any(np.diff(t) < 0):
        raise ValueError("t must be in ascending order")
    return t, xy.reshape(len(xy), -1), xy.shape


def _windows(t: np.ndarray, radius: float) -> Tuple[np.ndarray, np.ndarray]:
    """``idx (N, W)`` of the rows within ``radius`` of each row (padded) and their validity."""
    lo = np.searchsorted(t, t - radius, side="left")
    hi = np.searchsorted(t, t + radius, side="right")
    width = int(np.max(hi - lo)) if len(t) else 0
    idx = lo[:, None] + np.arange(width)[None, :]
    valid = idx < hi[:, None]
    return np.minimum(idx, len(t) - 1), valid


def gaussian_smooth(t, xy, sigma: float, radius: Optional[float] = None) -> np.ndarray:
    """Gaussian kernel regression over time ``t`` (frames): each value becomes the mean of the
    finite values within ``radius`` (default ``3σ``) weighted by ``exp(-dt²/2σ²)``.

    ``xy`` is ``(N, ...)``; NaNs are ignored and stay NaN. Call it on one run (see
    :func:`smooth_sequence`, which never smooths across gaps or switches).
    """
    t, y, shape = _flat(t, xy)
    if sigma <= 0 or len(t) < 2:
        return y.reshape(shape).copy()
    radius = 3.0 * sigma if radius is None else float(radius)
    idx, valid = _windows(t, radius)
    dt = t[idx] - t[:, None]
    w = np.exp(-0.5 * (dt / sigma) ** 2) * valid  # (N, W)
    vals = y[idx]  # (N, W, C)
    finite = np.isfinite(vals)
    wc = w[:, :, None] * finite
    total = wc.sum(axis=1)
    num = np.where(finite, vals, 0.0) * wc
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num.sum(axis=1) / total
    out = np.where((total > 0) & np.isfinite(y), out, y)  # missing stays missing
    return out.reshape(shape)


def savgol_smooth(t, xy, half_window: float, degree: int = 2) -> np.ndarray:
    """Local polynomial smoothing in time: at each frame, the least-squares polynomial of
    ``degree`` through the finite values within ``half_window`` frames, evaluated there.

    The window is in frames of ``t``, not rows, so missing frames shrink it instead of
    stretching it. Where fewer points than ``degree + 1`` are available the degree drops;
    NaNs are ignored and stay NaN.
    """
    t, y, shape = _flat(t, xy)
    degree = int(degree)
    if half_window <= 0 or len(t) < 2 or degree < 0:
        return y.reshape(shape).copy()
    idx, valid = _windows(t, float(half_window))
    dt = (t[idx] - t[:, None]) / float(half_window)  # scaled to [-1, 1] for conditioning
    vals = y[idx]
    finite = np.isfinite(vals) & valid[:, :, None]
    w = finite.astype(float)  # (N, W, C)
    yv = np.where(finite, vals, 0.0)
    count = w.sum(axis=1)  # (N, C)
    powers = dt[:, :, None] ** np.arange(2 * degree + 1)  # (N, W, P)
    moments = np.einsum("nwc,nwp->ncp", w, powers)  # (N, C, 2d+1)
    rhs_all = np.einsum("nwc,nwp->ncp", w * yv, powers[:, :, : degree + 1])  # (N, C, d+1)
    out = y.copy()
    for d in range(degree + 1):
        # distinct times matter, not just points; duplicates leave the system singular and the
        # pseudo-inverse below still gives the least-squares value
        sel = count >= d + 1
        if not np.any(sel):
            continue
        ij = np.arange(d + 1)
        mat = moments[sel][:, ij[:, None] + ij[None, :]]
        rhs = rhs_all[sel][:, : d + 1]
        try:
            beta = np.linalg.solve(mat, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            beta = np.einsum("bij,bj->bi", np.linalg.pinv(mat), rhs)
        out[sel] = beta[:, 0]
    out = np.where(np.isfinite(y), out, y)  # missing stays missing
    return out.reshape(shape)


def one_euro(
    t,
    xy,
    min_cutoff: float = 1.0,
    beta: float = 0.0,
    d_cutoff: float = 1.0,
    fps: float = 30.0,
) -> np.ndarray:
    """The One-Euro filter, online (each output uses only the current and earlier frames).

    ``t`` in frames, converted to seconds with ``fps``; cutoffs in Hz; ``beta`` (1/px) raises the
    cutoff with speed, trading jitter for lag. NaNs are skipped (state kept) and stay NaN.
    """
    t, y, shape = _flat(t, xy)
    out = y.copy()
    if len(t) < 2:
        return out.reshape(shape)

    def alpha(cutoff, dt):
        tau = 1.0 / (2.0 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    c = y.shape[1]
    x_prev = np.full(c, np.nan)
    dx_prev = np.zeros(c)
    t_prev = np.full(c, np.nan)
    for i in range(len(t)):
        x = y[i]
        ok = np.isfinite(x)
        first = ok & ~np.isfinite(x_prev)
        x_prev = np.where(first, x, x_prev)
        t_prev = np.where(first, t[i], t_prev)
        upd = ok & ~first
        if np.any(upd):
            dt = np.maximum((t[i] - t_prev[upd]) / fps, 1e-3 / fps)
            dx = (x[upd] - x_prev[upd]) / dt
            a_d = alpha(d_cutoff, dt)
            dx_hat = a_d * dx + (1.0 - a_d) * dx_prev[upd]
            cutoff = min_cutoff + beta * np.abs(dx_hat)
            a = alpha(cutoff, dt)
            x_hat = a * x[upd] + (1.0 - a) * x_prev[upd]
            out[i, upd] = x_hat
            x_prev[upd], dx_prev[upd], t_prev[upd] = x_hat, dx_hat, t[i]
    return out.reshape(shape)


def smooth_run(t, xy, method: str = DEFAULT_METHOD, params: Optional[Mapping] = None):
    """Apply one filter (:data:`METHODS`) to one run; ``params`` default to :data:`DEFAULT_PARAMS`."""
    if method not in METHODS:
        raise ValueError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
    kwargs = {**DEFAULT_PARAMS[method], **dict(params or {})}
    if method == "gaussian":
        return gaussian_smooth(t, xy, **kwargs)
    if method == "savgol":
        return savgol_smooth(t, xy, **kwargs)
    return one_euro(t, xy, **kwargs)


def _smooth_sequence(frames, xy, method, params, max_gap, breaks, switch_k):
    frames = np.asarray(frames)
    xy = np.asarray(xy, dtype=float)
    n = len(frames)
    out = xy.copy()
    stats = {"runs": 0, "smoothed_rows": 0, "switches": 0}
    if n == 0:
        return out, stats
    order = np.argsort(frames, kind="stable")
    f, p = frames[order], xy[order]
    cut = np.zeros(n, dtype=bool)
    if breaks is not None:
        cut |= np.asarray(breaks, dtype=bool)[order]
    if switch_k is not None and p.ndim == 3:
        switches = detect_switches(p, f, k=switch_k)
        near = np.zeros(n, dtype=bool)
        near[1:] = np.diff(f.astype(np.int64)) <= max_gap
        stats["switches"] = int(np.sum(switches & near))
        cut |= switches
    runs = segments(f, max_gap, cut)
    stats["runs"] = len(runs)
    for run in runs:
        if len(run) < 2:
            continue
        out[order[run]] = smooth_run(f[run], p[run], method, params)
        stats["smoothed_rows"] += len(run)
    return out, stats


def smooth_sequence(
    frames,
    xy,
    method: str = DEFAULT_METHOD,
    params: Optional[Mapping] = None,
    max_gap: int = DEFAULT_MAX_GAP,
    breaks: Optional[np.ndarray] = None,
    switch_k: Optional[float] = DEFAULT_SWITCH_K,
) -> np.ndarray:
    """Smooth ``xy`` ``(N, K, 2)`` of one clip and camera, in the input's row order.

    Rows are ordered by ``frames`` and cut into runs (:func:`segments`) at gaps over
    ``max_gap``, at ``breaks`` (aligned with the input rows) and at switches found by
    :func:`detect_switches` (``switch_k=None`` turns detection off); each run of two or more
    frames is smoothed, single frames are returned as they are.
    """
    return _smooth_sequence(frames, xy, method, params, max_gap, breaks, switch_k)[0]


# ------------------------------------------------------------------------------------ tables
def coordinate_columns(df: pd.DataFrame) -> List[str]:
    """The ``NAME_x, NAME_y`` columns of ``df``: the kit's when all present, else every
    ``*_x`` column that has a ``*_y`` partner (in the frame's order)."""
    if all(c in df.columns for c in COORD_COLUMNS):
        return list(COORD_COLUMNS)
    cols: List[str] = []
    for c in df.columns:
        c = str(c)
        if c.endswith("_x") and f"{c[:-2]}_y" in df.columns:
            cols += [c, f"{c[:-2]}_y"]
    if not cols:
        raise ValueError("no NAME_x / NAME_y coordinate columns in the table")
    return cols


def _sequences(df: pd.DataFrame, image_column: str):
    """``({(clip, camera): (row positions, frames)}, unparsed row count)``."""
    groups: Dict[Tuple[str, str], Tuple[List[int], List[int]]] = {}
    unparsed = 0
    for pos, name in enumerate(df[image_column].astype(str)):
        parsed = parse_frame_name(name)
        if parsed is None:
            unparsed += 1
            continue
        rows, frames = groups.setdefault(parsed[:2], ([], []))
        rows.append(pos)
        frames.append(parsed[2])
    return groups, unparsed


def smooth_table(
    df: pd.DataFrame,
    method: str = DEFAULT_METHOD,
    params: Optional[Mapping] = None,
    max_gap: int = DEFAULT_MAX_GAP,
    switch_k: Optional[float] = DEFAULT_SWITCH_K,
    image_column: str = "image",
) -> pd.DataFrame:
    """A smoothed copy of a keypoint, predictions or submission table (same rows, same order).

    Rows are grouped by (clip, camera) from the image name and smoothed in frame order within
    runs (:func:`smooth_sequence`). Rows whose name does not parse, and rows with ``detected``
    0 (fallback poses of a predictions CSV), are neither changed nor used. Only coordinate
    columns change. ``result.attrs["smoothing"]`` reports rows, unparsed, undetected, groups,
    runs, smoothed_rows and switches.
    """
    if method not in METHODS:
        raise ValueError(f"unknown smoothing method {method!r}; choose one of {', '.join(METHODS)}")
    if image_column not in df.columns:
        raise ValueError(f"the table has no {image_column!r} column")
    cols = coordinate_columns(df)
    out = df.copy()
    values = df[cols].to_numpy(dtype=float).reshape(len(df), -1, 2)
    new = values.copy()
    usable = np.ones(len(df), dtype=bool)
    if "detected" in df.columns:
        usable = df["detected"].to_numpy(dtype=float) != 0
    groups, unparsed = _sequences(df, image_column)
    report = {"method": method, "params": {**DEFAULT_PARAMS[method], **dict(params or {})},
              "max_gap": int(max_gap), "rows": len(df), "unparsed": unparsed,
              "undetected": int(np.sum(~usable)), "groups": len(groups), "runs": 0,
              "smoothed_rows": 0, "switches": 0}
    for rows, frames in groups.values():
        rows_a = np.asarray(rows)
        keep = usable[rows_a]
        rows_a, frames_a = rows_a[keep], np.asarray(frames)[keep]
        if len(rows_a) == 0:
            continue
        order = np.argsort(frames_a, kind="stable")
        rows_a, frames_a = rows_a[order], frames_a[order]
        sm, stats = _smooth_sequence(frames_a, values[rows_a], method, params, max_gap, None,
                                     switch_k)
        for key in ("runs", "smoothed_rows", "switches"):
            report[key] += stats[key]
        new[rows_a] = sm  # rows outside runs of two or more are exact copies
    flat_new, flat_old = new.reshape(len(df), -1), values.reshape(len(df), -1)
    for j, c in enumerate(cols):
        if not np.array_equal(flat_new[:, j], flat_old[:, j], equal_nan=True):
            out[c] = flat_new[:, j]
    out.attrs["smoothing"] = report
    return out


# ----------------------------------------------------------------------------------- metrics
def _accel_terms(gt, pred, frames) -> Tuple[float, int]:
    gt, pred = np.asarray(gt, dtype=float), np.asarray(pred, dtype=float)
    if gt.shape != pred.shape or gt.ndim != 3 or gt.shape[-1] != 2:
        raise ValueError(f"expected two (frames, keypoints, 2) arrays, got {gt.shape}, {pred.shape}")
    frames = np.asarray(frames)
    if frames.shape != (len(gt),):
        raise ValueError(f"frames must have shape ({len(gt)},), got {frames.shape}")
    order = np.argsort(frames, kind="stable")
    f, g, p = frames[order].astype(np.int64), gt[order], pred[order]
    if len(f) < 3:
        return 0.0, 0
    ok = (f[1:-1] - f[:-2] == 1) & (f[2:] - f[1:-1] == 1)
    acc_g = g[2:] - 2 * g[1:-1] + g[:-2]
    acc_p = p[2:] - 2 * p[1:-1] + p[:-2]
    err = np.linalg.norm(acc_p - acc_g, axis=-1)[ok]  # (triples, K)
    err = err[np.isfinite(err)]
    return float(err.sum()), int(err.size)


def acceleration_error(gt, pred, frames) -> float:
    """Jitter: mean over keypoints and over triples of consecutive frames (``f-1, f, f+1``) of
    ``‖Δ²pred − Δ²gt‖`` in pixels per frame². NaN when there is no such triple."""
    total, count = _accel_terms(gt, pred, frames)
    return total / count if count else float("nan")


def table_errors(
    pred_df: pd.DataFrame, truth_df: pd.DataFrame, image_column: str = "image"
) -> Dict[str, float]:
    """``{"images", "rmse", "accel"}`` of a predictions table against a truth table, on the
    images both hold (coordinate columns of the truth); accel per (clip, camera) sequence."""
    cols = coordinate_columns(truth_df)
    missing = [c for c in cols if c not in pred_df.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing[:4]}")
    merged = truth_df[[image_column] + cols].merge(
        pred_df[[image_column] + cols], on=image_column, suffixes=("_t", "_p")
    )
    if merged.empty:
        raise ValueError("no image of the truth table is in the predictions")
    gt = merged[[f"{c}_t" for c in cols]].to_numpy(float).reshape(len(merged), -1, 2)
    pr = merged[[f"{c}_p" for c in cols]].to_numpy(float).reshape(len(merged), -1, 2)
    total, count = 0.0, 0
    groups, _ = _sequences(merged, image_column)
    for rows, frames in groups.values():
        s, c = _accel_terms(gt[rows], pr[rows], frames)
        total, count = total + s, count + c
    # the competition RMSE (motion_keypoints' metrics.rmse): over all coordinates, in pixels
    rmse = float(np.sqrt(np.mean((pr - gt) ** 2)))
    return {"images": len(merged), "rmse": rmse,
            "accel": total / count if count else float("nan")}


def parse_candidate(c: Mapping[str, Any]) -> Tuple[str, Dict[str, Any], int, Optional[float]]:
    """``(method, params, max_gap, switch_k)`` of a candidate dict ``{"method", "max_gap", "switch_k", **params}``."""
    c = dict(c)
    method = c.pop("method", DEFAULT_METHOD)
    max_gap = int(c.pop("max_gap", DEFAULT_MAX_GAP))
    switch_k = c.pop("switch_k", DEFAULT_SWITCH_K)
    return method, c, max_gap, switch_k


def candidate_label(c: Mapping[str, Any]) -> str:
    """``gaussian(sigma=1.5, max_gap=2)`` for a candidate dict."""
    method, params, max_gap, _ = parse_candidate(c)
    inner = ", ".join(f"{k}={v}" for k, v in {**params, "max_gap": max_gap}.items())
    return f"{method}({inner})"


def choose_params(
    pred_df: pd.DataFrame,
    truth_df: pd.DataFrame,
    candidates: Sequence[Mapping[str, Any]] = DEFAULT_CANDIDATES,
    min_improvement: float = 0.0,
    image_column: str = "image",
) -> Tuple[Any, Dict[str, Any]]:
    """Pick the smoothing that lowers validation RMSE most, or ``"off"``.

    ``pred_df`` holds predictions (at least of the validation images, whole clips),
    ``truth_df`` their labels. Each candidate is a dict ``{"method", "max_gap", "switch_k",
    **params}``; it is applied to ``pred_df`` with :func:`smooth_table` and scored on the
    images of ``truth_df``. Returns ``(best candidate dict | "off", report)``; the best is
    returned only if its RMSE is below the unsmoothed RMSE by more than ``min_improvement``
    pixels. The report holds ``before`` (rmse, accel), one entry per candidate and ``chosen``.
    """
    before = table_errors(pred_df, truth_df, image_column)
    report: Dict[str, Any] = {"images": before["images"], "before": before["rmse"],
                              "accel_before": before["accel"], "candidates": []}
    best, best_rmse = None, before["rmse"] - float(min_improvement)
    for cand in candidates:
        method, params, max_gap, switch_k = parse_candidate(cand)
        smoothed = smooth_table(pred_df, method, params, max_gap, switch_k, image_column)
        after = table_errors(smoothed, truth_df, image_column)
        entry = {"candidate": candidate_label(cand), "after": after["rmse"],
                 "accel_after": after["accel"],
                 "smoothed_rows": smoothed.attrs["smoothing"]["smoothed_rows"]}
        report["candidates"].append(entry)
        if after["rmse"] < best_rmse:
            best, best_rmse = dict(cand), after["rmse"]
    report["chosen"] = candidate_label(best) if best is not None else OFF
    report["after"] = best_rmse if best is not None else before["rmse"]
    return (best if best is not None else OFF), report
