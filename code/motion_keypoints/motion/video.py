"""Video in, keypoints out: predict every frame with one or more trained runs, follow the main
person, smooth over time, and write ``keypoints.csv`` and an overlay video.

Steps of :func:`predict_video`:

1. frames from :func:`motion_keypoints.io.video.open_frames` (a video file or a frames folder);
2. every R-CNN member predicts **all** its detected persons of each frame, in batches, with flip
   TTA (:class:`RcnnMember`, :func:`motion_keypoints.models.rcnn.predictor.predict_frames`: each
   instance of the image is averaged with its mirrored match);
3. the main person is followed through the frames of the *reference* member (the first R-CNN
   member) with :func:`motion_keypoints.motion.select.select_track` (rule ``track`` by default;
   ``largest``/``central``/``longest``/``at`` follow one tracked identity,
   :mod:`motion_keypoints.motion.track`; ``score``/``area``/``center`` choose frame by frame);
   everyone is tracked, and the chosen person's identity switches are counted and listed;
4. the other members are aligned on that person (:func:`motion_keypoints.motion.select.align_members`,
   box IoU) and fused with the images' fusion (:func:`motion_keypoints.ensemble.fuse.fuse`, the
   mean), so the ensemble never fuses two different people; a heatmap member
   (``run_info.json`` family ``heatmap``, :class:`HeatmapMember`) predicts, in a second pass over
   the frames (decoded again, in batches, flip test through the model's heatmap flip), inside the
   box of the person followed on the reference run, so it is fused on that same person; a video
   needs at least one R-CNN run for the boxes;
5. the fused keypoints are smoothed over time with :func:`motion_keypoints.motion.smooth.smooth_sequence`
   (frame number = frame index, so a video is dense and the time-aware filters apply; frames
   without a person are gaps; person switches are never bridged);
6. ``DIR/keypoints.csv`` (one row per frame, ``frame`` 0-based, the chosen person's ``track``)
   and ``DIR/overlay.mp4`` (H.264, same frame count).

This module imports torch and detectron2 only when a member is loaded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..ensemble.fuse import fuse, fuse_scores
from ..io.runs import RunError
from ..io.video import FrameSource, open_frames, write_video
from ..meta import COORD_COLUMNS, KEYPOINT_NAMES
from ..models.registry import family_of_run, video_member
from ..utils import PathLike, atomic_path
from . import smooth as S
from .select import align_members, select_track
from .track import identity_switches, track_ids

logger = logging.getLogger("motion_keypoints")

KEYPOINTS_FILE = "keypoints.csv"
OVERLAY_FILE = "overlay.mp4"
SCORE_COLUMNS = tuple(f"score_{n}" for n in KEYPOINT_NAMES)
BOX_COLUMNS = ("box_x1", "box_y1", "box_x2", "box_y2", "box_score")
#: Columns of ``keypoints.csv``, in order.
#: ``frame`` is 0-based (the first frame is 0); ``track`` is the chosen person's track id
#: (:func:`motion_keypoints.motion.track.track_ids`), -1 where there is none.
VIDEO_COLUMNS = ("frame", "time") + COORD_COLUMNS + SCORE_COLUMNS + BOX_COLUMNS + (
    "detected", "track")
SMOOTH_CHOICES = S.METHODS + (S.OFF,)

Instance = Dict[str, Any]  # {"box": (4,) continuous, "score", "keypoints" (K, 2), "keypoint_scores" (K,)}
FramesInstances = List[List[Instance]]


# ------------------------------------------------------------------------------------ members
@dataclass
class Member:
    """One trained run used on the video. ``predict(frames)`` gives every frame's instances;
    ``needs_boxes`` members (heatmap) instead get ``predict(frames, boxes)`` with the reference
    person's box per frame (None where there is none) and return one instance (or none) per frame."""

    run: Path
    family: str
    predict: Callable[..., FramesInstances]
    needs_boxes: bool = False
    label: str = field(default="")


