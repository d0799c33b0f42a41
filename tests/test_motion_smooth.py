"""Temporal smoothing: it helps on dense clips, leaves sparse ones untouched and never bridges a
gap or a person switch (motion_keypoints.motion.smooth)."""

import numpy as np
import pandas as pd
import pytest
from scipy.signal import savgol_filter

from motion_keypoints.motion.smooth import (
    OFF,
    acceleration_error,
    choose_params,
    detect_switches,
    gaussian_smooth,
    one_euro,
    savgol_smooth,
    segments,
    smooth_sequence,
    smooth_table,
)

try:
    from motion_keypoints.meta import COORD_COLUMNS
except ImportError:  # pragma: no cover - older package layout
    from motion_keypoints.keypoints import COORD_COLUMNS

K = len(COORD_COLUMNS) // 2
FPS = 30.0
NOISE = 6.0
CLIP = "649-2-4-32-Z148"


def trajectory(frames, seed=0, offset=(0.0, 0.0)):
    """Smooth exercise-like motion at 30 fps: a body template whose centre sways and whose
    keypoints swing at about 1 Hz. Returns (N, K, 2) pixels."""
    rng = np.random.default_rng(seed)
    template = rng.uniform(-1, 1, size=(K, 2)) * (80.0, 200.0)
    phase = rng.uniform(0, 2 * np.pi, size=(K, 1))
    amp = rng.uniform(5, 25, size=(K, 2))
    t = np.asarray(frames, float)[:, None, None] / FPS
    centre = np.stack([960 + 120 * np.sin(2 * np.pi * 0.4 * t[..., 0]),
                       540 + 50 * np.sin(2 * np.pi * 0.25 * t[..., 0] + 1.0)], axis=-1)
    swing = amp * np.sin(2 * np.pi * 1.0 * t + phase)
    return centre + template + swing + np.asarray(offset)


def noisy(xy, seed=1, sigma=NOISE):
    return xy + np.random.default_rng(seed).normal(0, sigma, size=xy.shape)


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def table(frames, xy, camera="A", clip=CLIP):
    names = [f"{clip}_{camera}-{f:07d}.jpg" for f in frames]
    df = pd.DataFrame(np.asarray(xy).reshape(len(frames), -1), columns=list(COORD_COLUMNS))
    df.insert(0, "image", names)
    return df


def coords(df):
    return df[list(COORD_COLUMNS)].to_numpy(float).reshape(len(df), K, 2)


# ----------------------------------------------------------------------------------- runs
def test_segments_cut_at_gaps_and_breaks():
    runs = segments([1, 2, 3, 5, 9, 10, 11, 12], max_gap=2)
    assert [r.tolist() for r in runs] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    breaks = np.zeros(8, bool)
    breaks[6] = True
    runs = segments([1, 2, 3, 5, 9, 10, 11, 12], max_gap=2, breaks=breaks)
    assert [r.tolist() for r in runs] == [[0, 1, 2, 3], [4, 5], [6, 7]]
    assert [r.tolist() for r in segments([0, 7, 15, 22], max_gap=2)] == [[0], [1], [2], [3]]
    assert segments([], 2) == []
    with pytest.raises(ValueError, match="ascending"):
        segments([3, 1, 2], 2)


def test_detect_switches_marks_the_jump_only():
    frames = np.arange(60)
    truth = trajectory(frames)
    truth[30:] += (300.0, 0.0)
    found = detect_switches(noisy(truth), frames)
    assert np.flatnonzero(found).tolist() == [30]
    assert not detect_switches(noisy(trajectory(frames)), frames).any()
    # a frame without any keypoint does not hide the switch
    holed = noisy(truth)
    holed[29] = np.nan
    assert np.flatnonzero(detect_switches(holed, frames)).tolist() == [30]


# ---------------------------------------------------------------------------- dense clips
@pytest.mark.parametrize(
    "method, params, limit, acc_limit",
    [("gaussian", {"sigma": 1.5}, 0.6, 0.5), ("gaussian", {"sigma": 2.5}, 0.6, 0.5),
     ("savgol", {"half_window": 6, "degree": 2}, 0.6, 0.5),
     # online: less jitter for some lag, so a smaller RMSE gain
     ("one_euro", {"min_cutoff": 1.0, "beta": 0.05}, 0.9, 0.6)],
)
def test_dense_clip_smoothing_reduces_rmse_and_jitter(method, params, limit, acc_limit):
    frames = np.arange(150)
    truth = trajectory(frames)
    pred = noisy(truth)
    out = smooth_sequence(frames, pred, method, params)
    before, after = rmse(pred, truth), rmse(out, truth)
    acc_before = acceleration_error(truth, pred, frames)
    acc_after = acceleration_error(truth, out, frames)
    print(f"dense {method} {params}: RMSE {before:.2f} -> {after:.2f} px, "
          f"accel {acc_before:.2f} -> {acc_after:.2f} px/frame^2")
    assert after <= limit * before
    assert acc_after <= acc_limit * acc_before


