#!/usr/bin/env python
"""Motion figures (issues 13 and 20) on synthetic clips: smoothing error with and without
smoothing, a wild point, the wrong-person rate and identity switches of each person rule on
two-person clips with a crossing, video throughput.

  python benchmarks/motion.py            # everything that needs no trained run
  python benchmarks/motion.py --quick    # fewer clips
  python benchmarks/motion.py --video VIDEO --runs outputs/tiny-cpu   # + frames/s of predict_video

Smoothing is measured on *realistic* clips (:func:`motion_keypoints.data.synthetic.clips.real_clip`:
30 fps, real tempo, ballistic jumps, running strides, kicks, jumping jacks, squats; 640x480) with
i.i.d. Gaussian noise of 1, 3 and 6 px per coordinate added to the true keypoints, in three
sampling patterns: *dense* (every frame), *gaps* (runs of 3-17 consecutive frames separated by
gaps of 2-20 frames, and in some runs the detector follows a bystander, so the label is the
bystander's: person switches between runs) and *sparse* (frames 7-8 apart). Also on the kit's own
dense synthetic clips (slow motion: the clips the old default was tuned on). Each row: pooled RMSE
and its ratio to the input's, the worst clip's ratio and the acceleration error (jitter), for no
smoothing, the old default (Gaussian mean, sigma 1.5, no outlier test), a fixed local linear fit
and the default. Benchmarks print figures; nothing here is asserted.

The keypoints come from the generators without drawing, so everything takes about a minute.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Sequence

import numpy as np

from motion_keypoints.geometry import box_from_points
from motion_keypoints.motion import smooth as S
from motion_keypoints.motion.select import RULES, select_track


def synthetic_sequences(
    n_clips: int, frames: int, frame_step: int, seed: int = 0, width: int = 1920,
    height: int = 1080, distractor: float = 0.0,
) -> List[Dict[str, Any]]:
    """True keypoints of ``n_clips`` synthetic clips, one camera each: a list of
    ``{"frames" (F,), "keypoints" (F, K, 2), "distractor" (F, K, 2) or None}``."""
    from motion_keypoints.data.naming import GROUP_PATTERN
    from motion_keypoints.data.synthetic.writer import plan_items, render_item_full

    items = plan_items(n_clips * frames, 0, seed, 1, frames, frame_step)
    out: Dict[int, Dict[str, list]] = {}
    for it in items:
        r = render_item_full(it, seed, width, height, 1, frames, 0.0, frame_step=frame_step,
                             distractor=distractor, draw=False)  # fmt: skip
        d = out.setdefault(it.clip, {"frames": [], "keypoints": [], "distractor": []})
        d["frames"].append(int(GROUP_PATTERN.match(it.name)["frame"]))
        d["keypoints"].append(r.keypoints)
        d["distractor"].append(r.distractor)
    seqs = []
    for d in out.values():
        dis = d["distractor"]
        seqs.append({"frames": np.array(d["frames"]), "keypoints": np.stack(d["keypoints"]),
                     "distractor": None if any(x is None for x in dis) else np.stack(dis)})
    return seqs


def _errors(seqs, preds) -> Dict[str, float]:
    gt = np.concatenate([s["keypoints"] for s in seqs])
    pr = np.concatenate(preds)
    total = count = 0.0
    for s, p in zip(seqs, preds):
        t, c = S._accel_terms(s["keypoints"], p, s["frames"])
        total, count = total + t, count + c
    return {"rmse": float(np.sqrt(np.mean((pr - gt) ** 2))),
            "accel": total / count if count else float("nan")}


def _instance(kps: np.ndarray, score: float, rng, noise: float) -> Dict[str, Any]:
    noisy = kps + rng.normal(0.0, noise, kps.shape)
    return {"keypoints": noisy, "box": box_from_points(kps, 0.1), "score": float(score)}


def wrong_person_rates(
    n_clips: int = 8, frames: int = 60, seed: int = 0, width: int = 1920, height: int = 1080,
    noise: float = 3.0, main_scores=(0.5, 1.0), distractor_scores=(0.5, 1.0),
    miss_rate: float = 0.0,
) -> Dict[str, float]:
    """Wrong-person rate of each rule (:data:`RULES`) over the frames where the main person is
    detected: every frame holds the main person and the distractor (shuffled order), scores drawn
    uniformly from ``main_scores`` / ``distractor_scores``; with ``miss_rate`` the main person
    is missed in that fraction of frames (those frames are not counted: no rule can be right)."""
    rng = np.random.default_rng(seed + 2000)
    seqs = synthetic_sequences(n_clips, frames, 1, seed, width, height, distractor=1.0)
    wrong = {r: 0 for r in RULES}
    total = 0
    for s in seqs:
        frames_instances, main_idx = [], []
        for kp, dk in zip(s["keypoints"], s["distractor"]):
            inst = [_instance(dk, rng.uniform(*distractor_scores), rng, noise)]
            idx = None
            if rng.random() >= miss_rate:
                inst.append(_instance(kp, rng.uniform(*main_scores), rng, noise))
                if rng.random() < 0.5:
                    inst.reverse()
                idx = int(np.argmax([np.allclose(i["box"], box_from_points(kp, 0.1)) for i in inst]))
            frames_instances.append(inst)
            main_idx.append(idx)
        counted = [t for t, i in enumerate(main_idx) if i is not None]
        total += len(counted)
        for rule in RULES:
            at = tuple(s["keypoints"][0].mean(0)) if rule == "at" else None  # the main person
            chosen = select_track(frames_instances, rule, width, height, at=at)
            wrong[rule] += sum(chosen[t] != main_idx[t] for t in counted)
    return {r: wrong[r] / max(total, 1) for r in RULES} | {"frames": total}


def video_throughput(
    video, runs: Sequence, out_dir, batch_size: int = 4, flip_tta: bool = True, **kwargs
) -> Dict[str, Any]:
    """frames/s of :func:`motion_keypoints.motion.video.predict_video` (prediction pass, and the
    whole command including decoding twice and writing the overlay)."""
    from motion_keypoints.motion.video import predict_video

    t0 = time.perf_counter()
    summary = predict_video(video, runs, out_dir, batch_size=batch_size, flip_tta=flip_tta,
                            progress=False, **kwargs)  # fmt: skip
    wall = time.perf_counter() - t0
    return {"frames": summary["frames"], "predict_frames_per_s": summary["frames_per_s"],
            "total_frames_per_s": summary["frames"] / wall, "flip_tta": flip_tta,
            "batch_size": batch_size}



# ------------------------------------------------------------------------------- smoothing
#: What each row smooths with: (label, method, params, robust).
SMOOTHERS = (
    ("input (no smoothing)", None, None, False),
    ("old default: gaussian mean s1.5", "gaussian", {"sigma": 1.5, "degree": 0}, False),
    ("gaussian linear s1.0", "gaussian", {"sigma": 1.0, "degree": 1}, True),
    ("default: " + S.DEFAULT_METHOD, S.DEFAULT_METHOD, None, True),
)


def _runs_with_gaps(n: int, rng) -> List[np.ndarray]:
    runs, f = [], int(rng.integers(0, 5))
    while f < n:
        length = int(rng.integers(3, 18))
        runs.append(np.arange(f, min(n, f + length)))
        f += length + int(rng.integers(2, 21))
    return runs


def realistic_samples(n_clips: int, frames: int, seed: int = 0) -> Dict[str, List[Dict[str, Any]]]:
    """``{pattern: [{"frames", "truth" (F, K, 2)}]}`` of realistic clips (see the module)."""
    from motion_keypoints.data.synthetic.body import REAL_MOVES
    from motion_keypoints.data.synthetic.clips import real_clip

    rng = np.random.default_rng(seed + 3000)
    out: Dict[str, List[Dict[str, Any]]] = {"dense": [], "gaps": [], "sparse": []}
    for i in range(n_clips):
        c = real_clip(seed, i, frames, move=REAL_MOVES[i % len(REAL_MOVES)], bystander=True)
        kps, other = c["keypoints"], c["bystander"]
        out["dense"].append({"frames": c["frames"], "truth": kps, "move": c["move"]})
        runs = _runs_with_gaps(frames, rng)
        truth = kps.copy()
        for j, run in enumerate(runs):  # the detector follows the bystander in some runs
            if j % 4 == 2 and np.all((other[run, :, 0] > 0) & (other[run, :, 0] < 640)):
                truth[run] = other[run]
        sel = np.concatenate(runs)
        out["gaps"].append({"frames": sel, "truth": truth[sel], "move": c["move"]})
        sel = np.arange(0, frames, 7) + (np.arange(len(range(0, frames, 7))) % 2)
        sel = sel[sel < frames]
        out["sparse"].append({"frames": sel, "truth": kps[sel], "move": c["move"]})
    return out


def _smooth(frames, xy, method, params, robust):
    if method is None:
        return xy
    return S.smooth_sequence(frames, xy, method, params, robust=robust)


def smoothing_rows(samples: Dict[str, List[Dict[str, Any]]], noises: Sequence[float],
                   seed: int = 0) -> List[Dict[str, Any]]:  # fmt: skip
    """One row per (pattern, noise, smoother): RMSE, its ratio to the input's, the worst clip's
    ratio, acceleration error; noise 0 rows give how far noise-free points moved."""
    rows = []
    for pattern, clips in samples.items():
        for noise in noises:
            rng = np.random.default_rng(seed + int(noise * 100))
            preds = [c["truth"] + rng.normal(0.0, noise, c["truth"].shape) for c in clips]
            base = None
            for label, method, params, robust in SMOOTHERS:
                outs = [_smooth(c["frames"], p, method, params, robust) for c, p in zip(clips, preds)]
                err = np.concatenate([(o - c["truth"]).ravel() for c, o in zip(clips, outs)])
                rmse = float(np.sqrt(np.mean(err**2)))
                per_clip = [float(np.sqrt(np.mean((o - c["truth"]) ** 2))) for c, o in zip(clips, outs)]
                moved = np.concatenate([np.linalg.norm(o - p, axis=-1).ravel()
                                        for o, p in zip(outs, preds)])  # fmt: skip
                acc = _errors([{"keypoints": c["truth"], "frames": c["frames"]} for c in clips], outs)
                if base is None:
                    base = (rmse, per_clip)
                ratios = [a / b if b > 0 else (1.0 if a == 0 else np.inf)
                          for a, b in zip(per_clip, base[1])]  # fmt: skip
                rows.append({"pattern": pattern, "noise": noise, "smoother": label, "rmse": rmse,
                             "ratio": rmse / base[0] if base[0] > 0 else float("nan"),
                             "worst": max(ratios), "accel": acc["accel"],
                             "moved_rms": float(np.sqrt(np.mean(moved**2))),
                             "moved_max": float(moved.max())})  # fmt: skip
    return rows


def wild_point_shift(samples: List[Dict[str, Any]], noise: float = 3.0, seed: int = 0):
    """Per smoother, the largest shift of any *other* point when one coordinate of one point per
    clip is set to 5000 px (a 640x480 image), and the wild point's own final error."""
    rng = np.random.default_rng(seed + 4000)
    result = {}
    for label, method, params, robust in SMOOTHERS[1:]:
        shift, own = 0.0, 0.0
        for c in samples:
            pred = c["truth"] + rng.normal(0.0, noise, c["truth"].shape)
            t, k = len(pred) // 2, int(rng.integers(pred.shape[1]))
            wild = pred.copy()
            wild[t, k, 0] = 5000.0
            a = _smooth(c["frames"], pred, method, params, robust)
            b = _smooth(c["frames"], wild, method, params, robust)
            d = np.linalg.norm(a - b, axis=-1)
            own = max(own, float(np.linalg.norm(b[t, k] - c["truth"][t, k])))
            d[t, k] = 0.0
            shift = max(shift, float(d.max()))
        result[label] = {"neighbour_shift_max": shift, "wild_point_error_max": own}
    return result