class RcnnMember:
    """A Keypoint R-CNN run as a callable on in-memory BGR frames: every person per frame, optional
    flip TTA merged per person (:func:`motion_keypoints.models.rcnn.predictor.predict_frames`,
    the predictor's own preprocessing)."""

    needs_boxes = False

    def __init__(self, run: PathLike, checkpoint: str = "best", flip_tta: bool = True,
                 opts: Sequence[str] = ()):  # fmt: skip
        from ..models.rcnn import import_detectron2

        import_detectron2()
        from ..engine.checkpoint import build_eval_model
        from ..engine.inference import load_run_config
        from ..models.rcnn.predictor import predict_frames

        self.cfg = load_run_config(Path(run), checkpoint, opts)
        self.model = build_eval_model(self.cfg)  # the predictors' one loader
        self.flip_tta = flip_tta
        self._predict_frames = predict_frames

    def __call__(self, frames: Sequence[np.ndarray]) -> FramesInstances:
        return self._predict_frames(self.cfg, self.model, list(frames), self.flip_tta)


class HeatmapMember:
    """A heatmap run (top-down) as ``predict(frames, boxes)``: per frame ``[instance]`` inside the
    given person box (continuous coordinates), or ``[]`` where the box is None
    (:func:`motion_keypoints.models.heatmap.predictor.predict_boxes`: one batch of crops, flip
    test through the model's heatmap flip). The instance's box is the given box, so aligning it
    with the reference person (box IoU) always matches."""

    needs_boxes = True

    def __init__(self, run: PathLike, checkpoint: str = "best", flip_tta: bool = True,
                 opts: Sequence[str] = ()):  # fmt: skip
        from ..models.rcnn import import_detectron2

        import_detectron2()
        from ..models.heatmap.predictor import load_heatmap_model, predict_boxes

        self.cfg, self.model = load_heatmap_model(Path(run), checkpoint, opts)
        self.flip_tta = flip_tta
        self._predict_boxes = predict_boxes

    def __call__(self, frames: Sequence[np.ndarray], boxes: Sequence[Optional[np.ndarray]],
                 box_scores: Optional[Sequence[float]] = None) -> FramesInstances:  # fmt: skip
        persons = self._predict_boxes(self.cfg, self.model, list(frames), list(boxes),
                                      self.flip_tta, box_scores)  # fmt: skip
        return [[] if p is None else [p] for p in persons]


NEEDS_RCNN = "a heatmap run needs an R-CNN run for its boxes: add one to --runs"


def run_family(run: PathLike) -> str:
    """The family of a run folder (:func:`motion_keypoints.models.registry.family_of_run`);
    one-line errors for a missing folder or an unknown family."""
    run = Path(run)
    if not run.is_dir():
        raise RunError(f"--runs {run}: no such run folder; give a training run (outputs/<run>)")
    return family_of_run(run)


def _member_class(family: str):
    """The family's video member class (the registry's ``video_member``)."""
    return video_member(family)


def load_member(run: PathLike, checkpoint: str = "best", flip_tta: bool = True) -> Member:
    """The member of a trained run folder, by its family's video member (``needs_boxes``: given
    the reference member's person boxes)."""
    run = Path(run)
    family = run_family(run)
    cls = _member_class(family)
    return Member(run, family, cls(run, checkpoint, flip_tta), bool(cls.needs_boxes), run.name)


# ---------------------------------------------------------------------------------- pipeline
def _batches(frames, size: int):
    batch: List[np.ndarray] = []
    for f in frames:
        batch.append(f)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _predict_in_boxes(member: Member, src, boxes, scores, batch_size: int, what: str,
                      progress: bool) -> FramesInstances:  # fmt: skip
    """A boxes member over the frames again (decoded a second time, not kept in memory)."""
    n = len(boxes)
    preds: FramesInstances = []
    bar = tqdm(total=n, desc=f"predict video ({what})", unit="frame", disable=not progress)
    for batch in _batches(src, batch_size):
        t = len(preds)
        if t >= n:
            break
        batch = batch[: n - t]
        preds.extend(member.predict(batch, boxes[t : t + len(batch)], scores[t : t + len(batch)]))
        bar.update(len(batch))
    bar.close()
    return preds + [[] for _ in range(n - len(preds))]  # frames a second decode did not give


