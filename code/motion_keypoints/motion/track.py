"""Identity through a sequence: every detected person gets a track id that survives crossings and
short absences.

Per frame, the live tracks are matched to the detections by the Hungarian algorithm
(``scipy.optimize.linear_sum_assignment``) on a similarity that combines

* box IoU (:func:`motion_keypoints.geometry.pairwise_box_iou`) between each track's *predicted*
  box — its last box moved on at its constant velocity for the frames since it was seen — and
  each detection's box, and
* pose closeness: the median keypoint distance between the track's last pose, moved by the same
  velocity, and the detection's pose, relative to the box size;

so two people who cross keep their ids (each is where its own motion says, in its own pose). A
track unseen for more than ``max_age`` frames ends; a detection matched to no track (similarity
below ``min_similarity``) starts a new one.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

import numpy as np

from ..geometry import pairwise_box_iou

#: Frames a track may go unseen (a miss, an occlusion) and still take its person back.
DEFAULT_MAX_AGE = 15
#: A detection less similar than this to every track starts a new one.
DEFAULT_MIN_SIMILARITY = 0.2
#: Keypoint closeness scale, as a fraction of the box diagonal.
POSE_TAU = 0.15


def _pose_closeness(track_kps, det_kps, boxes) -> np.ndarray:
    """``(T, D)`` in [0, 1]: exp(-½ (median keypoint distance / (POSE_TAU × box diagonal))²)."""
    if track_kps.size == 0 or det_kps.size == 0:
        return np.zeros((len(track_kps), len(det_kps)))
    dist = np.linalg.norm(track_kps[:, None] - det_kps[None], axis=-1)  # (T, D, K)
    with np.errstate(all="ignore"):
        med = np.nanmedian(np.where(np.isfinite(dist), dist, np.nan), axis=-1)
    diag = np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[None, :]
    close = np.exp(-0.5 * (med / np.maximum(POSE_TAU * diag, 1e-6)) ** 2)
    return np.nan_to_num(close, nan=0.0)


def _arrays(instances: Sequence[Mapping[str, Any]]):
    boxes = np.array([np.asarray(i["box"], float).reshape(4) for i in instances]).reshape(-1, 4)
    kps = [np.asarray(i.get("keypoints"), float)[..., :2] if i.get("keypoints") is not None
           else np.full((1, 2), np.nan) for i in instances]  # fmt: skip
    k = max((len(x) for x in kps), default=1)
    kps = np.array([x if len(x) == k else np.full((k, 2), np.nan) for x in kps]).reshape(-1, k, 2)
    return boxes, kps


def track_ids(
    frames_instances: Sequence[Sequence[Mapping[str, Any]]],
    max_age: int = DEFAULT_MAX_AGE,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> List[np.ndarray]:
    """A track id (0, 1, ... in order of first appearance) for every instance of every frame
    (frames in time order, consecutive). See the module for the matching."""
    from scipy.optimize import linear_sum_assignment

    box = np.zeros((0, 4))
    vel = np.zeros((0, 4))
    pose = np.zeros((0, 1, 2))
    last = np.zeros(0, int)
    ids = np.zeros(0, int)
    out: List[np.ndarray] = []
    next_id = 0
    for t, instances in enumerate(frames_instances):
        alive = t - last <= max_age
        box, vel, pose, last, ids = box[alive], vel[alive], pose[alive], last[alive], ids[alive]
        frame_ids = np.full(len(instances), -1, int)
        if instances:
            dboxes, dkps = _arrays(instances)
            if pose.shape[1] != dkps.shape[1]:
                pose = np.full((len(box), dkps.shape[1], 2), np.nan)
            dt = (t - last)[:, None]
            pbox = box + vel * dt
            shift = 0.5 * (pbox[:, :2] + pbox[:, 2:]) - 0.5 * (box[:, :2] + box[:, 2:])
            sim = 0.5 * pairwise_box_iou(pbox, dboxes) + 0.5 * _pose_closeness(
                pose + shift[:, None, :], dkps, dboxes)
            rows, cols = linear_sum_assignment(-sim) if sim.size else ([], [])
            for r, c in zip(rows, cols):
                if sim[r, c] < min_similarity:
                    continue
                frame_ids[c] = ids[r]
                new_vel = (dboxes[c] - box[r]) / max(t - last[r], 1)
                vel[r] = 0.5 * vel[r] + 0.5 * new_vel
                box[r], pose[r], last[r] = dboxes[c], dkps[c], t
            fresh = np.flatnonzero(frame_ids < 0)
            frame_ids[fresh] = next_id + np.arange(len(fresh))
            next_id += len(fresh)
            box = np.concatenate([box, dboxes[fresh]])
            vel = np.concatenate([vel, np.zeros((len(fresh), 4))])
            pose = np.concatenate([pose, dkps[fresh]])
            last = np.concatenate([last, np.full(len(fresh), t)])
            ids = np.concatenate([ids, frame_ids[fresh]])
        out.append(frame_ids)
    return out


def identity_switches(ids: Sequence[np.ndarray], chosen: Sequence) -> List[tuple]:
    """``[(frame, from_track, to_track)]``: where the chosen person's track id changes between
    consecutive frames that have a chosen person."""
    switches, prev = [], None
    for t, c in enumerate(chosen):
        if c is None:
            continue
        cur = int(ids[t][c])
        if prev is not None and cur != prev:
            switches.append((t, prev, cur))
        prev = cur
    return switches
