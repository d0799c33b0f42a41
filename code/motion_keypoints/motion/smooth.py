"""Time-aware temporal smoothing of keypoints that never bridges a gap or a person switch.

Rows are grouped by clip and camera (the kit's file-name rule, see :mod:`motion_keypoints.split`)
and ordered by frame number. Within a group, *runs* are maximal stretches of frames whose
consecutive frame numbers differ by at most ``max_gap`` and between which no person switch was
detected; smoothing acts inside a run only, and a run of one frame comes out bitwise unchanged.
All filters work in the time of the actual frame numbers, never in rows:

* ``adaptive`` (default) — at each frame and keypoint, the raw point or one of a few Gaussian
  local quadratic fits, whichever has the smallest estimated error there (Stein's unbiased risk
  estimate with a robust noise level, :func:`adaptive_smooth`): it smooths noise where the
  motion is slow and leaves fast motion (a kick, a landing) as it is, so it never lags;
* ``gaussian`` — Gaussian-weighted local polynomial regression, weights ``exp(-dt² / 2σ²)``
  (``sigma`` in frames, truncated at ``radius`` frames, default ``3σ``; ``degree`` 1 by
  default: locally linear, no lag at constant velocity; 0 is the old locally constant mean);
* ``savgol`` — a local polynomial (``degree``, default 2) fitted by least squares to the points
  within ``half_window`` frames (a Savitzky–Golay filter in time, not in rows);
* ``one_euro`` — the One-Euro filter (Casiez et al. 2012), online, for video (``min_cutoff``,
  ``beta``, ``d_cutoff`` in Hz and ``fps``).

Before any filter, a point far from its neighbours' fit in its run (a detector's wild point) is
flagged, counted and replaced by that fit (:func:`flag_outliers`), so it moves no neighbour.
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

from ..data.naming import GROUP_PATTERN
from ..meta import COORD_COLUMNS

METHODS: Tuple[str, ...] = ("adaptive", "gaussian", "savgol", "one_euro")
#: Largest frame distance that still counts as "nearby": frames further apart are not smoothed
#: together. 1 (only consecutive frames) leaves any sparse sequence unchanged: on synthetic clips
#: with frames 2–11 apart a gap of 2 took noisy predictions from 3.01 to 3.60 px.
DEFAULT_MAX_GAP = 1
#: A jump of the median keypoint by more than this fraction of the body size (keypoint box
#: diagonal) per frame step is taken for a person switch.
DEFAULT_SWITCH_K = 0.25
#: The default smoother and its parameters, chosen on realistic 30 fps clips
#: (:mod:`motion_keypoints.data.synthetic.clips`: jumps, runs, kicks, jumping jacks, squats;
#: ``python benchmarks/motion.py``): of the Gaussian local fits (degree 0-2, σ 0.75-3 frames)
#: and their adaptive choice, the adaptive choice was the only one never worse than its input on
#: any clip (noise 0.5-6 px) while better on dense clips and runs with gaps; a fixed local
#: linear fit (σ 1) made a running clip's ankles 1.6x worse at 3 px noise.
DEFAULT_METHOD = "adaptive"
DEFAULT_PARAMS: Dict[str, Dict[str, Any]] = {
    "adaptive": {"fits": ((2, 1.0), (2, 1.5), (2, 2.5)), "risk_sigma": 3.0},
    "gaussian": {"sigma": 1.0, "degree": 1},
    "savgol": {"half_window": 4, "degree": 2},
    "one_euro": {"min_cutoff": 1.0, "beta": 0.05, "d_cutoff": 1.0, "fps": 30.0},
}
#: Candidates tried by :func:`choose_params` when none are given.
DEFAULT_CANDIDATES: Tuple[Dict[str, Any], ...] = (
    {"method": "adaptive"},
    {"method": "adaptive", "max_gap": 2},
    {"method": "gaussian", "sigma": 1.0, "degree": 1},
    {"method": "gaussian", "sigma": 1.5, "degree": 2, "max_gap": 2},
    {"method": "gaussian", "sigma": 3.0, "degree": 2, "max_gap": 2},
    {"method": "gaussian", "sigma": 1.5, "degree": 0, "max_gap": 2},
    {"method": "savgol", "half_window": 4, "degree": 2, "max_gap": 2},
    {"method": "one_euro", "min_cutoff": 1.0, "beta": 0.05, "max_gap": 2},
)
OFF = "off"
#: Outlier test of :func:`flag_outliers` (before any filter, in every run of three or more
#: frames): a point is flagged when its distance to its neighbours' fit exceeds OUTLIER_K times
#: the run's median distance and OUTLIER_FLOOR times the body size. The floor keeps real motion
#: unflagged (landings and kicks at 30 fps leave a few per cent of the body size from a local
#: linear fit); a detector's wild point (5000 px in a 480 px image) is far above both.
OUTLIER_K = 6.0
OUTLIER_FLOOR = 0.35
OUTLIER_SIGMA = 1.0
#: Most rounds of the outlier test (each flags the worst point of every neighbourhood).
OUTLIER_ROUNDS = 8


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


def _local_fit(t, y, w, idx, degree: int, scale: float, exclude=None, hat: bool = False):
    """Weighted least-squares polynomial of ``degree`` at each row ``n`` through the finite values
    ``y[idx[n]]`` with weights ``w (N, W)``, evaluated at ``t[n]`` (``(N, C)``; NaN where no value).

    ``exclude`` ``(N, C)`` marks values left out of every fit (flagged outliers). Where fewer
    points than ``degree + 1`` carry weight the degree drops; a singular system (duplicate times)
    gets the pseudo-inverse's least-squares value. With ``hat`` also returns the diagonal of the
    smoother matrix (``∂fit[n] / ∂y[n]``, ``(N, C)``), as ``(fit, diagonal)``."""
    dt = (t[idx] - t[:, None]) / scale  # (N, W), scaled for conditioning
    vals = y[idx]  # (N, W, C)
    use = np.isfinite(vals)
    if exclude is not None:
        use &= ~exclude[idx]
    wc = w[:, :, None] * use  # (N, W, C)
    yv = np.where(use, vals, 0.0)
    count = (wc > 0).sum(axis=1)  # (N, C)
    powers = dt[:, :, None] ** np.arange(2 * degree + 1)  # (N, W, P)
    moments = np.einsum("nwc,nwp->ncp", wc, powers)
    rhs_all = np.einsum("nwc,nwp->ncp", wc * yv, powers[:, :, : degree + 1])
    out, diag = np.full(y.shape, np.nan), np.zeros(y.shape)
    self_w = np.einsum("nwc,nw->nc", wc, (idx == np.arange(len(t))[:, None]).astype(float))
    for d in range(degree + 1):
        sel = count >= d + 1
        if not np.any(sel):
            continue
        ij = np.arange(d + 1)
        mat = moments[sel][:, ij[:, None] + ij[None, :]]
        rhs = np.zeros(mat.shape[:2] + (2,))
        rhs[:, :, 0], rhs[:, 0, 1] = rhs_all[sel][:, : d + 1], 1.0  # [Xᵀ W y, e0]
        try:
            sol = np.linalg.solve(mat, rhs)
        except np.linalg.LinAlgError:
            sol = np.linalg.pinv(mat) @ rhs
        out[sel], diag[sel] = sol[:, 0, 0], sol[:, 0, 1] * self_w[sel]
    return (out, diag) if hat else out


def _gaussian_weights(t: np.ndarray, sigma: float, radius: Optional[float]):
    radius = 3.0 * sigma if radius is None else float(radius)
    idx, valid = _windows(t, radius)
    dt = t[idx] - t[:, None]
    return idx, np.exp(-0.5 * (dt / sigma) ** 2) * valid


def gaussian_smooth(
    t, xy, sigma: float, degree: int = 1, radius: Optional[float] = None
) -> np.ndarray:
    """Gaussian-weighted local polynomial regression over time ``t`` (frames): each value becomes
    the value at its own time of the ``degree`` polynomial fitted by weighted least squares to the
    finite values within ``radius`` (default ``3σ``), weights ``exp(-dt²/2σ²)``.

    ``degree`` 0 is the locally constant fit (a weighted mean: it lags moving points and flattens
    turns); 1, the default, follows constant velocity exactly, so it never lags, even at the ends
    of a run. ``xy`` is ``(N, ...)``; NaNs are ignored and stay NaN. Call it on one run (see
    :func:`smooth_sequence`, which never smooths across gaps or switches).
    """
    t, y, shape = _flat(t, xy)
    if sigma <= 0 or len(t) < 2 or int(degree) < 0:
        return y.reshape(shape).copy()
    idx, w = _gaussian_weights(t, float(sigma), radius)
    out = _local_fit(t, y, w, idx, int(degree), float(sigma))
    out = np.where(np.isfinite(out) & np.isfinite(y), out, y)  # missing stays missing
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
    out = _local_fit(t, y, valid.astype(float), idx, degree, float(half_window))
    out = np.where(np.isfinite(out) & np.isfinite(y), out, y)  # missing stays missing
    return out.reshape(shape)


def _pseudo_residuals(t: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Each inner point minus the polynomial through its neighbours (two each side: a cubic, blind
    to acceleration; with under five frames one each side: a line), scaled to the noise's
    standard deviation under i.i.d. noise. ``(N - 2h, K, 2)``."""
    h = 2 if len(t) >= 5 else 1
    centre = np.arange(h, len(t) - h)
    offsets = [o for o in range(-h, h + 1) if o != 0]
    nb = np.stack([t[centre + o] for o in offsets])  # (M, N') neighbour times
    coef = np.ones_like(nb)
    for j in range(len(offsets)):  # Lagrange weights of the neighbours at the centre's time
        for m in range(len(offsets)):
            if m != j:
                coef[j] *= (t[centre] - nb[m]) / np.where(nb[j] == nb[m], 1e-9, nb[j] - nb[m])
    interp = sum(coef[j][:, None, None] * xy[centre + o] for j, o in enumerate(offsets))
    scale = np.sqrt(1.0 + (coef**2).sum(0))[:, None, None]
    return (xy[centre] - interp) / scale


