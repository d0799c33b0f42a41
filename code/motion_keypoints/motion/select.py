"""Which person to keep when several are detected, by a stated rule.

An *instance* is a mapping with ``box`` ``(x1, y1, x2, y2)``, ``score`` and ``keypoints``
``(K, 2)`` or ``(K, 3)`` (pixels). Rules (:data:`RULES`):

* ``score``  — the highest detection score (the kit's behaviour so far);
* ``area``   — the largest box;
* ``center`` — the box whose centre is closest to the image centre (needs width and height);
* ``largest``, ``central``, ``longest``, ``at`` — over a sequence: every person is tracked
  (:func:`motion_keypoints.motion.track.track_ids`: identity kept through crossings and short
  absences) and one identity is followed, the largest on average, the most central on average,
  the one present longest, or the one at a point ``(x, y)`` or box ``(x1, y1, x2, y2)`` given
  for the first frame (:data:`IDENTITY_RULES`, :func:`select_identity`);
* ``track``  — over a sequence of frames of one clip and camera: the path through the frames
  that maximises the sum of a per-frame term (score × relative area) and a continuity term
  between consecutive choices (box IoU and keypoint closeness), found by dynamic programming
  (Viterbi), so one frame where a bystander scores higher does not pull the track away. A frame
  may get "no person here" (None) where the followed person was missed and only someone who
  breaks the track was detected.

:func:`align_members` picks, in each ensemble member's detections, the instance on the reference
person (box IoU), so members are fused on the same person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from ..geometry import image_center, pairwise_box_iou

RULES = ("score", "area", "center", "track", "largest", "central", "longest", "at")
#: Rules that choose one tracked identity (:mod:`motion_keypoints.motion.track`) for the whole
#: sequence: ``largest`` (largest box on average over its frames), ``central`` (box centre
#: closest to the image centre on average), ``longest`` (present in the most frames), ``at``
#: (the person at a point or box the user gives, in the first frame with anyone in it).
IDENTITY_RULES = ("largest", "central", "longest", "at")
#: Weight of the continuity term relative to the per-frame term in ``track``: the cost of one
#: switch to an unrelated person. Measured on synthetic data with a distractor (simulated
#: detector): 2.0 makes dense 60-frame clips safer (0% wrong person with 5% missed frames, 1.0:
#: 0-6%) but takes the bystander on sparse exercise clips where the person's pose jumps between
#: frames (3.8% wrong with no missed frame, 1.0: 0%), so it stays 1.0.
DEFAULT_CONTINUITY = 1.0
#: Keypoint closeness scale, as a fraction of the box diagonal.
DEFAULT_KP_TAU = 0.1
DEFAULT_MIN_IOU = 0.3
#: Cost of the "no person here" state of ``track`` per frame that has instances (see
#: :func:`select_track`). Small: a person who continues the track is kept whatever the penalty
#: (skipping them saves no continuity cost), while a lone bystander breaking the track twice
#: costs about ``2 × continuity_weight`` minus its frame term. A larger penalty makes the
#: track take the bystander over runs of consecutive missed frames (measured on synthetic
#: clips, continuity weight 2, 15% missed frames, 3 seeds: 0.1 -> 0-7% wrong person,
#: 0.25 -> 0-8%).
DEFAULT_MISS_PENALTY = 0.1
#: Consecutive frames without a chosen person after which ``track`` is lost and starts afresh.
DEFAULT_MAX_MISSED = 10


def _box(inst: Mapping[str, Any]) -> np.ndarray:
    box = np.asarray(inst["box"], dtype=float).reshape(-1)
    if box.shape != (4,):
        raise ValueError(f"an instance box must be (x1, y1, x2, y2), got {box.tolist()}")
    return box


def _area(box: np.ndarray) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _score(inst: Mapping[str, Any]) -> float:
    return float(inst.get("score", 1.0))


def _keypoints(inst: Mapping[str, Any]) -> Optional[np.ndarray]:
    kp = inst.get("keypoints")
    if kp is None:
        return None
    kp = np.asarray(kp, dtype=float)
    return kp[..., :2] if kp.ndim == 2 and kp.shape[-1] >= 2 else None


def frame_terms(instances: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Per-frame term of ``track``: score × area relative to the frame's largest box."""
    if not instances:
        return np.zeros(0)
    areas = np.array([_area(_box(i)) for i in instances])
    scores = np.array([_score(i) for i in instances])
    top = areas.max()
    return scores * (areas / top if top > 0 else np.ones_like(areas))