def test_smooth_table_dense_defaults_help_and_keep_row_order():
    frames = np.arange(120)
    truth = trajectory(frames)
    df = table(frames, noisy(truth))
    # second camera of the same clip, smoothed separately
    df = pd.concat([df, table(frames, noisy(trajectory(frames, seed=5), seed=9), camera="B")])
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)  # rows in any order
    out = smooth_table(df)
    assert out["image"].tolist() == df["image"].tolist()
    a = df["image"].str.contains("_A-").to_numpy()
    order = np.argsort(df.loc[a, "image"].to_numpy())
    before = rmse(coords(df)[a][order], truth)
    after = rmse(coords(out)[a][order], truth)
    print(f"dense table (defaults): RMSE {before:.2f} -> {after:.2f} px")
    assert after <= 0.6 * before
    report = out.attrs["smoothing"]
    assert report["groups"] == 2 and report["runs"] == 2 and report["smoothed_rows"] == 240
    assert report["unparsed"] == 0 and report["switches"] == 0


# --------------------------------------------------------------------------- sparse clips
def sparse_frames(n=40, start=3):
    steps = np.where(np.arange(n - 1) % 2 == 0, 7, 8)
    return np.concatenate([[start], start + np.cumsum(steps)])


def test_sparse_clip_comes_out_bitwise_unchanged():
    frames = sparse_frames()
    truth = trajectory(frames)
    df = table(frames, noisy(truth, sigma=3.0))
    extra = pd.DataFrame({"image": ["bystander.png"], **{c: [1.5] for c in COORD_COLUMNS}})
    df = pd.concat([df, extra], ignore_index=True).sample(frac=1.0, random_state=1)
    for method in ("gaussian", "savgol", "one_euro"):
        out = smooth_table(df, method)
        pd.testing.assert_frame_equal(out, df)
        assert np.array_equal(out.to_numpy(), df.to_numpy())  # bitwise, not just close
        assert out.attrs["smoothing"]["unparsed"] == 1
        assert out.attrs["smoothing"]["smoothed_rows"] == 0
    # the contrast: a plain Gaussian over rows (ignoring time) makes the sparse clip worse
    pred = coords(table(frames, noisy(truth, sigma=3.0)))
    rows = gaussian_smooth(np.arange(len(frames)), pred, sigma=1.5)
    print(f"sparse: RMSE {rmse(pred, truth):.2f} px unchanged; plain row Gaussian "
          f"{rmse(rows, truth):.2f} px")
    assert rmse(rows, truth) > 1.5 * rmse(pred, truth)


# -------------------------------------------------------------------- gaps and switches
def gap_and_switch():
    """Frames 0-59, a gap of 10 frames, frames 70-139; from frame 100 on the detector follows
    another person 300 px to the right (the truth is of whoever was predicted)."""
    frames = np.concatenate([np.arange(0, 60), np.arange(70, 140)])
    truth = trajectory(frames)
    truth[frames >= 100] += (300.0, 0.0)
    return frames, truth, noisy(truth)


def test_no_bridging_of_a_gap_or_a_switch():
    frames, truth, pred = gap_and_switch()
    out = smooth_sequence(frames, pred)
    near_switch = np.abs(frames - 100) <= 3
    near_gap = (np.abs(frames - 59) <= 3) | (np.abs(frames - 70) <= 3)
    ours_switch = rmse(out[near_switch], truth[near_switch])
    ours_gap = rmse(out[near_gap], truth[near_gap])
    naive = savgol_filter(pred, window_length=15, polyorder=2, axis=0)  # over rows
    naive_switch = rmse(naive[near_switch], truth[near_switch])
    # switch detection off: the locally constant Gaussian (the default when this test was
    # written) bridges the switch by tens of px; the adaptive default resists more, but still
    # bridges it by several times the guarded error
    unguarded = smooth_sequence(frames, pred, "gaussian", {"sigma": 1.5, "degree": 0},
                                switch_k=None)
    unguarded_default = smooth_sequence(frames, pred, switch_k=None)
    assert rmse(unguarded_default[near_switch], truth[near_switch]) > 3 * ours_switch
    print(f"gap+switch: noisy {rmse(pred, truth):.2f} px, ours {rmse(out, truth):.2f} px "
          f"(near switch {ours_switch:.2f}, near gap {ours_gap:.2f}); rows Savitzky-Golay "
          f"{rmse(naive, truth):.2f} px (near switch {naive_switch:.2f})")
    assert ours_switch <= NOISE and ours_gap <= NOISE
    assert naive_switch > 30.0
    assert rmse(unguarded[near_switch], truth[near_switch]) > 30.0
    assert rmse(out, truth) < 0.7 * rmse(pred, truth)