def kit_dense_samples(n_clips: int, frames: int, seed: int = 0) -> List[Dict[str, Any]]:
    """The kit's own dense synthetic clips (slow exercise motion), 1920x1080."""
    seqs = synthetic_sequences(n_clips, frames, 1, seed)
    return [{"frames": s["frames"], "truth": s["keypoints"], "move": "kit"} for s in seqs]


def two_person_clips(n_clips: int, frames: int = 120, seed: int = 0, noise: float = 3.0):
    """Realistic clips with a bystander who crosses the main person, through a simulated detector
    (noisy keypoints and boxes, scores uniform in 0.5-1 for both, random order, the main person
    missed in 4 frames around the middle): ``[(frames_instances, main index per frame, clip)]``."""
    from motion_keypoints.data.synthetic.body import REAL_MOVES
    from motion_keypoints.data.synthetic.clips import real_clip

    out = []
    for i in range(n_clips):
        c = real_clip(seed, 100 + i, frames, move=REAL_MOVES[i % len(REAL_MOVES)], bystander=True)
        rng = np.random.default_rng(seed + 5000 + i)
        fi, main = [], []
        for t in range(frames):
            inst, m = [], None
            other = c["bystander"][t]
            if ((other[:, 0] > 0) & (other[:, 0] < 640)).all():
                inst.append(_instance(other, rng.uniform(0.5, 1.0), rng, noise))
            if not frames // 2 - 2 <= t < frames // 2 + 2:
                inst.append(_instance(c["keypoints"][t], rng.uniform(0.5, 1.0), rng, noise))
                m = len(inst) - 1
            if len(inst) == 2 and rng.random() < 0.5:
                inst.reverse()
                m = None if m is None else 1 - m
            fi.append(inst)
            main.append(m)
        out.append((fi, main, c))
    return out


