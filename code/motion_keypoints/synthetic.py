"""Synthetic motion-keypoint data: the kit's embedded default for the demo, tests and benchmarks.

Each image shows one articulated figure: a 3-D kinematic skeleton (plausible limb lengths and
joint angles of exercise-like motions: raises, presses, squats, lunges, bends, planks) seen by an
orthographic camera and drawn with thick outlined limbs over a textured background. The labels
are exactly the joint centres, each drawn as a small ring marker (left yellow, right cyan, centre
magenta), and the limbs of the person's left side are tinted warm, the right side cool, so left
and right are learnable in front and back views alike.

Data are written in the competition layout with competition-style names
``{clip:03d}-1-1-01-Z17_{camera}-{frame:07d}.jpg``: a clip is one person doing one exercise, seen
by a few of the cameras A-E (same pose at the same frame, different views) over a few neighbouring
frames. Train and test use disjoint clips; ``test_labels.csv`` holds the true test keypoints.
Everything is a function of ``(seed, split, clip, camera, frame)``, so an image does not depend
on the order of generation or on how many images are made.
"""

from __future__ import annotations

import argparse
import colorsys
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from .keypoints import COORD_COLUMNS, CSV_COLUMNS, KEYPOINT_NAMES
from .utils import PathLike, atomic_path, atomic_write_text

#: Bump when the rendering changes, so an existing synthetic folder is regenerated.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"
CAMERAS = "ABCDE"
#: File names look like the competition's: ``{clip:03d}-1-1-01-Z17_{camera}-{frame:07d}.jpg``.
NAME_PATTERN = re.compile(r"(?P<clip>\d{3,}-1-1-01-Z17)_(?P<camera>[A-E])-(?P<frame>\d{7})\.jpg")
SPLITS = ("train", "test")

#: Marker colours (BGR) at the joint centres: left yellow, right cyan, centre line magenta.
LEFT_MARKER = (0, 255, 255)
RIGHT_MARKER = (255, 255, 0)
CENTER_MARKER = (255, 0, 255)
#: Tints mixed into the limb colours: the person's left warm (orange), right cool (blue).
LEFT_TINT = (0, 110, 255)
RIGHT_TINT = (255, 120, 0)
TINT_AMOUNT = 0.4

#: Extremities that may leave the frame (``outside_rate``).
EXTREMITIES = tuple(
    f"{s}_{p}" for s in ("left", "right") for p in ("palm", "wrist", "instep", "ankle")
)

_SIDES = (("left", 1.0), ("right", -1.0))  # body +x is the person's left
_DOWN = np.array([0.0, -1.0, 0.0])
_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates in 1/16 px
_ONE = 1 << _SHIFT
_EXERCISES = (
    "stand", "side_raise", "front_raise", "press", "squat", "lunge",
    "toe_touch", "jumping_jack", "side_bend", "knee_raise", "plank",
)  # fmt: skip
_SKIN = (
    (189, 224, 255),
    (160, 200, 240),
    (125, 170, 225),
    (95, 140, 195),
    (65, 105, 160),
    (45, 75, 115),
)
# Unit-sphere sample (Fibonacci) for the head's outline and hair.
_N_SPHERE = 240
_golden = np.pi * (3.0 - np.sqrt(5.0))
_sy = 1.0 - 2.0 * (np.arange(_N_SPHERE) + 0.5) / _N_SPHERE
_sr = np.sqrt(1.0 - _sy**2)
_SPHERE = np.stack(
    [
        _sr * np.cos(_golden * np.arange(_N_SPHERE)),
        _sy,
        _sr * np.sin(_golden * np.arange(_N_SPHERE)),
    ],
    1,
)
_HAIR = (_SPHERE[:, 1] > 0.3) | (_SPHERE[:, 2] < -0.2)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *map(int, keys)])


def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _hsv(h: float, s: float, v: float) -> Tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(b * 255), round(g * 255), round(r * 255))


def _mix(a, b, t: float) -> Tuple[int, int, int]:
    return tuple(round((1 - t) * x + t * y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- the person


@dataclass(frozen=True)
class Body:
    """Proportions (in standing heights) and colours (BGR) of one person."""

    lengths: Dict[str, float]
    width: float  # limb thickness factor
    skin: Tuple[int, int, int]
    shirt: Tuple[int, int, int]
    pants: Tuple[int, int, int]
    shoes: Tuple[int, int, int]
    hair: Tuple[int, int, int]
    short_sleeves: bool
    shorts: bool


def sample_body(rng: np.random.Generator) -> Body:
    """A random person: limb lengths within a few per cent of average proportions."""
    base = {
        "upper_arm": 0.17, "forearm": 0.15, "hand": 0.045, "thigh": 0.245, "shin": 0.235,
        "foot": 0.06, "shoulder": 0.11, "hip": 0.08, "torso": 0.27, "head": 1.0,
    }  # fmt: skip
    lengths = {k: v * float(rng.normal(1.0, 0.04)) for k, v in base.items()}
    skin = _SKIN[int(rng.integers(len(_SKIN)))]
    skin = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in skin)
    return Body(
        lengths=lengths,
        width=float(rng.uniform(0.85, 1.2)),
        skin=skin,
        shirt=_hsv(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.4, 0.95)),
        pants=_hsv(rng.random(), rng.uniform(0.4, 0.85), rng.uniform(0.3, 0.8)),
        shoes=_hsv(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.15, 0.95)),
        hair=_hsv(rng.uniform(0.02, 0.12), rng.uniform(0.3, 0.8), rng.uniform(0.08, 0.45)),
        short_sleeves=bool(rng.random() < 0.5),
        shorts=bool(rng.random() < 0.35),
    )