def fuse_members(
    reference: FramesInstances, chosen: Sequence[Optional[int]], others: Sequence[FramesInstances],
    method: str = "mean",
) -> Dict[str, np.ndarray]:
    """Per frame: the reference member's chosen person fused with the other members' instance
    on the same person (box IoU, :func:`align_members`); members without it are left out. The
    fusion is the images' (:func:`motion_keypoints.ensemble.fuse.fuse`, ``method``; scores by
    :func:`~motion_keypoints.ensemble.fuse.fuse_scores`).
    Returns ``keypoints (N, K, 2)`` (NaN where no person), ``scores (N, K)``, ``boxes (N, 4)``,
    ``box_scores (N,)``, ``detected (N,)`` and ``members (N,)`` (how many were fused)."""
    n, k, m = len(reference), len(KEYPOINT_NAMES), 1 + len(others)
    coords, scores = np.full((m, n, k, 2), np.nan), np.full((m, n, k), np.nan)
    out = {"boxes": np.full((n, 4), np.nan), "box_scores": np.full(n, np.nan),
           "detected": np.zeros(n, dtype=int), "members": np.zeros(n, dtype=int)}  # fmt: skip
    for t in range(n):
        if chosen[t] is None:
            continue
        ref = reference[t][chosen[t]]
        idx = align_members([o[t] for o in others], ref["box"])
        picks = [(0, ref)] + [(1 + j, others[j][t][i]) for j, i in enumerate(idx) if i is not None]
        for row, person in picks:
            coords[row, t] = np.asarray(person["keypoints"], dtype=float)[:, :2]
            scores[row, t] = person["keypoint_scores"]
        out["boxes"][t] = ref["box"]
        out["box_scores"][t] = ref["score"]
        out["detected"][t] = 1
        out["members"][t] = len(picks)
    return {"keypoints": fuse(coords, method), "scores": fuse_scores(scores), **out}


def smooth_video_keypoints(
    keypoints: np.ndarray, detected: np.ndarray, method: str = S.DEFAULT_METHOD,
    params: Optional[Dict[str, float]] = None, max_gap: int = S.DEFAULT_MAX_GAP, fps: float = 30.0,
    stats: Optional[Dict[str, int]] = None,
) -> np.ndarray:
    """Smooth ``(N, K, 2)`` per-frame keypoints over time (frame = index); frames without a person
    are gaps (runs are cut where more than ``max_gap`` frames apart) and stay NaN. ``method``
    ``"off"`` returns a copy. ``stats`` (a dict) receives the counts of
    :func:`motion_keypoints.motion.smooth.smooth_sequence_report` (runs, switches, outliers)."""
    out = np.array(keypoints, dtype=float, copy=True)
    if method == S.OFF:
        return out
    det = np.flatnonzero(np.asarray(detected) != 0)
    if len(det) < 2:
        return out
    p = dict(params or {})
    if method == "one_euro":
        p.setdefault("fps", fps)
    out[det], counts = S.smooth_sequence_report(det, out[det], method, p, max_gap)
    if stats is not None:
        stats.update(counts)
    return out


def describe_switches(switches: Sequence[tuple], shown: int = 10) -> str:
    """``"2 identity switches (frame: track -> track: 55: 0 -> 1, 197: 1 -> 0)"``."""
    text = f"{len(switches)} identity switches"
    if switches:
        more = f", and {len(switches) - shown} more" if len(switches) > shown else ""
        listed = ", ".join(f"{t}: {a} -> {b}" for t, a, b in switches[:shown])
        text += f" (frame: track -> track: {listed}{more})"
    return text