def continuity(
    a: Mapping[str, Any], b: Mapping[str, Any], kp_tau: float = DEFAULT_KP_TAU
) -> float:
    """Similarity in [0, 1] of two instances in consecutive frames: box IoU, averaged with a
    keypoint closeness ``exp(-½ (median distance / (kp_tau × box diagonal))²)`` when both have
    keypoints."""
    return float(_continuities(a, [b], kp_tau)[0])


def _continuities(anchor: Mapping[str, Any], instances: Sequence[Mapping[str, Any]],
                  kp_tau: float = DEFAULT_KP_TAU) -> np.ndarray:  # fmt: skip
    """:func:`continuity` of ``anchor`` with each of ``instances`` (box IoU vectorised)."""
    ba = _box(anchor)
    boxes = np.array([_box(i) for i in instances]).reshape(-1, 4)
    out = pairwise_box_iou(ba, boxes)[0]
    ka = _keypoints(anchor)
    if ka is None:
        return out
    for j, inst in enumerate(instances):
        out[j] = _blend_keypoints(out[j], ba, boxes[j], ka, _keypoints(inst), kp_tau)
    return out


def _blend_keypoints(iou: float, ba: np.ndarray, bb: np.ndarray, ka: np.ndarray,
                     kb: Optional[np.ndarray], kp_tau: float) -> float:  # fmt: skip
    """``iou`` averaged with the keypoint closeness of ``ka`` and ``kb`` (``iou`` alone when
    they cannot be compared)."""
    if kb is None or ka.shape != kb.shape:
        return iou
    dist = np.linalg.norm(ka - kb, axis=-1)
    dist = dist[np.isfinite(dist)]
    if dist.size == 0:
        return iou
    diag = 0.5 * (np.hypot(ba[2] - ba[0], ba[3] - ba[1]) + np.hypot(bb[2] - bb[0], bb[3] - bb[1]))
    scale = max(kp_tau * diag, 1e-6)
    close = float(np.exp(-0.5 * (np.median(dist) / scale) ** 2))
    return 0.5 * (iou + close)