def identity_switch_counts(clips) -> Dict[str, Dict[str, float]]:
    """Per person rule: identity switches of the chosen person (tracker ids) and the
    wrong-person rate over the frames where the main person is detected; ``at`` is given the
    main person's keypoint centre in the first frame."""
    from motion_keypoints.motion.track import identity_switches, track_ids

    result = {r: {"switches": 0, "wrong": 0, "frames": 0} for r in RULES}
    tracker_split = 0
    for fi, main, c in clips:
        ids = track_ids(fi)
        tracker_split += len({int(ids[t][m]) for t, m in enumerate(main) if m is not None}) - 1
        for rule in RULES:
            kw = {"at": tuple(c["keypoints"][0].mean(0))} if rule == "at" else {}
            chosen = select_track(fi, rule, 640, 480, **kw)
            counted = [t for t, m in enumerate(main) if m is not None]
            result[rule]["switches"] += len(identity_switches(ids, chosen))
            result[rule]["wrong"] += sum(chosen[t] != main[t] for t in counted)
            result[rule]["frames"] += len(counted)
    for r in result.values():
        r["wrong_rate"] = r["wrong"] / max(r["frames"], 1)
    result["tracker"] = {"main_person_split_into_extra_ids": tracker_split}
    return result


def _print_rows(rows) -> None:
    print(f"{'pattern':<10}{'noise':>6}  {'smoother':<34}{'RMSE':>8}{'ratio':>7}{'worst':>7}"
          f"{'accel':>8}{'moved':>8}{'max':>7}")
    for r in rows:
        print(f"{r['pattern']:<10}{r['noise']:>6g}  {r['smoother']:<34}{r['rmse']:>8.3f}"
              f"{r['ratio']:>7.3f}{r['worst']:>7.2f}{r['accel']:>8.3f}{r['moved_rms']:>8.3f}"
              f"{r['moved_max']:>7.2f}")