@dataclass(frozen=True)
class Motion:
    """An exercise with its clip-specific amplitudes; ``side`` is the leading side (+1 left)."""

    exercise: str
    params: Dict[str, float]
    side: float


def sample_motion(rng: np.random.Generator, exercise: str | None = None) -> Motion:
    exercise = exercise or _EXERCISES[int(rng.integers(len(_EXERCISES)))]
    if exercise not in _EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; known: {', '.join(_EXERCISES)}")
    params = {
        "stance": rng.uniform(2, 12), "arm_rest": rng.uniform(6, 22), "elbow_rest": rng.uniform(4, 25),
        "range": rng.uniform(0.75, 1.0), "pitch": rng.uniform(72, 85), "bend": rng.uniform(70, 105),
        "head_pitch": rng.uniform(-10, 15), "head_yaw": rng.uniform(-20, 20),
    }  # fmt: skip
    return Motion(
        exercise, {k: float(v) for k, v in params.items()}, 1.0 if rng.random() < 0.5 else -1.0
    )


def pose_angles(
    motion: Motion, phase: float, rng: np.random.Generator | None = None
) -> Dict[str, float]:
    """Joint angles (degrees) of ``motion`` at ``phase`` (cycles), with a little jitter from ``rng``."""
    p = motion.params
    a = p["range"] * 0.5 * (1.0 - np.cos(2.0 * np.pi * phase))  # 0 at rest, up to 1
    ang = {"bend": 2.0, "lean": 0.0, "twist": 0.0, "pitch": 0.0}
    ang["head_pitch"], ang["head_yaw"] = p["head_pitch"], p["head_yaw"]
    for s, _ in _SIDES:
        ang.update(
            {f"{s}_sh_flex": 3.0, f"{s}_sh_abd": p["arm_rest"], f"{s}_elbow": p["elbow_rest"]}
        )
        ang.update(
            {f"{s}_hip_flex": 0.0, f"{s}_hip_abd": p["stance"], f"{s}_knee": 3.0, f"{s}_foot": 78.0}
        )
    lead, other = ("left", "right") if motion.side > 0 else ("right", "left")
    both = ("left", "right")
    ex = motion.exercise
    if ex == "side_raise":
        for s in both:
            ang[f"{s}_sh_abd"] += a * 150
            ang[f"{s}_elbow"] = 8.0
    elif ex == "front_raise":
        for s in both:
            ang[f"{s}_sh_flex"] = a * 165
            ang[f"{s}_sh_abd"] = 8.0
            ang[f"{s}_elbow"] = 6.0
    elif ex == "press":
        for s in both:
            ang[f"{s}_sh_abd"] = 85 + a * 80
            ang[f"{s}_elbow"] = 100 * (1 - a) + 5
    elif ex == "squat":
        ang["bend"] = 2 + a * 38
        for s in both:
            ang[f"{s}_hip_flex"] = a * 100
            ang[f"{s}_knee"] = 3 + a * 112
            ang[f"{s}_sh_flex"] = a * 90 + ang["bend"]
            ang[f"{s}_sh_abd"] = 8.0
    elif ex == "lunge":
        ang[f"{lead}_hip_flex"], ang[f"{lead}_knee"] = a * 80, 3 + a * 90
        ang[f"{other}_hip_flex"], ang[f"{other}_knee"] = -8 - a * 20, 5 + a * 80
        for s in both:
            ang[f"{s}_hip_abd"] = 3.0
            ang[f"{s}_sh_abd"], ang[f"{s}_elbow"] = 35.0, 110.0
    elif ex == "toe_touch":
        ang["bend"] = a * p["bend"]
        for s in both:
            ang[f"{s}_sh_flex"] = ang["bend"]
            ang[f"{s}_sh_abd"] = 6.0
            ang[f"{s}_knee"] = 3 + a * 10
        ang["head_pitch"] = -a * 25
    elif ex == "jumping_jack":
        for s in both:
            ang[f"{s}_sh_abd"] = 15 + a * 150
            ang[f"{s}_hip_abd"] = 4 + a * 20
            ang[f"{s}_elbow"] = 10.0
    elif ex == "side_bend":
        ang["lean"] = motion.side * a * 32
        ang[f"{other}_sh_abd"] = 20 + a * 140
        ang[f"{lead}_elbow"] = 10.0
    elif ex == "knee_raise":
        ang[f"{lead}_hip_flex"], ang[f"{lead}_knee"] = a * 95, 3 + a * 100
        ang[f"{lead}_foot"] = 78 - a * 40
        for s in both:
            ang[f"{s}_sh_flex"], ang[f"{s}_elbow"] = 20.0, 95.0
    elif ex == "plank":
        ang["pitch"] = p["pitch"]
        ang["bend"] = 0.0
        ang["head_pitch"] = -30.0
        for s in both:
            ang[f"{s}_elbow"] = a * 95
            ang[f"{s}_sh_flex"] = p["pitch"] - ang[f"{s}_elbow"] / 2
            ang[f"{s}_sh_abd"], ang[f"{s}_hip_abd"], ang[f"{s}_knee"] = 6.0, 3.0, 0.0
            ang[f"{s}_foot"] = 92.0
    if rng is not None:
        ang = {k: v + float(rng.normal(0.0, 2.5)) for k, v in ang.items()}
    return ang