def test_table_with_gap_and_switch_reports_the_switch():
    frames, truth, pred = gap_and_switch()
    out = smooth_table(table(frames, pred))
    assert out.attrs["smoothing"]["switches"] == 1
    assert out.attrs["smoothing"]["runs"] == 3
    near = np.abs(frames - 100) <= 3
    assert rmse(coords(out)[near], truth[near]) <= NOISE


# ----------------------------------------------------------------------------- filters
def test_savgol_is_a_fit_in_time_not_in_rows():
    frames = np.array([0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 14], float)
    quad = (0.3 * frames**2 - 2 * frames + 5)[:, None]
    assert np.allclose(savgol_smooth(frames, quad, half_window=4, degree=2), quad, atol=1e-8)
    rows = savgol_filter(quad, window_length=5, polyorder=1, axis=0)
    assert not np.allclose(rows, quad, atol=1e-3)


def test_nan_points_are_ignored_and_stay_missing():
    frames = np.arange(90)
    truth = trajectory(frames)
    pred = noisy(truth)
    holes = np.random.default_rng(3).random(pred.shape[:2]) < 0.15
    pred[holes] = np.nan
    for method in ("gaussian", "savgol", "one_euro"):
        out = smooth_sequence(frames, pred, method)
        assert np.array_equal(np.isnan(out), np.isnan(pred)), method
        ok = ~np.isnan(pred)
        assert rmse(out[ok], truth[ok]) < rmse(pred[ok], truth[ok]), method
    # a value next to a NaN is not contaminated
    t = np.arange(5.0)
    y = np.array([[1.0], [np.nan], [3.0], [4.0], [5.0]])
    assert np.isfinite(gaussian_smooth(t, y, 1.0)[[0, 2, 3, 4]]).all()
    assert np.isfinite(one_euro(t, y)[[0, 2, 3, 4]]).all()
    # a table with NaN keeps them where they were
    df = table(frames, pred)
    out = smooth_table(df)
    assert np.array_equal(np.isnan(coords(out)), np.isnan(coords(df)))


def test_undetected_rows_are_neither_used_nor_changed():
    frames = np.arange(30)
    truth = trajectory(frames)
    df = table(frames, noisy(truth))
    df["detected"] = 1.0
    df.loc[10, "detected"] = 0.0
    df.loc[10, list(COORD_COLUMNS)] = 0.0  # a fallback pose far away
    out = smooth_table(df)
    assert np.array_equal(coords(out)[10], coords(df)[10])
    assert rmse(coords(out)[9:12:2], truth[9:12:2]) < NOISE
    assert out.attrs["smoothing"]["undetected"] == 1


# ------------------------------------------------------------------------- metrics, params
def test_acceleration_error():
    frames = np.arange(10)
    gt = trajectory(frames)
    assert acceleration_error(gt, gt, frames) == 0.0
    pred = gt.copy()
    pred[5, 0, 0] += 4.0  # one spike: triples centred at 4, 5, 6 see 4, 8, 4
    assert acceleration_error(gt, pred, frames) == pytest.approx((4 + 8 + 4) / (8 * K))
    assert np.isnan(acceleration_error(gt, pred, frames * 7))  # no consecutive triple


def test_choose_params_picks_a_candidate_only_when_it_helps():
    frames = np.arange(120)
    truth = table(frames, trajectory(frames))
    pred = table(frames, noisy(trajectory(frames)))
    best, report = choose_params(pred, truth)
    assert best != OFF and report["chosen"] != OFF
    assert report["after"] < 0.6 * report["before"]
    print(f"choose_params dense: {report['before']:.2f} -> {report['after']:.2f} px "
          f"with {report['chosen']}")
    # exact predictions: every smoothing hurts, so it stays off
    best, report = choose_params(truth.copy(), truth)
    assert best == OFF and report["chosen"] == OFF
    assert report["after"] == report["before"] == 0.0
    assert all(c["after"] > 0 for c in report["candidates"])
    # sparse clips: nothing changes, nothing improves
    sparse = sparse_frames()
    best, report = choose_params(table(sparse, noisy(trajectory(sparse))),
                                 table(sparse, trajectory(sparse)))
    assert best == OFF
    assert all(c["after"] == report["before"] for c in report["candidates"])