def main(argv=None) -> int:  # a report, run by hand
    import argparse

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5 clips of 90 frames (default: 15 of 150)")
    p.add_argument("--seed", type=int, default=0, help="clip seed (default: %(default)s)")
    p.add_argument("--video", default=None, help="a video for the frames/s of predict_video")
    p.add_argument("--runs", nargs="*", default=[], help="trained runs for --video")
    p.add_argument("--json", default=None, help="also write every figure as JSON to this file")
    a = p.parse_args(argv)
    n, frames = (5, 90) if a.quick else (15, 150)
    report: Dict[str, Any] = {}
    print(f"smoothing on realistic 30 fps clips ({n} clips x {frames} frames, seed {a.seed}); "
          "ratio = RMSE / input RMSE (pooled), worst = the worst clip's ratio, accel = "
          "acceleration error px/frame^2, moved = how far points moved (RMS, max px)")
    samples = realistic_samples(n, frames, a.seed)
    rows = smoothing_rows(samples, (0.0, 1.0, 3.0, 6.0), a.seed)
    _print_rows(rows)
    report["realistic"] = rows
    kit = smoothing_rows({"kit dense": kit_dense_samples(max(2, n // 2), 60, a.seed)},
                         (0.0, 3.0, 6.0), a.seed)  # fmt: skip
    print("\nthe kit's dense synthetic clips (slow motion, 1920x1080):")
    _print_rows(kit)
    report["kit_dense"] = kit
    wild = wild_point_shift(samples["dense"] + samples["gaps"], seed=a.seed)
    print("\na wild point (one coordinate = 5000 px) per clip, noise 3 px:")
    for label, r in wild.items():
        print(f"  {label:<34} other points moved <= {r['neighbour_shift_max']:8.2f} px; "
              f"the wild point ends <= {r['wild_point_error_max']:8.1f} px from the truth")
    report["wild_point"] = wild
    rates = wrong_person_rates(n_clips=max(2, n // 2), frames=60, seed=a.seed)
    print("\nwrong-person rate per rule (kit dense clips, a distractor in every frame):",
          ", ".join(f"{r} {v:.3f}" for r, v in rates.items() if r != "frames"))
    report["wrong_person"] = rates
    clips = two_person_clips(max(2, n // 2) if a.quick else 10, seed=a.seed)
    ids = identity_switch_counts(clips)
    print(f"\ntwo-person realistic clips ({len(clips)} x 120 frames, a bystander crossing, the main "
          f"person missed 4 frames; tracker split the main person into "
          f"{ids['tracker']['main_person_split_into_extra_ids']} extra ids):")
    for rule in RULES:
        r = ids[rule]
        print(f"  {rule:<8} identity switches {r['switches']:>4}   wrong person "
              f"{r['wrong_rate']:.3f} of {r['frames']} frames")
    report["identity_switches"] = ids
    if a.video:
        with __import__("tempfile").TemporaryDirectory() as tmp:
            report["video"] = video_throughput(a.video, a.runs, tmp)
        print(f"\npredict_video: {report['video']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