def select_person(
    instances: Sequence[Mapping[str, Any]],
    rule: str = "score",
    width: Optional[float] = None,
    height: Optional[float] = None,
) -> Optional[int]:
    """Index of the chosen instance of one image by ``rule`` (``score``, ``area``, ``center``),
    or None when there is none. Ties go to the first instance."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    if rule == "track" or rule in IDENTITY_RULES:
        raise ValueError(f"rule {rule!r} needs a sequence of frames: use select_track")
    if not instances:
        return None
    if rule == "score":
        return int(np.argmax([_score(i) for i in instances]))
    if rule == "area":
        return int(np.argmax([_area(_box(i)) for i in instances]))
    if width is None or height is None:
        raise ValueError("rule 'center' needs the image width and height")
    cx, cy = image_center(int(width), int(height))
    dist = []
    for inst in instances:
        b = _box(inst)
        dist.append(np.hypot(0.5 * (b[0] + b[2]) - cx, 0.5 * (b[1] + b[3]) - cy))
    return int(np.argmin(dist))


def _offer(nxt: dict, back: dict, key: tuple, value: float, prev: tuple) -> None:
    if key not in nxt or value > nxt[key]:
        nxt[key], back[key] = value, prev


def _anchor(frames_instances, key: tuple, t: int) -> Optional[Mapping[str, Any]]:
    """The last chosen instance of a ``track`` state of frame ``t - 1`` (None: no track)."""
    if key[0] == "p":
        return frames_instances[t - 1][key[1]]
    if len(key) == 3:
        return frames_instances[key[1]][key[2]]
    return None


def _overlapped(anchor: Mapping[str, Any], instances, min_iou: float) -> bool:
    boxes = np.array([_box(i) for i in instances]).reshape(-1, 4)
    return bool((pairwise_box_iou(_box(anchor), boxes) >= min_iou).any())


def select_track(
    frames_instances: Sequence[Sequence[Mapping[str, Any]]],
    rule: str = "track",
    width: Optional[float] = None,
    height: Optional[float] = None,
    continuity_weight: float = DEFAULT_CONTINUITY,
    kp_tau: float = DEFAULT_KP_TAU,
    miss_penalty: Optional[float] = DEFAULT_MISS_PENALTY,
    max_missed: int = DEFAULT_MAX_MISSED,
    min_iou: float = DEFAULT_MIN_IOU,
    at: Optional[Sequence[float]] = None,
) -> List[Optional[int]]:
    """Chosen instance index per frame of one clip and camera (frames in time order; None for a
    frame without instances, or where the track's person is judged missing).

    With ``rule="track"`` the choice maximises ``Σ frame_terms − continuity_weight × Σ links ×
    (1 − continuity) − miss_penalty × (frames given None)`` over the whole sequence (Viterbi;
    the sums run over the chosen frames and the links between consecutive chosen frames).

    * A link is measured from the last chosen instance, so the track continues across frames
      without instances and frames given None; a link across ``g`` None frames counts ``g + 1``
      times, so skipping a person who continues the track never saves continuity cost.
    * "No person here" is a state of its own (``miss_penalty`` per frame that has instances): a
      lone bystander in a frame where the followed person was missed breaks the track twice
      (into it and out of it, about ``2 × continuity_weight``), which costs more than the
      penalty, so that frame gets None instead of pulling the track onto the bystander. Over a
      run of several consecutive frames with only the bystander, taking the bystander can win
      (each frame adds its frame term and saves the penalty). The state is only offered where
      no instance overlaps the last chosen box (box IoU < ``min_iou``): a person where the
      followed person was is never dropped, however much they moved (an exercise's squat
      between two standing frames).
    * After ``max_missed`` consecutive frames without a chosen person the track is lost and
      starts afresh (no link into the next choice); a frame skipped without a track (also at
      the start) costs ``miss_penalty + continuity_weight / 2``.
    * ``miss_penalty=None`` disables the state: every frame with instances gets one (the
      choice before the state existed).

    :data:`IDENTITY_RULES` follow one tracked person (:func:`select_identity`; ``at`` is the
    point or box of ``rule="at"``). Other rules choose frame by frame (:func:`select_person`).
    """
    if rule in IDENTITY_RULES:
        return select_identity(frames_instances, rule, width, height, at)[0]
    if rule != "track":
        return [select_person(inst, rule, width, height) for inst in frames_instances]
    allow_none = miss_penalty is not None
    costs = _TrackCosts(continuity_weight, kp_tau, miss_penalty, min_iou,
                        # without the "nobody" state, empty frames never lose the track
                        max_missed if allow_none else len(frames_instances))  # fmt: skip
    return _viterbi(frames_instances, costs)


@dataclass(frozen=True)
class _TrackCosts:
    """The parameters of ``track`` (:func:`select_track`); ``limit``: frames without a chosen
    person after which the track is lost."""

    continuity_weight: float
    kp_tau: float
    miss_penalty: Optional[float]
    min_iou: float
    limit: int


# States of frame t: ("p", j) = instance j of frame t; ("n", s, i) = nobody chosen at t, the
# last chosen instance being i of frame s; ("n",) = nobody chosen, track lost (or not begun).
def _viterbi(frames_instances, costs: _TrackCosts) -> List[Optional[int]]:
    """The best path of ``track`` through the frames' states, as instance indices per frame."""
    best: dict = {("n",): 0.0}
    backs: List[dict] = []
    for t, instances in enumerate(frames_instances):
        nxt: dict = {}
        back: dict = {}
        if instances:
            _person_offers(frames_instances, t, best, nxt, back, costs)
        if costs.miss_penalty is not None or not instances:
            _nobody_offers(frames_instances, t, best, nxt, back, costs)
        best = nxt
        backs.append(back)
    chosen: List[Optional[int]] = [None] * len(frames_instances)
    key = max(best, key=best.get)
    for t in range(len(frames_instances) - 1, -1, -1):
        if key[0] == "p":
            chosen[t] = int(key[1])
        key = backs[t][key]
    return chosen


def _person_offers(frames_instances, t: int, best: dict, nxt: dict, back: dict,
                   costs: _TrackCosts) -> None:  # fmt: skip
    """Offer every instance of frame ``t`` from every state of frame ``t - 1``: its frame term
    less the continuity cost of the links from the state's last chosen instance."""
    instances = frames_instances[t]
    unary = frame_terms(instances)
    for key, value in best.items():
        anchor = _anchor(frames_instances, key, t)
        links = 1 if key[0] == "p" else (t - key[1] if len(key) == 3 else 0)
        if anchor is None:
            cost = np.zeros(len(instances))
        else:
            cost = links * costs.continuity_weight * (
                1.0 - _continuities(anchor, instances, costs.kp_tau))
        for j in range(len(instances)):
            _offer(nxt, back, ("p", j), value + unary[j] - cost[j], key)


def _nobody_offers(frames_instances, t: int, best: dict, nxt: dict, back: dict,
                   costs: _TrackCosts) -> None:  # fmt: skip
    """Offer "nobody here" at frame ``t`` from every state of frame ``t - 1`` where no instance
    overlaps the state's last chosen box (see :func:`select_track`)."""
    instances = frames_instances[t]
    penalty = float(costs.miss_penalty or 0.0) if instances else 0.0
    for key, value in best.items():
        anchor = _anchor(frames_instances, key, t)
        if anchor is not None and instances and _overlapped(anchor, instances, costs.min_iou):
            continue  # someone where the followed person is: no "nobody here"
        if key[0] == "p":
            target = ("n", t - 1, key[1])
        elif len(key) == 3 and t - key[1] <= costs.limit:
            target = key
        else:
            target = ("n",)
        # without a track to follow, skipping a frame also costs half a broken link, so a noisy
        # but continuing person is not skipped to start the track later
        lost = 0.5 * costs.continuity_weight if instances and target == ("n",) else 0.0
        _offer(nxt, back, target, value - penalty - lost, key)


def _identity_at(frame: Sequence[Mapping[str, Any]], ids: np.ndarray, at: Sequence[float]) -> int:
    """The track id of the instance at ``at``: a point ``(x, y)`` — the box holding it (the
    smallest if several, the nearest box centre if none) — or a box — the largest IoU."""
    boxes = np.array([_box(i) for i in frame])
    at = np.asarray(at, dtype=float).reshape(-1)
    if at.shape == (4,):
        return int(ids[int(np.argmax(pairwise_box_iou(at, boxes)[0]))])
    inside = (boxes[:, 0] <= at[0]) & (at[0] <= boxes[:, 2]) & (boxes[:, 1] <= at[1]) & (
        at[1] <= boxes[:, 3])
    if inside.any():
        area = np.where(inside, (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), np.inf)
        return int(ids[int(np.argmin(area))])
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    return int(ids[int(np.argmin(np.linalg.norm(centre - at[:2], axis=1)))])


def select_identity(
    frames_instances: Sequence[Sequence[Mapping[str, Any]]],
    rule: str,
    width: Optional[float] = None,
    height: Optional[float] = None,
    at: Optional[Sequence[float]] = None,
) -> tuple:
    """``(chosen per frame, track ids per frame)``: every person is tracked
    (:func:`motion_keypoints.motion.track.track_ids`) and the one identity chosen by ``rule``
    (:data:`IDENTITY_RULES`) is followed; frames where it is not detected get None."""
    from .track import track_ids

    if rule not in IDENTITY_RULES:
        raise ValueError(f"unknown identity rule {rule!r}; choose one of {', '.join(IDENTITY_RULES)}")
    ids = track_ids(frames_instances)
    chosen: List[Optional[int]] = [None] * len(frames_instances)
    stats: dict = {}
    for t, frame in enumerate(frames_instances):
        for j, inst in enumerate(frame):
            b = _box(inst)
            st = stats.setdefault(int(ids[t][j]), [0, 0.0, 0.0])
            st[0] += 1
            st[1] += _area(b)
            if rule == "central":
                if width is None or height is None:
                    raise ValueError("rule 'central' needs the image width and height")
                cx, cy = image_center(int(width), int(height))
                st[2] += float(np.hypot(0.5 * (b[0] + b[2]) - cx, 0.5 * (b[1] + b[3]) - cy))
    if not stats:
        return chosen, ids
    if rule == "at":
        if at is None:
            raise ValueError("rule 'at' needs a point (x, y) or a box (x1, y1, x2, y2)")
        first = next(t for t, f in enumerate(frames_instances) if f)
        target = _identity_at(frames_instances[first], ids[first], at)
    else:
        key = {"largest": lambda v: v[1] / v[0], "central": lambda v: -v[2] / v[0],
               "longest": lambda v: (v[0], v[1] / v[0])}[rule]  # fmt: skip
        target = max(stats, key=lambda i: key(stats[i]))
    for t in range(len(frames_instances)):
        hit = np.flatnonzero(ids[t] == target)
        chosen[t] = int(hit[0]) if hit.size else None
    return chosen, ids


def align_members(
    member_instances_list: Sequence[Sequence[Mapping[str, Any]]],
    reference_box: Sequence[float],
    min_iou: float = DEFAULT_MIN_IOU,
) -> List[Optional[int]]:
    """For each ensemble member's instances of one image, the index of the instance with the
    largest box IoU with ``reference_box`` (the chosen person), or None when no instance reaches
    ``min_iou`` — that member then has no prediction of this person and is left out of the
    fusion."""
    ref = np.asarray(reference_box, dtype=float)
    out: List[Optional[int]] = []
    for instances in member_instances_list:
        boxes = np.array([_box(i) for i in instances]).reshape(-1, 4)
        ious = pairwise_box_iou(ref, boxes)[0]
        out.append(int(np.argmax(ious)) if ious.size and ious.max() >= min_iou else None)
    return out
