"""The figures of issue 13 on the kit's synthetic clips (run ``python -m
motion_keypoints.motion.measure``; the tests call the functions on small sizes).

* :func:`smoothing_figures` — RMSE and acceleration error (jitter) of noisy copies of the true
  keypoints, without smoothing, with the kit's time-aware smoothing (default: Gaussian σ 1.5
  frames within runs of frames at most 2 apart) and with a careless Gaussian over rows (no gap
  or switch rule), on dense clips (consecutive frames) and sparse clips (the competition-like
  default: frames 2–11 apart).
* :func:`wrong_person_rates` — the fraction of frames where each selection rule picks the
  distractor instead of the labelled person, on dense clips with a distractor in every frame,
  with a simulated detector (noisy keypoints and boxes of both persons; scores drawn as stated).
* :func:`video_throughput` — frames/s of :func:`motion_keypoints.motion.video.predict_video`.

The keypoints come from the synthetic generator without drawing (``render_item_full(...,
draw=False)``), so the figures at 1920×1080 take seconds.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..geometry import box_from_points
from . import smooth as S
from .select import RULES, select_track


def synthetic_sequences(
    n_clips: int, frames: int, frame_step: int, seed: int = 0, width: int = 1920,
    height: int = 1080, distractor: float = 0.0,
) -> List[Dict[str, Any]]:
    """True keypoints of ``n_clips`` synthetic clips, one camera each: a list of
    ``{"frames" (F,), "keypoints" (F, K, 2), "distractor" (F, K, 2) or None}``."""
    from ..data.naming import GROUP_PATTERN
    from ..data.synthetic.writer import plan_items, render_item_full

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


def smoothing_figures(
    noise: float = 3.0, n_clips: int = 8, dense_frames: int = 60, sparse_frames: int = 6,
    seed: int = 0, width: int = 1920, height: int = 1080,
    method: str = S.DEFAULT_METHOD, params: Optional[Dict[str, float]] = None,
) -> Dict[str, Dict[str, Dict[str, float]]]:
    """``{"dense"|"sparse": {"noisy"|"smoothed"|"rows": {"rmse", "accel"}}}`` for i.i.d. Gaussian
    noise of ``noise`` px per coordinate. ``smoothed`` is the kit's smoothing with default
    ``max_gap`` and switch detection; ``rows`` a Gaussian of the same σ over row positions,
    across any gap (the careless baseline)."""
    rng = np.random.default_rng(seed + 1000)
    result = {}
    for name, frames, step in (("dense", dense_frames, 1), ("sparse", sparse_frames, 0)):
        seqs = synthetic_sequences(n_clips, frames, step, seed, width, height)
        noisy = [s["keypoints"] + rng.normal(0.0, noise, s["keypoints"].shape) for s in seqs]
        smoothed = [S.smooth_sequence(s["frames"], p, method, params) for s, p in zip(seqs, noisy)]
        sigma = {**S.DEFAULT_PARAMS["gaussian"], **dict(params or {})}["sigma"]
        rows = [S.gaussian_smooth(np.arange(len(p)), p, sigma) for p in noisy]
        steps = np.concatenate([np.diff(s["frames"]) for s in seqs])
        # tuned: choose_params on the first half of the clips (validation), applied to the rest
        half = len(seqs) // 2
        val_t, val_p = _table(seqs[:half], [s["keypoints"] for s in seqs[:half]]), _table(
            seqs[:half], noisy[:half])
        chosen, _ = S.choose_params(val_p, val_t)
        test_p = _table(seqs[half:], noisy[half:])
        if chosen != S.OFF:
            m, prm, gap, k = S.parse_candidate(chosen)
            test_p = S.smooth_table(test_p, m, prm, gap, k)
        tuned = test_p[list(S.COORD_COLUMNS)].to_numpy(float).reshape(len(test_p), -1, 2)
        cuts = np.cumsum([len(s["frames"]) for s in seqs[half:]])[:-1]
        result[name] = {"noisy": _errors(seqs, noisy), "smoothed": _errors(seqs, smoothed),
                        "rows": _errors(seqs, rows),
                        "test_half_noisy": _errors(seqs[half:], noisy[half:]),
                        "test_half_tuned": _errors(seqs[half:], np.split(tuned, cuts)),
                        "tuned_choice": chosen if chosen == S.OFF else S.candidate_label(chosen),
                        "frame_steps": {"min": int(steps.min()), "max": int(steps.max())}}
    return result


def _table(seqs, coords):
    """A keypoint table with competition-style names (clip i, camera A) for ``smooth_table``."""
    import pandas as pd

    from ..data.naming import frame_name

    names = [frame_name(i + 1, "A", int(f)) for i, s in enumerate(seqs) for f in s["frames"]]
    flat = np.concatenate(coords).reshape(len(names), -1)
    return pd.DataFrame({"image": names, **dict(zip(S.COORD_COLUMNS, flat.T))})


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
            chosen = select_track(frames_instances, rule, width, height)
            wrong[rule] += sum(chosen[t] != main_idx[t] for t in counted)
    return {r: wrong[r] / max(total, 1) for r in RULES} | {"frames": total}


def video_throughput(
    video, runs: Sequence, out_dir, batch_size: int = 4, flip_tta: bool = True, **kwargs
) -> Dict[str, Any]:
    """frames/s of :func:`motion_keypoints.motion.video.predict_video` (prediction pass, and the
    whole command including decoding twice and writing the overlay)."""
    from .video import predict_video

    t0 = time.perf_counter()
    summary = predict_video(video, runs, out_dir, batch_size=batch_size, flip_tta=flip_tta,
                            progress=False, **kwargs)  # fmt: skip
    wall = time.perf_counter() - t0
    return {"frames": summary["frames"], "predict_frames_per_s": summary["frames_per_s"],
            "total_frames_per_s": summary["frames"] / wall, "flip_tta": flip_tta,
            "batch_size": batch_size}


def main() -> None:  # pragma: no cover - a report, run by hand
    report = {}
    for noise in (3.0, 6.0):
        report[f"smoothing_noise_{noise:g}px"] = smoothing_figures(noise)
    report["wrong_person_confused_detector"] = wrong_person_rates()
    report["wrong_person_confident_detector"] = wrong_person_rates(
        main_scores=(0.7, 1.0), distractor_scores=(0.3, 0.9))
    report["wrong_person_5pct_missed"] = wrong_person_rates(miss_rate=0.05)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":  # pragma: no cover
    main()