@dataclass
class Figure3D:
    """A posed person in body coordinates (x the person's left, y up, z forward; unit = height)."""

    joints: Dict[str, np.ndarray]
    head: np.ndarray  # (3,) centre
    head_axes: np.ndarray  # (3, 3) columns: the head's x, y, z axes scaled by its radii
    torso: np.ndarray  # (8, 3) corners of the torso box
    heels: Dict[str, np.ndarray]
    toes: Dict[str, np.ndarray]
    hand_tips: Dict[str, np.ndarray]


def pose_figure(body: Body, ang: Dict[str, float]) -> Figure3D:
    """Forward kinematics: joint positions of ``body`` posed with ``ang``."""
    L = body.lengths
    g = _rx(ang["pitch"])
    rt = _ry(ang["twist"]) @ _rx(ang["bend"]) @ _rz(ang["lean"])
    J: Dict[str, np.ndarray] = {"spine1(waist)": np.zeros(3)}
    J["spine2(back)"] = rt @ np.array([0.0, 0.48 * L["torso"], -0.025])
    J["neck"] = rt @ np.array([0.0, L["torso"], 0.0])
    heels, toes, tips = {}, {}, {}
    for s, sg in _SIDES:
        sh = rt @ np.array([sg * L["shoulder"], L["torso"] - 0.025, 0.0])
        ra = rt @ _rz(sg * ang[f"{s}_sh_abd"]) @ _rx(-ang[f"{s}_sh_flex"])
        el = sh + L["upper_arm"] * (ra @ _DOWN)
        fa = (ra @ _rx(-ang[f"{s}_elbow"])) @ _DOWN
        wr = el + L["forearm"] * fa
        J[f"{s}_shoulder"], J[f"{s}_elbow"], J[f"{s}_wrist"] = sh, el, wr
        J[f"{s}_palm"] = wr + L["hand"] * fa
        tips[s] = wr + 2.1 * L["hand"] * fa
        hip = np.array([sg * L["hip"], -0.055, 0.0])
        rl = _rz(sg * ang[f"{s}_hip_abd"]) @ _rx(-ang[f"{s}_hip_flex"])
        kn = hip + L["thigh"] * (rl @ _DOWN)
        an = kn + L["shin"] * ((rl @ _rx(ang[f"{s}_knee"])) @ _DOWN)
        fd = (_rz(sg * ang[f"{s}_hip_abd"]) @ _rx(-ang[f"{s}_foot"])) @ _DOWN
        J[f"{s}_hip"], J[f"{s}_knee"], J[f"{s}_ankle"] = hip, kn, an
        J[f"{s}_instep"] = an + L["foot"] * fd
        heels[s], toes[s] = an - 0.4 * L["foot"] * fd, an + 1.9 * L["foot"] * fd
    rh = rt @ _rx(ang["head_pitch"]) @ _ry(ang["head_yaw"])
    hs = L["head"]
    hc = J["neck"] + rh @ (np.array([0.0, 0.08, 0.012]) * hs)
    face = {
        "nose": (0.0, -0.012, 0.07), "left_eye": (0.03, 0.012, 0.057), "right_eye": (-0.03, 0.012, 0.057),
        "left_ear": (0.064, 0.0, -0.008), "right_ear": (-0.064, 0.0, -0.008),
    }  # fmt: skip
    for name, off in face.items():
        J[name] = hc + rh @ (np.array(off) * hs)
    corners = []
    for y, w, d, rot in (
        (L["torso"] - 0.01, 0.1, 0.055, rt),
        (-0.07, L["hip"] + 0.03, 0.05, np.eye(3)),
    ):
        corners += [rot @ np.array([sx * w, y, sz * d]) for sx in (-1, 1) for sz in (-1, 1)]
    fig = Figure3D(
        J, hc, rh @ np.diag([0.062, 0.078, 0.07]) * hs, np.array(corners), heels, toes, tips
    )
    if ang["pitch"]:
        _transform(fig, g)
    return fig