def noise_scale(t, xy, min_samples: int = 20) -> np.ndarray:
    """Robust noise level (px per coordinate) of each keypoint of one run, ``(K,)``, from the
    pseudo-residuals of consecutive points (after Gasser, Sroka & Jennen-Steinmetz 1986: the
    distance of a point from the polynomial through its neighbours, scaled to unit variance
    under i.i.d. noise, :func:`_pseudo_residuals`), their median absolute deviation
    (``scipy.stats``). Fast motion
    (a landing, a kick) adds large pseudo-residuals in a few frames only, which the median
    ignores. A keypoint with fewer than ``min_samples``, or above the level of all keypoints, takes
    the level of all keypoints."""
    from scipy.stats import median_abs_deviation

    t = np.asarray(t, dtype=float)
    xy = np.asarray(xy, dtype=float)
    n = len(t)
    if n < 3:
        return np.full(xy.shape[1], np.nan)
    eps = _pseudo_residuals(t, xy)
    per_kp = eps.transpose(1, 0, 2).reshape(xy.shape[1], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        every = median_abs_deviation(per_kp, axis=None, scale="normal", nan_policy="omit")
        each = median_abs_deviation(per_kp, axis=1, scale="normal", nan_policy="omit")
    enough = np.isfinite(per_kp).sum(axis=1) >= min_samples
    # never above the level of all keypoints: a limb in fast motion all the time (a runner's
    # ankle) inflates its own estimate, and too high a level would over-smooth it
    return np.where(enough, np.fmin(each, every), every)


def adaptive_smooth(
    t, xy, fits: Sequence[Sequence[float]] = ((2, 1.0), (2, 1.5), (2, 2.5)),
    risk_sigma: float = 3.0,
    noise: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Local polynomial smoothing that chooses, at each frame and keypoint, between the raw point
    and the Gaussian local polynomial fits ``fits`` (``(degree, sigma)`` pairs), whichever has
    the smallest estimated error there, so it never trades a noisy point for a lagging one.

    The error of a fit is estimated without the truth by Stein's unbiased risk estimate for a
    linear smoother, ``(y - fit)² - s² + 2 s² h`` (``h`` the smoother's weight on the point
    itself, ``s`` the keypoint's noise level, :func:`noise_scale`), averaged over the frames
    near (Gaussian, ``risk_sigma`` frames); the raw point's error is ``s²``. Where motion is
    faster than a fit can follow, its bias shows in ``(y - fit)²`` and the raw point or a
    tighter fit wins; noise-free input (``s`` ≈ 0) comes out (almost) unchanged. ``xy`` is
    ``(N, K, 2)``; NaNs are ignored and stay NaN; a run of under three frames is unchanged.
    """
    t, y, shape = _flat(t, xy)
    n = len(t)
    if n < 3 or len(shape) != 3 or shape[-1] != 2:
        return y.reshape(shape).copy()
    k = shape[1]
    s = noise_scale(t, y.reshape(shape)) if noise is None else np.asarray(noise, dtype=float)
    s2 = np.repeat(np.nan_to_num(s, nan=0.0) ** 2, 2)[None, :]  # (1, C)
    ridx, rw = _gaussian_weights(t, float(risk_sigma), None)
    best = np.where(np.isfinite(y), s2, np.nan).reshape(n, k, 2).sum(-1)  # raw: s² per coordinate
    best = _local_mean(best, ridx, rw)
    out = y.copy()
    for degree, sigma in fits:
        idx, w = _gaussian_weights(t, float(sigma), None)
        fit, h = _local_fit(t, y, w, idx, int(degree), float(sigma), hat=True)
        risk = ((y - fit) ** 2 - s2 + 2.0 * s2 * h).reshape(n, k, 2).sum(-1)
        risk = _local_mean(risk, ridx, rw)
        better = (risk < best) & np.isfinite(risk)
        take = np.repeat(better, 2, axis=1) & np.isfinite(fit) & np.isfinite(y)
        out = np.where(take, fit, out)
        best = np.where(better, risk, best)
    return out.reshape(shape)


def _local_mean(v: np.ndarray, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over each row's window of ``v (N, G)`` (NaN ignored)."""
    vals = v[idx]  # (N, W, G)
    ok = np.isfinite(vals)
    wg = w[:, :, None] * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, vals, 0.0) * wg).sum(1) / wg.sum(1)


# --------------------------------------------------------------------------------- outliers
def _outlier_round(t, y, xy, w_loo, idx, degree, sigma, flags, k, floor_px, before, after):
    """One round of :func:`flag_outliers`: the neighbours' fit without ``flags`` and the point
    itself, the distances to it and which points are beyond the limit ``(fit, dist, big)``."""
    excl = np.repeat(flags, 2, axis=1)
    fit = _local_fit(t, y, w_loo, idx, int(degree), float(sigma), excl).reshape(xy.shape)
    dist = np.linalg.norm(xy - fit, axis=-1)  # (N, K), NaN where no value or no fit
    # the median over every keypoint: a wild point spoils its own keypoint's neighbours
    limit = np.fmax(k * np.nanmedian(np.where(flags, np.nan, dist)), floor_px)
    # where the neighbours' fit extrapolates (no usable neighbour on one side: the ends of a
    # run, or beside a flagged point) fast motion takes it far (a kick's last frame measured
    # 0.37 body sizes away): there the limit counts twice
    usable = np.isfinite(xy).all(-1) & ~flags  # (N, K)
    two_sided = (before[:, :, None] & usable[idx]).any(1) & (after[:, :, None] & usable[idx]).any(1)
    big = np.nan_to_num(dist, nan=0.0) > limit * np.where(two_sided, 1.0, 2.0)
    return fit, dist, big


def flag_outliers(
    t, xy, sigma: float = OUTLIER_SIGMA, degree: int = 1, k: float = OUTLIER_K,
    floor: float = OUTLIER_FLOOR,
) -> Tuple[np.ndarray, np.ndarray]:
    """Points of one run far from their neighbours' fit: ``(flags (N, K), fit (N, K, 2))``.

    A point's *neighbours' fit* is the Gaussian local polynomial (``sigma``, ``degree``) at its
    time through the other frames' values of that keypoint, leaving the point itself and points
    already flagged out. A point is flagged when its distance to that fit exceeds
    ``k ×`` the median distance (over all keypoints and frames of the run) and
    ``floor × body size`` (median diagonal of the keypoint box; both twice that where the fit
    extrapolates: no usable neighbour on one side), and is the largest such distance
    of that keypoint within the window (so a wild point's neighbours, whose fits it spoils, are
    not flagged with it); the test repeats until no new point is flagged. ``fit`` holds the
    neighbours' fit (without flagged points), the replacement of a flagged point.
    """
    t = np.asarray(t, dtype=float)
    xy = np.asarray(xy, dtype=float)
    n = len(t)
    flags = np.zeros(xy.shape[:2], dtype=bool)
    fit = np.full(xy.shape, np.nan)
    if n < 3 or xy.ndim != 3 or sigma <= 0:
        return flags, fit
    y = xy.reshape(n, -1)
    idx, w = _gaussian_weights(t, float(sigma), None)
    w_loo = w * (idx != np.arange(n)[:, None])  # leave the point itself out
    before = (w > 0) & (t[idx] < t[:, None])  # (N, W): neighbours earlier / later in time
    after = (w > 0) & (t[idx] > t[:, None])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(xy, axis=1), np.nanmax(xy, axis=1)
        body = np.nanmedian(np.linalg.norm(hi - lo, axis=-1))
        limit = floor * float(np.nan_to_num(body, nan=0.0))
        for _ in range(OUTLIER_ROUNDS):
            fit, dist, big = _outlier_round(t, y, xy, w_loo, idx, degree, sigma, flags, k, limit,
                                            before, after)  # fmt: skip
            dist = np.where(flags, np.nan, dist)
            near = big[idx] & (w[:, :, None] > 0)
            top = np.max(np.where(near, np.nan_to_num(dist, nan=0.0)[idx], -np.inf), axis=1)
            new = big & ~flags & (dist >= top)
            if not new.any():
                break
            flags |= new
        if flags.any():  # let go a point flagged beside a worse one whose fit spoiled its own
            fit, _, big = _outlier_round(t, y, xy, w_loo, idx, degree, sigma, flags, k, limit,
                                         before, after)  # fmt: skip
            if np.any(flags & ~big):
                flags &= big
                fit = _outlier_round(t, y, xy, w_loo, idx, degree, sigma, flags, k, limit,
                                     before, after)[0]  # fmt: skip
    return flags, fit


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
    if method == "adaptive":
        return adaptive_smooth(t, xy, **kwargs)
    if method == "gaussian":
        return gaussian_smooth(t, xy, **kwargs)
    if method == "savgol":
        return savgol_smooth(t, xy, **kwargs)
    return one_euro(t, xy, **kwargs)


def _robust_run(t, xy, robust: bool):
    """``(xy with flagged points missing, their neighbours' fit (N, K, 2) or None, flags)``."""
    if not robust or xy.ndim != 3 or xy.shape[-1] != 2:
        return xy, None, None
    flags, fit = flag_outliers(t, xy)
    if not flags.any():
        return xy, None, None
    holed = xy.copy()
    holed[flags] = np.nan
    return holed, fit, flags


def _smooth_sequence(frames, xy, method, params, max_gap, breaks, switch_k, robust=True):
    frames = np.asarray(frames)
    xy = np.asarray(xy, dtype=float)
    n = len(frames)
    out = xy.copy()
    stats = {"runs": 0, "smoothed_rows": 0, "switches": 0, "outliers": 0}
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
        # a flagged point is left out of every estimate (missing), then replaced by its fit
        holed, fit, flags = _robust_run(f[run], p[run], robust)
        sm = smooth_run(f[run], holed, method, params)
        if flags is not None:
            sm[flags] = fit[flags]
            stats["outliers"] += int(flags.sum())
        out[order[run]] = sm
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
    robust: bool = True,
) -> np.ndarray:
    """Smooth ``xy`` ``(N, K, 2)`` of one clip and camera, in the input's row order.

    Rows are ordered by ``frames`` and cut into runs (:func:`segments`) at gaps over
    ``max_gap``, at ``breaks`` (aligned with the input rows) and at switches found by
    :func:`detect_switches` (``switch_k=None`` turns detection off); each run of two or more
    frames is smoothed, single frames are returned as they are. With ``robust`` (default) a point
    far from its neighbours' fit (:func:`flag_outliers`) is replaced by that fit before the
    filter, so it moves no neighbour; :func:`smooth_sequence_report` also counts them.
    """
    return _smooth_sequence(frames, xy, method, params, max_gap, breaks, switch_k, robust)[0]


