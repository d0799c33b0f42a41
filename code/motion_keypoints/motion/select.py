"""Which person to keep when several are detected, by a stated rule.

An *instance* is a mapping with ``box`` ``(x1, y1, x2, y2)``, ``score`` and ``keypoints``
``(K, 2)`` or ``(K, 3)`` (pixels). Rules (:data:`RULES`):

* ``score``  — the highest detection score (the kit's behaviour so far);
* ``area``   — the largest box;
* ``center`` — the box whose centre is closest to the image centre (needs width and height);
* ``track``  — over a sequence of frames of one clip and camera: the path through the frames
  that maximises the sum of a per-frame term (score × relative area) and a continuity term
  between consecutive choices (box IoU and keypoint closeness), found by dynamic programming
  (Viterbi), so one frame where a bystander scores higher does not pull the track away.

:func:`align_members` picks, in each ensemble member's detections, the instance on the reference
person (box IoU), so members are fused on the same person.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from ..geometry import box_iou, image_center

RULES = ("score", "area", "center", "track")
#: Weight of the continuity term relative to the per-frame term in ``track``.
DEFAULT_CONTINUITY = 1.0
#: Keypoint closeness scale, as a fraction of the box diagonal.
DEFAULT_KP_TAU = 0.1
DEFAULT_MIN_IOU = 0.3


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
    ba, bb = _box(a), _box(b)
    iou = box_iou(ba, bb)
    ka, kb = _keypoints(a), _keypoints(b)
    if ka is None or kb is None or ka.shape != kb.shape:
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
    if rule == "track":
        raise ValueError("rule 'track' needs a sequence of frames: use select_track")
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


def select_track(
    frames_instances: Sequence[Sequence[Mapping[str, Any]]],
    rule: str = "track",
    width: Optional[float] = None,
    height: Optional[float] = None,
    continuity_weight: float = DEFAULT_CONTINUITY,
    kp_tau: float = DEFAULT_KP_TAU,
) -> List[Optional[int]]:
    """Chosen instance index per frame of one clip and camera (frames in time order; None for a
    frame without instances).

    With ``rule="track"`` the choice maximises ``Σ frame_terms + continuity_weight × Σ
    continuity`` over the whole sequence (Viterbi); frames without instances are skipped and the
    track continues across them. Other rules choose frame by frame (:func:`select_person`).
    """
    if rule != "track":
        return [select_person(inst, rule, width, height) for inst in frames_instances]
    present = [t for t, inst in enumerate(frames_instances) if len(inst) > 0]
    chosen: List[Optional[int]] = [None] * len(frames_instances)
    if not present:
        return chosen
    unary = [frame_terms(frames_instances[t]) for t in present]
    best = unary[0].copy()
    back: List[np.ndarray] = []
    for step in range(1, len(present)):
        prev, cur = frames_instances[present[step - 1]], frames_instances[present[step]]
        pair = np.array([[continuity(a, b, kp_tau) for b in cur] for a in prev])
        total = best[:, None] + continuity_weight * pair  # (prev, cur)
        arg = np.argmax(total, axis=0)
        back.append(arg)
        best = total[arg, np.arange(len(cur))] + unary[step]
    state = int(np.argmax(best))
    for step in range(len(present) - 1, -1, -1):
        chosen[present[step]] = state
        if step > 0:
            state = int(back[step - 1][state])
    return chosen


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
        ious = [box_iou(ref, _box(i)) for i in instances]
        if not ious or max(ious) < min_iou:
            out.append(None)
        else:
            out.append(int(np.argmax(ious)))
    return out