def _transform(fig: Figure3D, m: np.ndarray) -> None:
    for d in (fig.joints, fig.heels, fig.toes, fig.hand_tips):
        for k in d:
            d[k] = m @ d[k]
    fig.head, fig.head_axes, fig.torso = m @ fig.head, m @ fig.head_axes, fig.torso @ m.T


@dataclass(frozen=True)
class View:
    """Orthographic camera: yaw about the vertical (0: the person faces the camera), tilt, roll."""

    yaw: float
    tilt: float = 0.0
    roll: float = 0.0


def sample_view(
    rng: np.random.Generator, facing: str | None = None, side_view: bool = False
) -> View:
    """``facing`` "front" (person's left on the image right), "back", or None (random)."""
    if facing not in (None, "front", "back"):
        raise ValueError(f"facing must be 'front', 'back' or None, got {facing!r}")
    if facing is None:
        facing = "back" if rng.random() < 0.35 else "front"
    base = 0.0 if facing == "front" else 180.0
    spread = 25.0 if side_view else 60.0
    if side_view:
        base += 90.0 if rng.random() < 0.5 else -90.0
    return View(
        base + float(rng.uniform(-spread, spread)),
        float(rng.uniform(-12, 12)),
        float(rng.uniform(-4, 4)),
    )


# --------------------------------------------------------------------------- drawing


def _fx(points) -> np.ndarray:
    return np.round(np.asarray(points, float) * _ONE).astype(np.int32)


def _disc(img, c, r, colour) -> None:
    x, y = _fx(c)
    cv2.circle(img, (int(x), int(y)), max(1, round(r * _ONE)), colour, -1, cv2.LINE_AA, _SHIFT)


def _capsule(img, a, b, ra, rb, colour) -> None:
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    n = np.hypot(*d)
    if n > 1e-6:
        normal = np.array([-d[1], d[0]]) / n
        poly = np.array([a + normal * ra, b + normal * rb, b - normal * rb, a - normal * ra])
        cv2.fillConvexPoly(img, _fx(poly), colour, cv2.LINE_AA, _SHIFT)
    _disc(img, a, ra, colour)
    _disc(img, b, rb, colour)


def _hull(img, points, colour) -> None:
    hull = cv2.convexHull(np.asarray(points, np.float32))[:, 0]
    cv2.fillConvexPoly(img, _fx(hull), colour, cv2.LINE_AA, _SHIFT)


def _dark(colour, t: float = 0.35) -> Tuple[int, int, int]:
    return tuple(round(c * t) for c in colour)


class _Projector:
    """Body coordinates -> image pixels (after ``place`` has set scale and offset)."""

    def __init__(self, view: View):
        self.rot = _rx(view.tilt) @ _ry(view.yaw)
        c, s = np.cos(np.radians(view.roll)), np.sin(np.radians(view.roll))
        self.roll = np.array([[c, -s], [s, c]])
        self.scale, self.offset = 1.0, np.zeros(2)

    def depth(self, p) -> np.ndarray:
        return (np.asarray(p, float) @ self.rot.T)[..., 2]

    def unit(self, p) -> np.ndarray:
        q = np.asarray(p, float) @ self.rot.T
        return np.stack([q[..., 0], -q[..., 1]], -1) @ self.roll.T

    def __call__(self, p) -> np.ndarray:
        return self.unit(p) * self.scale + self.offset


def _head_points(fig: Figure3D) -> np.ndarray:
    return fig.head + _SPHERE @ fig.head_axes.T


def _outline_points(fig: Figure3D) -> np.ndarray:
    """3-D points whose projections bound the drawn figure."""
    extra = [fig.torso, _head_points(fig)]
    extra += [np.array(list(d.values())) for d in (fig.heels, fig.toes, fig.hand_tips)]
    return np.concatenate([np.array([fig.joints[n] for n in KEYPOINT_NAMES])] + extra)


def _margin(height_px: float) -> float:
    return max(2.5, 0.045 * height_px)


def place(
    figs: Sequence[Figure3D],
    proj: _Projector,
    width: int,
    height: int,
    person_height: float,
    anchor_x: float,
    floor_y: float,
) -> None:
    """Set ``proj``'s scale and offset for the frames ``figs`` of one camera together.

    The figures get ``person_height`` px per body height (less if they would not fit), their
    lowest point on ``floor_y`` and the first figure's feet at ``anchor_x`` (fractions of the
    image); then all are shifted fully into the frame, so a static camera sees them all inside.
    """
    pts = np.concatenate([proj.unit(_outline_points(f)) for f in figs])
    lo, hi = pts.min(0), pts.max(0)
    m = _margin(person_height)
    fit = min(
        (width - 2 * m) / max(hi[0] - lo[0], 1e-6), (height - 2 * m) / max(hi[1] - lo[1], 1e-6)
    )
    s = min(person_height, fit)
    feet_x = proj.unit(np.array([figs[0].joints["left_ankle"], figs[0].joints["right_ankle"]]))[
        :, 0
    ].mean()
    off = np.array([anchor_x * width - feet_x * s, floor_y * height - hi[1] * s])
    m = _margin(s)
    lo, hi = lo * s + off, hi * s + off
    for axis, size in ((0, width), (1, height)):
        if lo[axis] < m:
            off[axis] += m - lo[axis]
        elif hi[axis] > size - m:
            off[axis] -= hi[axis] - (size - m)
    proj.scale, proj.offset = s, off