def smooth_sequence_report(
    frames, xy, method: str = DEFAULT_METHOD, params: Optional[Mapping] = None,
    max_gap: int = DEFAULT_MAX_GAP, breaks: Optional[np.ndarray] = None,
    switch_k: Optional[float] = DEFAULT_SWITCH_K, robust: bool = True,
) -> Tuple[np.ndarray, Dict[str, int]]:
    """:func:`smooth_sequence` and its counts: runs, smoothed_rows, switches, outliers."""
    return _smooth_sequence(frames, xy, method, params, max_gap, breaks, switch_k, robust)


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
    runs, smoothed_rows, switches, outliers (points far from their neighbours' fit, replaced
    by it) and moved_rms / moved_max (how far the points moved, px); :func:`describe` words it.
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
              "smoothed_rows": 0, "switches": 0, "outliers": 0}
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
        for key in ("runs", "smoothed_rows", "switches", "outliers"):
            report[key] += stats[key]
        new[rows_a] = sm  # rows outside runs of two or more are exact copies
    moved = np.linalg.norm(new - values, axis=-1)
    moved = moved[np.isfinite(moved)]
    report["moved_rms"] = float(np.sqrt(np.mean(moved**2))) if moved.size else 0.0
    report["moved_max"] = float(moved.max()) if moved.size else 0.0
    flat_new, flat_old = new.reshape(len(df), -1), values.reshape(len(df), -1)
    for j, c in enumerate(cols):
        if not np.array_equal(flat_new[:, j], flat_old[:, j], equal_nan=True):
            out[c] = flat_new[:, j]
    out.attrs["smoothing"] = report
    return out


def describe(report: Mapping[str, Any]) -> str:
    """One line for a :func:`smooth_table` report: what was smoothed and how far points moved."""
    line = (f"smoothed {report['smoothed_rows']} of {report['rows']} rows in {report['runs']} runs "
            f"of nearby frames ({report['groups']} clip/camera sequences, {report['switches']} "
            f"person switches not bridged, {report['unparsed']} names without clip/frame left as "
            f"they are); {report.get('outliers', 0)} points far from their neighbours' fit "
            f"replaced by it")
    if "moved_rms" in report:
        line += (f"; points moved {report['moved_rms']:.2f} px RMS, {report['moved_max']:.1f} px "
                 f"at most")
    return line


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