def keypoints_table(fused: Dict[str, np.ndarray], fps: float) -> pd.DataFrame:
    """The ``keypoints.csv`` table (:data:`VIDEO_COLUMNS`) of fused, smoothed predictions."""
    n = len(fused["detected"])
    data = np.concatenate(
        [np.arange(n)[:, None], (np.arange(n) / fps)[:, None], fused["keypoints"].reshape(n, -1),
         fused["scores"], fused["boxes"], fused["box_scores"][:, None],
         fused["detected"][:, None], fused.get("track", np.full(n, -1))[:, None]], axis=1,
    )  # fmt: skip
    df = pd.DataFrame(data, columns=list(VIDEO_COLUMNS))
    for c in ("frame", "detected", "track"):
        df[c] = df[c].astype(int)
    return df


def predict_video(
    source: PathLike,
    runs: Sequence[PathLike],
    out_dir: PathLike,
    *,
    checkpoint: str = "best",
    flip_tta: bool = True,
    batch_size: int = 4,
    rule: str = "track",
    person_at: Optional[Sequence[float]] = None,
    smooth: str = S.DEFAULT_METHOD,
    smooth_params: Optional[Dict[str, float]] = None,
    max_gap: int = S.DEFAULT_MAX_GAP,
    fps: Optional[float] = None,
    progress: bool = True,
    members: Optional[Sequence[Member]] = None,
) -> Dict[str, Any]:
    """Turn a video (or frames folder) into ``out_dir/keypoints.csv`` and ``out_dir/overlay.mp4``
    (see the module). ``members`` replaces loading ``runs`` (tests, measurements). Returns the
    summary (frames, frames/s, frames without a person, ...; :func:`describe_video_summary`
    says it in one line, which is logged); ``progress`` shows the progress bars."""
    if smooth not in SMOOTH_CHOICES:
        raise ValueError(f"unknown smoothing {smooth!r}; choose one of {', '.join(SMOOTH_CHOICES)}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    src: FrameSource = open_frames(source, fps)
    members = _video_members(runs, members, checkpoint, flip_tta)
    t0 = time.perf_counter()
    fused, switches, n = _predict_fused(src, members, rule, person_at, batch_size, progress)
    predict_s = time.perf_counter() - t0
    raw = fused["keypoints"].copy()
    smooth_stats: Dict[str, int] = {}
    fused["keypoints"] = smooth_video_keypoints(raw, fused["detected"], smooth, smooth_params,
                                                max_gap, src.fps, smooth_stats)  # fmt: skip
    moved = np.linalg.norm(fused["keypoints"] - raw, axis=-1)
    moved = moved[np.isfinite(moved)]
    csv_path, video_path, written = _write_outputs(Path(out_dir), src, fused, n, progress)
    seconds = time.perf_counter() - t0
    summary = {
        "frames": n, "overlay_frames": written, "without_person": int(n - fused["detected"].sum()),
        "seconds": seconds, "predict_seconds": predict_s, "frames_per_s": n / max(predict_s, 1e-9),
        "fps": src.fps, "width": src.width, "height": src.height, "flip_tta": flip_tta,
        "members": [m.label for m in members], "rule": rule, "smooth": smooth,
        "outliers": int(smooth_stats.get("outliers", 0)),
        "identity_switches": len(switches),
        "switches": [{"frame": t, "from_track": a, "to_track": b} for t, a, b in switches],
        "smooth_moved_rms": float(np.sqrt(np.mean(moved**2))) if moved.size else 0.0,
        "keypoints": str(csv_path), "overlay": str(video_path),
    }  # fmt: skip
    logger.info(describe_video_summary(summary))
    return summary


def _video_members(runs: Sequence[PathLike], members: Optional[Sequence[Member]],
                   checkpoint: str, flip_tta: bool) -> List[Member]:  # fmt: skip
    """The given ``members``, else the members of ``runs`` (at least one R-CNN run, checked
    before any model is loaded)."""
    if members is None:
        if not runs:
            raise RunError("give at least one trained run with --runs")
        classes = [_member_class(run_family(r)) for r in runs]
        if all(c.needs_boxes for c in classes):  # before any model is loaded
            raise RunError(NEEDS_RCNN)
        members = [load_member(r, checkpoint, flip_tta) for r in runs]
    if not any(not m.needs_boxes for m in members):
        raise RunError(NEEDS_RCNN)
    return list(members)


def _predict_fused(src: FrameSource, members: Sequence[Member], rule: str,
                   person_at: Optional[Sequence[float]], batch_size: int,
                   progress: bool):  # fmt: skip
    """Predict every frame with every member, follow the person on the reference member and fuse
    the members on that person: ``(fused, identity switches, frames)`` (see the module)."""
    box_free = [m for m in members if not m.needs_boxes]
    reference = box_free[0]
    per_member: Dict[int, FramesInstances] = {id(m): [] for m in box_free}
    n = 0
    bar = tqdm(total=src.count, desc="predict video", unit="frame", disable=not progress)
    for batch in _batches(src, batch_size):
        for m in box_free:
            per_member[id(m)].extend(m.predict(batch))
        n += len(batch)
        bar.update(len(batch))
    bar.close()
    if n == 0:
        from ..io.video import VideoError

        raise VideoError(f"{src.path}: no frame could be decoded; check the file")
    ref_inst = per_member[id(reference)]
    chosen = select_track(ref_inst, rule, src.width, src.height, at=person_at)
    ids = track_ids(ref_inst)  # identities of everyone, to count the chosen person's switches
    others = [per_member[id(m)] for m in box_free[1:]]
    # a second pass over the frames: the followed person's box of every frame is known
    boxes = [None if c is None else ref_inst[t][c]["box"] for t, c in enumerate(chosen)]
    scores = [0.0 if c is None else ref_inst[t][c]["score"] for t, c in enumerate(chosen)]
    for m in (m for m in members if m.needs_boxes):
        others.append(_predict_in_boxes(m, src, boxes, scores, batch_size,
                                        f"{m.label}, boxes of {reference.label}", progress))
    fused = fuse_members(ref_inst, chosen, others)
    fused["track"] = np.array([-1 if c is None else int(ids[t][c]) for t, c in enumerate(chosen)])
    return fused, identity_switches(ids, chosen), n


def _write_outputs(out_dir: Path, src: FrameSource, fused: Dict[str, np.ndarray], n: int,
                   progress: bool):  # fmt: skip
    """Write ``keypoints.csv`` and the overlay video (frames decoded again):
    ``(csv path, video path, overlay frames written)``."""
    from ..visualize import draw_keypoints

    table = keypoints_table(fused, src.fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, video_path = out_dir / KEYPOINTS_FILE, out_dir / OVERLAY_FILE
    with atomic_path(csv_path, kind="video keypoints") as tmp:
        table.to_csv(tmp, index=False, float_format="%.3f")

    def overlay():
        for t, img in enumerate(
            tqdm(src, total=n, desc="overlay video", unit="frame", disable=not progress)
        ):
            if t >= n:
                break
            if fused["detected"][t]:
                img = draw_keypoints(img, fused["keypoints"][t], box=fused["boxes"][t])
            yield img

    written = write_video(video_path, overlay(), src.fps, (src.width, src.height))
    return csv_path, video_path, written


def describe_video_summary(summary: Dict[str, Any]) -> str:
    """The one-line summary of :func:`predict_video` (frames, speed, frames without a person,
    person rule and identity switches, smoothing, outputs)."""
    s = summary
    switches = [(w["frame"], w["from_track"], w["to_track"]) for w in s["switches"]]
    return (
        f"{s['frames']} frames ({s['width']}x{s['height']}, {s['fps']:g} fps) with "
        f"{len(s['members'])} run(s){', flip TTA' if s['flip_tta'] else ''}: "
        f"{s['frames_per_s']:.1f} frames/s predicted, {s['seconds']:.1f}s in all; "
        f"{s['without_person']} frames without a person; person rule {s['rule']}, "
        f"{describe_switches(switches)}; smoothing {s['smooth']} (points moved "
        f"{s['smooth_moved_rms']:.2f} px RMS; {s['outliers']} points far from their neighbours' "
        f"fit replaced by it) -> {s['keypoints']}, {s['overlay']}"
    )