def push_outside(
    kps: np.ndarray, width: int, height: int, rng: np.random.Generator
) -> np.ndarray | None:
    """A shift that puts one hand or foot keypoint that is extreme towards a border just outside
    the frame, and nothing but hands and feet; None when no border allows that."""
    extreme = [(0, int(np.argmin(kps[:, 0]))), (0, int(np.argmax(kps[:, 0]))),
               (1, int(np.argmin(kps[:, 1]))), (1, int(np.argmax(kps[:, 1])))]  # fmt: skip
    allowed = np.array([n in EXTREMITIES for n in KEYPOINT_NAMES])
    for i in rng.permutation(len(extreme)):
        axis, k = extreme[i]
        if not allowed[k]:
            continue
        size = (width, height)[axis]
        beyond = float(rng.uniform(1.0, max(1.5, 0.015 * size)))
        shift = np.zeros(2)
        shift[axis] = -(kps[k, axis] + beyond) if i % 2 == 0 else (size + beyond) - kps[k, axis]
        moved = kps + shift
        out = (
            (moved[:, 0] < 0) | (moved[:, 0] >= width) | (moved[:, 1] < 0) | (moved[:, 1] >= height)
        )
        if not np.any(out & ~allowed):
            return shift
    return None


def draw_figure(img: np.ndarray, fig: Figure3D, body: Body, proj: _Projector) -> None:
    """Draw the placed figure onto ``img`` (BGR, in place), far parts first, markers last."""
    J, s = fig.joints, proj.scale
    w = body.width * s
    line = max(1.0, 0.004 * s)
    items: List[Tuple[float, object]] = []

    def limb(a3, b3, ra, rb, colour):
        a, b = proj(a3), proj(b3)
        depth = float(proj.depth((a3 + b3) / 2))

        def paint():
            _capsule(img, a, b, ra * w + line, rb * w + line, _dark(colour))
            _capsule(img, a, b, ra * w, rb * w, colour)

        items.append((depth, paint))

    torso_colour = body.shirt
    torso2d = proj(fig.torso)

    def torso():
        hull = cv2.convexHull(torso2d.astype(np.float32))[:, 0]
        centre = hull.mean(0)
        grow = (
            hull
            + (hull - centre)
            / np.maximum(np.linalg.norm(hull - centre, axis=1, keepdims=True), 1e-6)
            * line
        )
        _hull(img, grow, _dark(torso_colour))
        _hull(img, hull, torso_colour)

    items.append((float(proj.depth(fig.torso).mean()), torso))
    limb(J["neck"], fig.head, 0.026, 0.026, body.skin)
    for side, tint in (("left", LEFT_TINT), ("right", RIGHT_TINT)):
        upper = body.skin if body.short_sleeves else body.shirt
        thigh = body.pants
        shin = body.skin if body.shorts else body.pants

        def col(c, tint=tint):
            return _mix(c, tint, TINT_AMOUNT)

        limb(J[f"{side}_shoulder"], J[f"{side}_elbow"], 0.03, 0.025, col(upper))
        limb(J[f"{side}_elbow"], J[f"{side}_wrist"], 0.024, 0.019, col(body.skin))
        limb(J[f"{side}_wrist"], fig.hand_tips[side], 0.02, 0.017, col(body.skin))
        limb(J[f"{side}_hip"], J[f"{side}_knee"], 0.045, 0.034, col(thigh))
        limb(J[f"{side}_knee"], J[f"{side}_ankle"], 0.032, 0.024, col(shin))
        limb(fig.heels[side], fig.toes[side], 0.022, 0.018, col(body.shoes))

    head_pts = _head_points(fig)
    vis = proj.depth(head_pts - fig.head) > -0.004

    def head():
        h2 = proj(head_pts)
        ears = [
            (proj.depth(J[e]) - proj.depth(fig.head), proj(J[e])) for e in ("left_ear", "right_ear")
        ]
        for dz, e in ears:
            if dz < 0:
                _disc(img, e, 0.016 * w + line, _dark(body.skin))
                _disc(img, e, 0.016 * w, body.skin)
        centre = proj(fig.head)
        grow = (
            h2
            + (h2 - centre)
            / np.maximum(np.linalg.norm(h2 - centre, axis=1, keepdims=True), 1e-6)
            * line
        )
        _hull(img, grow, _dark(body.skin))
        _hull(img, h2, body.skin)
        hair = h2[vis & _HAIR]
        if len(hair) >= 3:
            _hull(img, hair, body.hair)
        for dz, e in ears:
            if dz >= 0:
                _disc(img, e, 0.016 * w + line, _dark(body.skin))
                _disc(img, e, 0.016 * w, body.skin)

    items.append((float(proj.depth(fig.head)), head))
    for _, paint in sorted(items, key=lambda t: t[0]):
        paint()
    r = max(2.0, 0.009 * s)
    depth = proj.depth(np.array([J[n] for n in KEYPOINT_NAMES]))
    for k in np.argsort(depth, kind="stable"):
        name = KEYPOINT_NAMES[k]
        colour = marker_colour(name)
        c = proj(J[name])
        _disc(img, c, r + max(1.0, 0.3 * r), (20, 20, 20))
        _disc(img, c, r, colour)


