"""The synthetic person: body proportions and colours, exercise motions, joint angles, forward
kinematics (a 3-D skeleton in body coordinates) and camera views."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

_SIDES = (("left", 1.0), ("right", -1.0))  # body +x is the person's left
_DOWN = np.array([0.0, -1.0, 0.0])

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


# --------------------------------------------------------------------------- real-time motion
#: Motions of :func:`real_pose`, timed in seconds like real exercise filmed at 30 fps.
REAL_MOVES = ("jumping_jack", "jump", "run", "kick", "squat")
#: Standing height in metres: turns metres and g into body units.
HEIGHT_M = 1.75
GRAVITY = 9.81 / HEIGHT_M  # body heights / s²


def sample_real_motion(rng: np.random.Generator, move: str | None = None) -> Motion:
    """A :data:`REAL_MOVES` motion with real tempo: ``params`` hold the rate (Hz), the flight
    time of jumps (s), limb ranges (degrees) and a drift speed (body heights / s)."""
    move = move or REAL_MOVES[int(rng.integers(len(REAL_MOVES)))]
    if move not in REAL_MOVES:
        raise ValueError(f"unknown move {move!r}; known: {', '.join(REAL_MOVES)}")
    base = sample_motion(rng, "jumping_jack" if move == "jumping_jack" else "squat").params
    params = dict(base)
    params.update({
        "rate": {"jumping_jack": rng.uniform(0.9, 1.4), "jump": rng.uniform(0.45, 0.6),
                 "run": rng.uniform(1.3, 1.7), "kick": rng.uniform(0.8, 1.1),
                 "squat": rng.uniform(0.4, 0.6)}[move],
        "flight": rng.uniform(0.45, 0.6) if move == "jump" else rng.uniform(0.12, 0.2),
        "swing": rng.uniform(40, 65), "phase0": rng.random(),
        "drift": rng.uniform(-0.5, 0.5) if move == "run" else 0.0,
    })  # fmt: skip
    return Motion(move, {k: float(v) for k, v in params.items()}, 1.0 if rng.random() < 0.5 else -1.0)


def _hop(u: float, flight_frac: float, flight_s: float) -> float:
    """Height (body heights) of a ballistic hop in a cycle at fraction ``u`` (0..1): on the ground
    until ``1 - flight_frac``, then a parabola under gravity lasting ``flight_s`` seconds."""
    start = 1.0 - flight_frac
    if u < start:
        return 0.0
    tau = (u - start) / flight_frac * flight_s
    v0 = 0.5 * GRAVITY * flight_s
    return max(0.0, v0 * tau - 0.5 * GRAVITY * tau * tau)


def _ease(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * x)


def real_pose(motion: Motion, t: float) -> Tuple[Dict[str, float], np.ndarray]:
    """Joint angles (degrees) and root offset ``(3,)`` (body heights; y up) of ``motion`` at time
    ``t`` seconds: real tempo, ballistic flight phases, fast limbs (a kick reaches ~600°/s)."""
    p = motion.params
    cyc = p["rate"] * t + p["phase0"]
    u = cyc % 1.0
    root = np.array([p["drift"] * t, 0.0, 0.0])
    both = ("left", "right")
    lead, other = ("left", "right") if motion.side > 0 else ("right", "left")
    if motion.exercise == "jumping_jack":  # two hops a cycle: out and in
        ang = pose_angles(motion, cyc)
        root[1] = _hop((2 * u) % 1.0, min(0.9, 2 * p["rate"] * p["flight"]), p["flight"])
        return ang, root
    ang = pose_angles(Motion("squat", p, motion.side), 0.0)
    if motion.exercise == "squat":
        return pose_angles(Motion("squat", p, motion.side), cyc), root
    if motion.exercise == "jump":  # crouch, take off, fly (arms up), land and absorb, stand
        period = 1.0 / p["rate"]
        s = u * period
        fly0 = 0.45
        fly1 = fly0 + p["flight"]
        if s < fly0:
            depth = np.sin(np.pi * s / fly0) ** 2 * (1.0 if s < 0.8 * fly0 else 0.6)
        elif s < fly1:
            depth = 0.0
            tau = s - fly0  # ballistic: up at g·T/2, back on the ground after T
            root[1] = 0.5 * GRAVITY * p["flight"] * tau - 0.5 * GRAVITY * tau * tau
        else:
            depth = 0.7 * np.exp(-((s - fly1) / 0.12)) * (1 - np.exp(-(s - fly1) / 0.03))
        arms = 160 * (_ease((s - 0.15) / 0.35) if s < fly1 else 1 - _ease((s - fly1) / 0.4))
        for sd in both:
            ang[f"{sd}_hip_flex"] = depth * 95
            ang[f"{sd}_knee"] = 3 + depth * 110
            ang[f"{sd}_sh_flex"] = max(arms, depth * 40)
            ang[f"{sd}_elbow"] = 10.0
        ang["bend"] = 2 + depth * 35
        return ang, root
    if motion.exercise == "run":  # stride: legs and arms in antiphase, a short flight per step
        w = np.sin(2 * np.pi * cyc)
        for sd, sg in ((lead, 1.0), (other, -1.0)):
            ang[f"{sd}_hip_flex"] = sg * w * p["swing"] * 0.8 + 10
            ang[f"{sd}_knee"] = 15 + 90 * max(0.0, -sg * np.sin(2 * np.pi * cyc + 0.6))
            ang[f"{sd}_sh_flex"] = -sg * w * p["swing"]
            ang[f"{sd}_sh_abd"], ang[f"{sd}_elbow"] = 8.0, 85.0
        root[1] = _hop((2 * u) % 1.0, 2 * p["rate"] * p["flight"], p["flight"])
        return ang, root
    # kick: the lead leg snaps up (~0.15 s) and back, arms guard
    s = u / p["rate"]
    up = _ease(s / 0.15) if s < 0.15 else 1 - _ease((s - 0.15) / 0.2)
    ang[f"{lead}_hip_flex"] = up * 95
    ang[f"{lead}_knee"] = 5 + 80 * (1 - up) * _ease(s / 0.08) if s < 0.35 else 5.0
    for sd in both:
        ang[f"{sd}_sh_flex"], ang[f"{sd}_elbow"] = 30.0, 110.0
    return ang, root


def translate_figure(fig: Figure3D, offset: np.ndarray) -> Figure3D:
    """``fig`` moved by ``offset`` (body coordinates), in place; returned for chaining."""
    offset = np.asarray(offset, dtype=float)
    for d in (fig.joints, fig.heels, fig.toes, fig.hand_tips):
        for k in d:
            d[k] = d[k] + offset
    fig.head, fig.torso = fig.head + offset, fig.torso + offset
    return fig
