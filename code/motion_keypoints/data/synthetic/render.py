"""Drawing a posed synthetic person: orthographic projection and placement in the frame, limbs,
torso, head and keypoint markers over a textured background."""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import cv2
import numpy as np

from ...meta import KEYPOINT_NAMES
from .body import (
    Body,
    Figure3D,
    View,
    _hsv,
    _mix,
    _rx,
    _ry,
    pose_angles,
    pose_figure,
    sample_body,
    sample_motion,
    sample_view,
)

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

_SHIFT = 4  # OpenCV sub-pixel drawing: coordinates in 1/16 px
_ONE = 1 << _SHIFT

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
    w = body.width * proj.scale
    line = max(1.0, 0.004 * proj.scale)
    items: List[Tuple[float, Callable[[], None]]] = [_torso_item(img, fig, body, proj, line)]
    items += _limb_items(img, fig, body, proj, w, line)
    items.append(_head_item(img, fig, body, proj, w, line))
    for _, paint in sorted(items, key=lambda t: t[0]):
        paint()
    _draw_markers(img, fig, proj)


def _grown(points: np.ndarray, centre: np.ndarray, line: float) -> np.ndarray:
    """``points`` pushed ``line`` pixels away from ``centre`` (the outline of a hull)."""
    return (
        points
        + (points - centre)
        / np.maximum(np.linalg.norm(points - centre, axis=1, keepdims=True), 1e-6)
        * line
    )


def _torso_item(img, fig: Figure3D, body: Body, proj: _Projector, line: float):
    """``(depth, paint)`` of the torso: its outlined convex hull."""
    torso_colour = body.shirt
    torso2d = proj(fig.torso)

    def torso():
        hull = cv2.convexHull(torso2d.astype(np.float32))[:, 0]
        _hull(img, _grown(hull, hull.mean(0), line), _dark(torso_colour))
        _hull(img, hull, torso_colour)

    return float(proj.depth(fig.torso).mean()), torso


def _limb_items(img, fig: Figure3D, body: Body, proj: _Projector, w: float, line: float):
    """``[(depth, paint)]`` of the neck and the limbs (outlined capsules; left and right tinted)."""
    J = fig.joints
    items = []

    def limb(a3, b3, ra, rb, colour):
        a, b = proj(a3), proj(b3)
        depth = float(proj.depth((a3 + b3) / 2))

        def paint():
            _capsule(img, a, b, ra * w + line, rb * w + line, _dark(colour))
            _capsule(img, a, b, ra * w, rb * w, colour)

        items.append((depth, paint))

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
    return items


def _head_item(img, fig: Figure3D, body: Body, proj: _Projector, w: float, line: float):
    """``(depth, paint)`` of the head: far ear, outlined head, hair, near ear."""
    J = fig.joints
    head_pts = _head_points(fig)
    vis = proj.depth(head_pts - fig.head) > -0.004

    def ear(e):
        _disc(img, e, 0.016 * w + line, _dark(body.skin))
        _disc(img, e, 0.016 * w, body.skin)

    def head():
        h2 = proj(head_pts)
        ears = [
            (proj.depth(J[e]) - proj.depth(fig.head), proj(J[e])) for e in ("left_ear", "right_ear")
        ]
        for dz, e in ears:
            if dz < 0:
                ear(e)
        _hull(img, _grown(h2, proj(fig.head), line), _dark(body.skin))
        _hull(img, h2, body.skin)
        hair = h2[vis & _HAIR]
        if len(hair) >= 3:
            _hull(img, hair, body.hair)
        for dz, e in ears:
            if dz >= 0:
                ear(e)

    return float(proj.depth(fig.head)), head


def _draw_markers(img: np.ndarray, fig: Figure3D, proj: _Projector) -> None:
    """The keypoint markers (rings), far ones first."""
    J = fig.joints
    r = max(2.0, 0.009 * proj.scale)
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