def marker_colour(name: str) -> Tuple[int, int, int]:
    """The colour of a keypoint's marker (BGR)."""
    if name.startswith("left_"):
        return LEFT_MARKER
    if name.startswith("right_"):
        return RIGHT_MARKER
    return CENTER_MARKER


def keypoint_array(fig: Figure3D, proj: _Projector) -> np.ndarray:
    """``(K, 2)`` image coordinates of the keypoints in ``KEYPOINT_NAMES`` order."""
    return proj(np.array([fig.joints[n] for n in KEYPOINT_NAMES]))


# --------------------------------------------------------------------------- background


def _muted(rng: np.random.Generator) -> np.ndarray:
    return np.array(_hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.2, 0.92)), np.float32)


def render_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A muted, textured background (gradient, stripes, blobs or a room with a floor) with
    furniture-like rectangles and film grain."""
    f = max(1, height // 270)  # the smooth texture is computed at reduced size, then upscaled
    h, w = -(-height // f), -(-width // f)
    kind = int(rng.integers(4))
    c1, c2 = _muted(rng), _muted(rng)
    ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, width / height, w, dtype=np.float32)[None, :]
    theta = rng.uniform(0, np.pi)
    proj = xs * np.float32(np.cos(theta)) + ys * np.float32(np.sin(theta))
    if kind == 0:
        t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1e-6)
    elif kind == 1:
        period = np.float32(rng.uniform(0.04, 0.25))
        t = 0.5 + 0.5 * np.sin(2 * np.pi * proj / period)
        if rng.random() < 0.5:
            t = (t > 0.5).astype(np.float32)
    elif kind == 2:
        gh, gw = int(rng.integers(3, 9)), int(rng.integers(4, 14))
        small = rng.random((gh, gw)).astype(np.float32)
        t = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    else:
        horizon = rng.uniform(0.45, 0.8)
        t = np.broadcast_to((ys > horizon).astype(np.float32), (h, w))
        c2 = c2 * np.float32(0.8)
    small_img = np.clip(c1 + t[..., None] * (c2 - c1), 0, 255).astype(np.uint8)
    img = (
        cv2.resize(small_img, (width, height), interpolation=cv2.INTER_LINEAR)
        if f > 1
        else small_img
    )
    for _ in range(int(rng.integers(0, 4))):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.uniform(0.05, 0.3) * width, y0 + rng.uniform(0.05, 0.4) * height
        cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), _muted(rng).tolist(), -1)
    g = max(1, f // 2)
    grain = rng.normal(128.0, rng.uniform(2, 8), (-(-height // g), -(-width // g)))
    grain = np.clip(grain, 0, 255).astype(np.uint8)
    if g > 1:
        grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_NEAREST)
    return cv2.addWeighted(img, 1.0, cv2.merge([grain] * 3), 1.0, -128.0)


# --------------------------------------------------------------------------- single images


def render_person(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    facing: str | None = None,
    exercise: str | None = None,
    background: np.ndarray | None = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """One random person on ``background`` (a copy; a random one if None), fully inside the frame.

    Returns the image (BGR uint8, before any JPEG compression) and the ``(K, 2)`` keypoints
    (pixel coordinates, ``KEYPOINT_NAMES`` order), which are the centres of the drawn markers.
    """
    body, motion = sample_body(rng), sample_motion(rng, exercise)
    view = sample_view(rng, facing, side_view=motion.exercise == "plank" and facing is None)
    fig = pose_figure(body, pose_angles(motion, float(rng.random()), rng))
    img = render_background(rng, width, height) if background is None else background.copy()
    proj = _Projector(view)
    place(
        [fig],
        proj,
        width,
        height,
        rng.uniform(0.35, 0.85) * height,
        rng.uniform(0.2, 0.8),
        rng.uniform(0.75, 0.97),
    )
    draw_figure(img, fig, body, proj)
    return img, keypoint_array(fig, proj)


# --------------------------------------------------------------------------- the data set


@dataclass(frozen=True)
class ImageItem:
    """One image of the data set and where it comes from."""

    split: str
    index: int  # within the split
    clip: int  # clip index within the split
    camera_slot: int
    frame_slot: int
    name: str


def _clip_numbers(n_train_clips: int) -> Dict[str, int]:
    """First clip number of each split: test clips follow the training clips."""
    return {"train": 1, "test": 1 + n_train_clips}


def _clip_plan(seed: int, split_code: int, clip: int, cameras_per_clip: int):
    """A clip's generator (for its person and motion), cameras, first frame number and frame step."""
    crng = _rng(seed, split_code, clip, 0)
    cams = sorted(crng.choice(len(CAMERAS), cameras_per_clip, replace=False).tolist())
    return crng, cams, int(crng.integers(1, 300)), int(crng.integers(2, 12))


