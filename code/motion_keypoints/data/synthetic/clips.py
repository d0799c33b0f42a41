"""Realistic keypoint clips for measuring motion code: real tempo at a real frame rate.

The dense clips of :mod:`.writer` move slowly (an exercise cycle takes 3-5 s) and smoothly, so a
filter tuned on them lags on real footage. :func:`real_clip` gives the true keypoints (no image)
of one person doing a :data:`.body.REAL_MOVES` motion at ``fps`` (default 30): jumping jacks at
about 1 Hz with two ballistic hops a cycle, countermovement jumps with 0.45-0.6 s of free flight,
running strides with a flight phase, kicks whose leg snaps up in 0.15 s, squats. Optionally a
bystander walks across the frame at walking speed and crosses the main person (in front or
behind), for person selection and tracking.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from .body import (
    HEIGHT_M,
    View,
    _rng,
    pose_figure,
    real_pose,
    sample_body,
    sample_real_motion,
    translate_figure,
)
from .render import _Projector, keypoint_array, place

#: Walking speed of the bystander, metres per second.
WALK_SPEED = (1.1, 1.6)


def _figures(body, motion, times):
    figs = []
    for t in times:
        ang, root = real_pose(motion, float(t))
        figs.append(translate_figure(pose_figure(body, ang), root))
    return figs


def real_clip(
    seed: int, clip: int = 0, frames: int = 90, fps: float = 30.0, width: int = 640,
    height: int = 480, move: Optional[str] = None, bystander: bool = False,
) -> Dict[str, Any]:
    """True keypoints of one realistic clip: ``{"frames" (F,), "keypoints" (F, K, 2), "bystander"
    (F, K, 2) or None, "move", "fps", "scale" (px per body height)}``. A function of ``(seed,
    clip)`` and the arguments."""
    rng = _rng(seed, 7, clip)
    body, motion = sample_body(rng), sample_real_motion(rng, move)
    times = np.arange(frames) / float(fps)
    figs = _figures(body, motion, times)
    view = View(float(rng.uniform(-35, 35)) + (180.0 if rng.random() < 0.3 else 0.0),
                float(rng.uniform(-8, 8)), float(rng.uniform(-3, 3)))  # fmt: skip
    proj = _Projector(view)
    person_h = float(rng.uniform(0.45, 0.7)) * height
    place(figs, proj, width, height, person_h, float(rng.uniform(0.4, 0.6)),
          float(rng.uniform(0.85, 0.95)))  # fmt: skip
    kps = np.stack([keypoint_array(f, proj) for f in figs])
    other = None
    if bystander:
        other = _bystander(rng, times, proj.scale, kps, width, height)
    return {"frames": np.arange(frames), "keypoints": kps, "bystander": other,
            "move": motion.exercise, "fps": float(fps), "scale": float(proj.scale)}


def _bystander(rng, times, main_scale, main_kps, width, height) -> np.ndarray:
    """A person walking (side view) across the frame at :data:`WALK_SPEED`, passing the main
    person's position at a random time in the middle of the clip."""
    body = sample_body(rng)
    motion = sample_real_motion(rng, "run")
    p = dict(motion.params, rate=float(rng.uniform(0.85, 1.0)), swing=25.0, flight=0.0,
             drift=0.0)  # fmt: skip
    motion = type(motion)("run", p, motion.side)
    figs = _figures(body, motion, times)
    direction = 1.0 if rng.random() < 0.5 else -1.0
    proj = _Projector(View(direction * 90.0, 0.0, 0.0))
    place(figs, proj, width, height, main_scale * float(rng.uniform(0.85, 1.0)), 0.5,
          float(rng.uniform(0.85, 0.97)))  # fmt: skip
    kps = np.stack([keypoint_array(f, proj) for f in figs])
    speed = float(rng.uniform(*WALK_SPEED)) / HEIGHT_M * proj.scale  # px / s
    t_cross = float(rng.uniform(0.35, 0.65)) * times[-1] if len(times) > 1 else 0.0
    main_x = float(np.median(main_kps[:, :, 0]))
    shift = main_x + direction * speed * (times - t_cross) - np.median(kps[:, :, 0])
    return kps + np.stack([shift, np.zeros_like(shift)], -1)[:, None, :]