# ------------------------------------------------------- issue 20: realistic 30 fps motion
def realistic(move, frames=120, clip=0):
    from motion_keypoints.data.synthetic.clips import real_clip

    return real_clip(0, clip, frames, fps=FPS, width=640, height=480, move=move)


def runs_with_gaps(n):
    """Runs of 4-17 consecutive frames separated by gaps of 3-12 frames (like labelled footage)."""
    keep, f, i = [], 2, 0
    while f < n:
        length = 4 + (7 * i) % 14
        keep += list(range(f, min(n, f + length)))
        f += length + 3 + (5 * i) % 10
        i += 1
    return np.asarray(keep)


@pytest.mark.parametrize("move", ["jump", "run", "kick", "jumping_jack"])
def test_default_is_never_worse_than_its_input_on_realistic_30fps_clips(move):
    """Real tempo at 30 fps: landings, strides and kicks are faster than a locally constant (or a
    fixed) fit can follow; the default must still never be worse, and help on dense clips."""
    clip = realistic(move)
    truth = clip["keypoints"]
    for name, sel in (("dense", np.arange(len(truth))), ("gaps", runs_with_gaps(len(truth)))):
        for sigma in (1.0, 3.0, 6.0):
            pred = noisy(truth[sel], seed=int(sigma * 10), sigma=sigma)
            out = smooth_sequence(sel, pred)
            before, after = rmse(pred, truth[sel]), rmse(out, truth[sel])
            print(f"{move} {name} noise {sigma:g}: RMSE {before:.2f} -> {after:.2f} px")
            assert after <= before, (move, name, sigma)
            if name == "dense":
                assert after <= 0.85 * before, (move, sigma)


def test_noise_free_realistic_clips_are_barely_moved():
    for move in ("jump", "run", "kick", "jumping_jack", "squat"):
        clip = realistic(move)
        truth = clip["keypoints"]
        for sel in (np.arange(len(truth)), runs_with_gaps(len(truth))):
            moved = np.linalg.norm(smooth_sequence(sel, truth[sel]) - truth[sel], axis=-1)
            print(f"{move}: noise-free input moved {np.sqrt(np.mean(moved**2)):.3f} px RMS, "
                  f"{moved.max():.2f} px at most")
            assert np.sqrt(np.mean(moved**2)) < 0.25, move
            assert moved.max() < 3.0, move


def test_a_wild_point_moves_no_neighbour_and_is_counted():
    clip = realistic("jump", frames=60, clip=1)
    frames, truth = clip["frames"], clip["keypoints"]
    pred = noisy(truth, sigma=3.0)
    wild = pred.copy()
    wild[30, 9, 0] = 5000.0  # one coordinate of one keypoint, in a 640x480 image
    clean_out = smooth_sequence(frames, pred)
    wild_out = smooth_sequence(frames, wild)
    others = np.ones(truth.shape[:2], bool)
    others[30, 9] = False
    shift = np.linalg.norm(wild_out - clean_out, axis=-1)[others]
    print(f"wild point: neighbours moved by {shift.max():.2f} px at most; the point itself ends "
          f"{np.linalg.norm(wild_out[30, 9] - truth[30, 9]):.1f} px from the truth")
    assert shift.max() < 5.0  # a few px: what leaving one noisy point out changes
    # exactly as if the point were missing: it is left out of every neighbour's estimate
    holed = pred.copy()
    holed[30, 9] = np.nan
    assert np.allclose(wild_out[others], smooth_sequence(frames, holed)[others], atol=1e-9)
    assert np.linalg.norm(wild_out[30, 9] - truth[30, 9]) < 20.0
    # counted, in every method's report, and the point is replaced whatever the filter
    for method in ("adaptive", "gaussian", "savgol", "one_euro"):
        out = smooth_table(table(frames, wild), method)
        assert out.attrs["smoothing"]["outliers"] == 1, method
        assert np.linalg.norm(coords(out)[30, 9] - truth[30, 9]) < 30.0, method
    assert smooth_table(table(frames, pred)).attrs["smoothing"]["outliers"] == 0