def plan_items(
    n_train: int, n_test: int, seed: int, cameras_per_clip: int, frames_per_camera: int
) -> List[ImageItem]:
    """The images to make, in order, with their competition-style names."""
    per_clip = cameras_per_clip * frames_per_camera
    counts = {"train": n_train, "test": n_test}
    first = _clip_numbers(-(-n_train // per_clip))
    items = []
    for split_code, split in enumerate(SPLITS):
        for i in range(counts[split]):
            clip, r = divmod(i, per_clip)
            cam_slot, frame_slot = divmod(r, frames_per_camera)
            _, cams, frame0, step = _clip_plan(seed, split_code, clip, cameras_per_clip)
            name = f"{first[split] + clip:03d}-1-1-01-Z17_{CAMERAS[cams[cam_slot]]}-{frame0 + frame_slot * step:07d}.jpg"
            items.append(ImageItem(split, i, clip, cam_slot, frame_slot, name))
    return items


def render_item(
    item: ImageItem,
    seed: int,
    width: int,
    height: int,
    cameras_per_clip: int,
    frames_per_camera: int,
    outside_rate: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray, int]:
    """Render one planned image: (image BGR before JPEG, keypoints (K, 2), JPEG quality)."""
    sc = SPLITS.index(item.split)
    crng, cams, _, step = _clip_plan(seed, sc, item.clip, cameras_per_clip)
    body, motion = sample_body(crng), sample_motion(crng)
    plank = motion.exercise == "plank"
    facing = "back" if crng.random() < 0.35 else "front"
    base_yaw = (180.0 if facing == "back" else 0.0) + float(crng.uniform(-15, 15))
    if plank:
        base_yaw += 90.0 if crng.random() < 0.5 else -90.0
    phase0, dphase = float(crng.random()), step * float(crng.uniform(0.006, 0.012))

    camera = CAMERAS[cams[item.camera_slot]]
    vrng = _rng(seed, sc, item.clip, 1, cams[item.camera_slot])
    offset = {"A": 0.0, "B": 30.0, "C": -30.0, "D": 55.0, "E": -55.0}[camera] * (
        0.5 if plank else 1.0
    )
    view = View(
        base_yaw + offset + float(vrng.uniform(-8, 8)),
        float(vrng.uniform(-12, 12)),
        float(vrng.uniform(-4, 4)),
    )
    person_h = vrng.uniform(0.35, 0.85) * height
    anchor_x, floor_y = vrng.uniform(0.25, 0.75), vrng.uniform(0.78, 0.97)
    background = render_background(vrng, width, height)

    # Frames are shared by the clip's cameras; a camera places all its frames together.
    figs = [
        pose_figure(body, pose_angles(motion, phase0 + f * dphase, _rng(seed, sc, item.clip, 2, f)))
        for f in range(frames_per_camera)
    ]
    fig = figs[item.frame_slot]
    proj = _Projector(view)
    place(figs, proj, width, height, person_h, anchor_x, floor_y)
    irng = _rng(seed, sc, item.clip, 3, item.camera_slot, item.frame_slot)
    quality = int(irng.integers(75, 96))
    if irng.random() < outside_rate:
        shift = push_outside(keypoint_array(fig, proj), width, height, irng)
        if shift is not None:
            proj.offset = proj.offset + shift
    draw_figure(background, fig, body, proj)
    return background, keypoint_array(fig, proj), quality


def _frame(names: Sequence[str], coords: np.ndarray) -> pd.DataFrame:
    data = {"image": list(names)}
    flat = np.asarray(coords, float).reshape(len(names), len(COORD_COLUMNS))
    data.update({c: flat[:, j] for j, c in enumerate(COORD_COLUMNS)})
    return pd.DataFrame(data, columns=list(CSV_COLUMNS))


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _write_jpeg(img: np.ndarray, path: Path, quality: int) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), img, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"{path}: OpenCV could not write the JPEG; check the folder is writable")


def make_synthetic(
    out: PathLike,
    n_train: int,
    n_test: int,
    width: int = 1920,
    height: int = 1080,
    seed: int = 0,
    progress: bool = True,
    *,
    cameras_per_clip: int = 2,
    frames_per_camera: int = 3,
    outside_rate: float = 0.03,
) -> Path:
    """Write a synthetic data root in the competition layout and return its path.

    ``OUT/train_df.csv``, ``OUT/sample_submission.csv`` (zeros), ``OUT/test_labels.csv`` (true
    test keypoints), ``OUT/images/{train,test}_imgs/*.jpg`` and ``OUT/synthetic.json`` (the
    parameters). Same arguments, same bytes. A folder already made with the same arguments is
    left as it is; one made with other arguments is regenerated (stale images removed); a folder
    holding data that this function did not write is refused.
    ``outside_rate`` is the fraction of images with one hand or foot pushed just outside the frame.
    """
    out = Path(out)
    problems = []
    if n_train < 1 or n_test < 0:
        problems.append(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    if width < 32 or height < 32:
        problems.append(f"image size {width}x{height} is too small: use at least 32x32")
    if not 1 <= cameras_per_clip <= len(CAMERAS) or frames_per_camera < 1:
        problems.append(f"cameras_per_clip must be 1..{len(CAMERAS)} and frames_per_camera >= 1")
    if not 0.0 <= outside_rate <= 1.0:
        problems.append(f"outside_rate must be in [0, 1], got {outside_rate}")
    if problems:
        raise ValueError("; ".join(problems))
    params = {
        "generator": "motion_keypoints.synthetic", "version": GENERATOR_VERSION, "n_train": int(n_train),
        "n_test": int(n_test), "width": int(width), "height": int(height), "seed": int(seed),
        "cameras_per_clip": int(cameras_per_clip), "frames_per_camera": int(frames_per_camera),
        "outside_rate": float(outside_rate),
    }  # fmt: skip
    manifest = out / MANIFEST_NAME
    items = plan_items(n_train, n_test, seed, cameras_per_clip, frames_per_camera)
    dirs = {"train": out / "images" / "train_imgs", "test": out / "images" / "test_imgs"}
    csvs = [out / "train_df.csv", out / "sample_submission.csv", out / "test_labels.csv"]
    paths = [dirs[it.split] / it.name for it in items]
    previous = json.loads(manifest.read_text()) if manifest.is_file() else None
    if previous is None and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} is not empty and was not written by make_synthetic (no {MANIFEST_NAME}); "
            "choose a new or empty output folder"
        )
    if previous == {**params, "complete": True} and all(p.is_file() for p in csvs + paths):
        if progress:
            print(f"synthetic data in {out} is up to date ({n_train} train + {n_test} test images)")
        return out
    atomic_write_text(manifest, json.dumps({**params, "complete": False}, indent=2) + "\n")
    wanted = set(paths)
    for d in dirs.values():
        for stale in sorted(d.glob("*.jpg")) if d.is_dir() else []:
            if stale not in wanted:
                stale.unlink()
    start = time.perf_counter()
    coords = {split: np.zeros((0, len(KEYPOINT_NAMES), 2)) for split in SPLITS}
    rows: Dict[str, List[np.ndarray]] = {split: [] for split in SPLITS}
    outside = 0
    for item, path in tqdm(
        list(zip(items, paths)), desc="synthetic images", unit="img", disable=not progress
    ):
        img, kps, quality = render_item(
            item, seed, width, height, cameras_per_clip, frames_per_camera, outside_rate
        )
        outside += int(
            np.sum((kps[:, 0] < 0) | (kps[:, 0] >= width) | (kps[:, 1] < 0) | (kps[:, 1] >= height))
        )
        _write_jpeg(img, path, quality)
        rows[item.split].append(kps)
    for split in SPLITS:
        if rows[split]:
            coords[split] = np.stack(rows[split])
    names = {split: [it.name for it in items if it.split == split] for split in SPLITS}
    _write_csv(_frame(names["train"], coords["train"]), out / "train_df.csv")
    _write_csv(_frame(names["test"], coords["test"]), out / "test_labels.csv")
    submission = pd.DataFrame({"image": names["test"], **{c: [0] * n_test for c in COORD_COLUMNS}})
    _write_csv(submission[list(CSV_COLUMNS)], out / "sample_submission.csv")
    atomic_write_text(manifest, json.dumps({**params, "complete": True}, indent=2) + "\n")
    if progress:
        per_clip = cameras_per_clip * frames_per_camera
        print(
            f"synthetic data: {n_train} train + {n_test} test images ({width}x{height}, seed {seed}, "
            f"{-(-n_train // per_clip)} + {-(-n_test // per_clip)} clips) in {out}; "
            f"{outside} keypoints outside the frame; {time.perf_counter() - start:.1f}s"
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python code/make_synthetic.py --out DIR --train N --test M``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="make_synthetic.py")
    ap.add_argument(
        "--out", required=True, help="output data root (created; must be new or synthetic)"
    )
    ap.add_argument("--train", type=int, default=240, help="training images (default 240)")
    ap.add_argument("--test", type=int, default=60, help="test images (default 60)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cameras-per-clip", type=int, default=2)
    ap.add_argument("--frames-per-camera", type=int, default=3)
    ap.add_argument("--outside-rate", type=float, default=0.03,
                    help="fraction of images with a hand or foot just outside the frame")  # fmt: skip
    ap.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = ap.parse_args(argv)
    try:
        make_synthetic(
            args.out, args.train, args.test, args.width, args.height, args.seed, not args.quiet,
            cameras_per_clip=args.cameras_per_clip, frames_per_camera=args.frames_per_camera,
            outside_rate=args.outside_rate,
        )  # fmt: skip
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
