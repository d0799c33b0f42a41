"""Synthetic motion-keypoint data: the kit's embedded default for the demo, tests and benchmarks.

Each image shows one articulated figure: a 3-D kinematic skeleton (plausible limb lengths and
joint angles of exercise-like motions: raises, presses, squats, lunges, bends, planks) seen by an
orthographic camera and drawn with thick outlined limbs over a textured background. The labels
are exactly the joint centres, each drawn as a small ring marker (left yellow, right cyan, centre
magenta), and the limbs of the person's left side are tinted warm, the right side cool, so left
and right are learnable in front and back views alike.

Data (this module) are written in the competition layout with competition-style names
``{clip:03d}-1-1-01-Z17_{camera}-{frame:07d}.jpg``: a clip is one person doing one exercise, seen
by a few of the cameras A-E (same pose at the same frame, different views) over a few neighbouring
frames. Train and test use disjoint clips; ``test_labels.csv`` holds the true test keypoints.
Everything is a function of ``(seed, split, clip, camera, frame)``, so an image does not depend
on the order of generation or on how many images are made.

Options (all off by default; the default output is byte-identical to earlier versions):

* ``frame_step`` > 0 — *temporally dense* clips: frame numbers ``step`` apart (1: consecutive)
  and smooth motion (the pose jitter is fixed per clip instead of drawn per frame, and no single
  frame is pushed towards a border by ``outside_rate``), like a video.
  0 keeps the competition-like sparse clips (a random step of 2–11 frames, jitter per frame).
* ``distractor`` — the fraction of clip cameras that also show a *distractor*: a second, smaller
  person off to the side (behind the main person), moving on its own and **not labelled**; its
  keypoints go to ``distractor_labels.csv`` (for measuring the wrong-person rate) only.
* ``video`` — an MP4 (H.264, :func:`motion_keypoints.io.video.write_video`) of the first test
  clip's first camera (the first training clip when there is no test image), frames rendered
  losslessly at ``fps``, with its
  true keypoints per frame in a CSV next to it (:func:`video_labels_path`).

The person is :mod:`.body`, its drawing :mod:`.render`. The command line is
:mod:`motion_keypoints.cli.make_synthetic`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ...io.images import write_jpeg
from ...io.tables import keypoints_frame, write_keypoint_csv
from ...meta import KEYPOINT_NAMES
from ...utils import PathLike, atomic_path, atomic_write_text
from ..layout import DATA_SPLITS as SPLITS
from ..naming import CAMERAS, frame_name, group_key
from .body import View, _rng, pose_angles, pose_figure, sample_body, sample_motion
from .render import _Projector, draw_figure, keypoint_array, place, push_outside, render_background

logger = logging.getLogger(__name__)

#: Bump when the rendering changes, so an existing synthetic folder is regenerated.
GENERATOR_VERSION = 1
MANIFEST_NAME = "synthetic.json"
#: Keypoints of the unlabelled distractor persons (only written with ``distractor`` > 0).
DISTRACTOR_LABELS = "distractor_labels.csv"

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


def _clip_plan(seed: int, split_code: int, clip: int, cameras_per_clip: int, frame_step: int = 0):
    """A clip's generator (for its person and motion), cameras, first frame number and frame step
    (``frame_step`` when > 0, else random; the random step is drawn either way, so the clip's
    person and motion do not depend on ``frame_step``)."""
    crng = _rng(seed, split_code, clip, 0)
    cams = sorted(crng.choice(len(CAMERAS), cameras_per_clip, replace=False).tolist())
    frame0, step = int(crng.integers(1, 300)), int(crng.integers(2, 12))
    return crng, cams, frame0, (int(frame_step) if frame_step > 0 else step)


def plan_items(
    n_train: int, n_test: int, seed: int, cameras_per_clip: int, frames_per_camera: int,
    frame_step: int = 0,
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
            _, cams, frame0, step = _clip_plan(seed, split_code, clip, cameras_per_clip, frame_step)
            name = frame_name(first[split] + clip, CAMERAS[cams[cam_slot]], frame0 + frame_slot * step)
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
    *,
    frame_step: int = 0,
    distractor: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray, int]:
    """Render one planned image: (image BGR before JPEG, keypoints (K, 2), JPEG quality)."""
    r = render_item_full(
        item, seed, width, height, cameras_per_clip, frames_per_camera, outside_rate,
        frame_step=frame_step, distractor=distractor,
    )  # fmt: skip
    return r.image, r.keypoints, r.quality


@dataclass
class RenderedItem:
    """One rendered image: ``distractor`` holds the unlabelled second person's keypoints (K, 2)
    when the image shows one, else None."""

    image: np.ndarray
    keypoints: np.ndarray
    quality: int
    distractor: Optional[np.ndarray] = None


_FIGURES: Dict[tuple, list] = {}


def _camera_figures(body, motion, phase0, dphase, seed, sc, clip, frames_per_camera, smooth):
    """The posed figures of a clip's frames: jitter per frame, or one jitter for the whole clip
    (``smooth``, dense clips) so the motion is smooth. Cached for the images of one clip (the
    figures are a function of the arguments and are not modified by placing or drawing)."""
    key = (seed, sc, clip, frames_per_camera, smooth, phase0, dphase, motion.exercise, body.width)
    if key not in _FIGURES:
        if len(_FIGURES) > 8:
            _FIGURES.clear()
        _FIGURES[key] = _pose_figures(body, motion, phase0, dphase, seed, sc, clip,
                                      frames_per_camera, smooth)  # fmt: skip
    return _FIGURES[key]


def _pose_figures(body, motion, phase0, dphase, seed, sc, clip, frames_per_camera, smooth):
    return [
        pose_figure(
            body,
            pose_angles(
                motion, phase0 + f * dphase, _rng(seed, sc, clip, 2, 0 if smooth else f)
            ),
        )
        for f in range(frames_per_camera)
    ]


def _render_distractor(img, seed, sc, item, cam, view, person_h, anchor_x, floor_y, width, height,
                       frames_per_camera, step, smooth):  # fmt: skip
    """Draw the distractor of this clip camera onto ``img`` (behind the main person; not drawn when
    ``img`` is None); returns its keypoints."""
    drng = _rng(seed, sc, item.clip, 4, cam, 1)
    body, motion = sample_body(drng), sample_motion(drng)
    while motion.exercise == "plank":  # a lying bystander would not fit beside the person
        motion = sample_motion(drng)
    phase0, dphase = float(drng.random()), step * float(drng.uniform(0.006, 0.012))
    figs = _camera_figures(body, motion, phase0, dphase, seed, sc + 10, item.clip,
                           frames_per_camera, smooth)  # fmt: skip
    dview = View(view.yaw + float(drng.uniform(-40, 40)), view.tilt, view.roll)
    proj = _Projector(dview)
    side = 1.0 if anchor_x < 0.5 else -1.0  # the other side of the frame
    place(
        figs, proj, width, height,
        person_h * float(drng.uniform(0.45, 0.65)),
        0.5 + side * float(drng.uniform(0.36, 0.44)),
        floor_y - float(drng.uniform(0.02, 0.08)),  # a little further back
    )  # fmt: skip
    fig = figs[item.frame_slot]
    if img is not None:
        draw_figure(img, fig, body, proj)
    return keypoint_array(fig, proj)


def render_item_full(
    item: ImageItem,
    seed: int,
    width: int,
    height: int,
    cameras_per_clip: int,
    frames_per_camera: int,
    outside_rate: float = 0.0,
    *,
    frame_step: int = 0,
    distractor: float = 0.0,
    draw: bool = True,
) -> RenderedItem:
    """Render one planned image with the options of the module (``frame_step``, ``distractor``).
    ``draw=False`` computes the keypoints only (same values; ``image`` is None)."""
    sc = SPLITS.index(item.split)
    crng, cams, _, step = _clip_plan(seed, sc, item.clip, cameras_per_clip, frame_step)
    body, motion = sample_body(crng), sample_motion(crng)
    plank = motion.exercise == "plank"
    facing = "back" if crng.random() < 0.35 else "front"
    base_yaw = (180.0 if facing == "back" else 0.0) + float(crng.uniform(-15, 15))
    if plank:
        base_yaw += 90.0 if crng.random() < 0.5 else -90.0
    phase0, dphase = float(crng.random()), step * float(crng.uniform(0.006, 0.012))

    cam = cams[item.camera_slot]
    camera = CAMERAS[cam]
    vrng = _rng(seed, sc, item.clip, 1, cam)
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
    background = render_background(vrng, width, height) if draw else None

    # Frames are shared by the clip's cameras; a camera places all its frames together.
    smooth = frame_step > 0
    figs = _camera_figures(body, motion, phase0, dphase, seed, sc, item.clip, frames_per_camera,
                           smooth)  # fmt: skip
    fig = figs[item.frame_slot]
    proj = _Projector(view)
    place(figs, proj, width, height, person_h, anchor_x, floor_y)
    irng = _rng(seed, sc, item.clip, 3, item.camera_slot, item.frame_slot)
    quality = int(irng.integers(75, 96))
    # Dense clips move smoothly: no image is pushed on its own towards a border.
    if irng.random() < outside_rate and not smooth:
        shift = push_outside(keypoint_array(fig, proj), width, height, irng)
        if shift is not None:
            proj.offset = proj.offset + shift
    other = None
    if distractor > 0 and _rng(seed, sc, item.clip, 4, cam).random() < distractor:
        other = _render_distractor(
            background, seed, sc, item, cam, view, person_h, anchor_x, floor_y, width, height,
            frames_per_camera, step, smooth,
        )  # fmt: skip
    if draw:
        draw_figure(background, fig, body, proj)
    return RenderedItem(background, keypoint_array(fig, proj), quality, other)


def video_labels_path(video: PathLike) -> Path:
    """The CSV of a synthetic video's true keypoints: ``clip.mp4`` -> ``clip.csv``."""
    return Path(video).with_suffix(".csv")


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
    frame_step: int = 0,
    distractor: float = 0.0,
    video: Optional[PathLike] = None,
    fps: float = 30.0,
) -> Path:
    """Write a synthetic data root in the competition layout and return its path.

    ``OUT/train_df.csv``, ``OUT/sample_submission.csv`` (zeros), ``OUT/test_labels.csv`` (true
    test keypoints), ``OUT/images/{train,test}_imgs/*.jpg`` and ``OUT/synthetic.json`` (the
    parameters). Same arguments, same bytes. A folder already made with the same arguments is
    left as it is; one made with other arguments is regenerated (stale images removed); a folder
    holding data that this function did not write is refused.
    ``outside_rate`` is the fraction of images with one hand or foot pushed just outside the frame.
    ``frame_step``, ``distractor``, ``video`` and ``fps``: see the module docstring; with a
    distractor, ``OUT/distractor_labels.csv`` holds the distractor's keypoints of the images
    that show one. The video is (re)written on every call. With ``progress``, a progress bar and
    a one-line summary (logged).
    """
    out = Path(out)
    spec = _Spec(n_train, n_test, width, height, seed, cameras_per_clip, frames_per_camera,
                 outside_rate, frame_step, distractor)  # fmt: skip
    problems = spec.problems()
    if video is not None and not fps > 0:
        problems.append(f"fps must be positive, got {fps}")
    if problems:
        raise ValueError("; ".join(problems))
    items = spec.items()
    files = _Files.of(out, items, distractor)
    if _up_to_date(out, spec, files):
        if progress:
            logger.info(f"synthetic data in {out} is up to date ({n_train} train + {n_test} test "
                        "images)")
    else:
        _write_data(out, spec, items, files, progress)
    if video is not None:
        write_synthetic_video(video, items, seed, width, height, cameras_per_clip,
                              frames_per_camera, outside_rate, fps, progress, **spec.options())  # fmt: skip
    return out


@dataclass(frozen=True)
class _Spec:
    """The arguments of :func:`make_synthetic` that decide the data."""

    n_train: int
    n_test: int
    width: int
    height: int
    seed: int
    cameras_per_clip: int
    frames_per_camera: int
    outside_rate: float
    frame_step: int
    distractor: float

    def problems(self) -> List[str]:
        """What is wrong with the arguments (empty: nothing)."""
        problems = []
        if self.n_train < 1 or self.n_test < 0:
            problems.append(f"need n_train >= 1 and n_test >= 0, got {self.n_train} and "
                            f"{self.n_test}")
        if self.width < 32 or self.height < 32:
            problems.append(f"image size {self.width}x{self.height} is too small: use at least "
                            "32x32")
        if not 1 <= self.cameras_per_clip <= len(CAMERAS) or self.frames_per_camera < 1:
            problems.append(f"cameras_per_clip must be 1..{len(CAMERAS)} and frames_per_camera "
                            ">= 1")
        if not 0.0 <= self.outside_rate <= 1.0:
            problems.append(f"outside_rate must be in [0, 1], got {self.outside_rate}")
        if self.frame_step < 0:
            problems.append("frame_step must be >= 0 (0: random sparse steps), got "
                            f"{self.frame_step}")
        if not 0.0 <= self.distractor <= 1.0:
            problems.append(f"distractor must be in [0, 1], got {self.distractor}")
        return problems

    def manifest(self) -> dict:
        """The parameters recorded in ``synthetic.json`` (without ``complete``)."""
        params = {
            "generator": "motion_keypoints.synthetic", "version": GENERATOR_VERSION,
            "n_train": int(self.n_train), "n_test": int(self.n_test), "width": int(self.width),
            "height": int(self.height), "seed": int(self.seed),
            "cameras_per_clip": int(self.cameras_per_clip),
            "frames_per_camera": int(self.frames_per_camera),
            "outside_rate": float(self.outside_rate),
        }  # fmt: skip
        # New options are recorded only when used, so a default folder stays byte-identical.
        if self.frame_step:
            params["frame_step"] = int(self.frame_step)
        if self.distractor:
            params["distractor"] = float(self.distractor)
        return params

    def options(self) -> dict:
        return {"frame_step": int(self.frame_step), "distractor": float(self.distractor)}

    def items(self) -> List[ImageItem]:
        return plan_items(self.n_train, self.n_test, self.seed, self.cameras_per_clip,
                          self.frames_per_camera, self.frame_step)  # fmt: skip

    def render(self, item: ImageItem) -> RenderedItem:
        return render_item_full(item, self.seed, self.width, self.height, self.cameras_per_clip,
                                self.frames_per_camera, self.outside_rate, **self.options())


@dataclass(frozen=True)
class _Files:
    """The files of a synthetic data root: manifest, image folders, CSVs and every image."""

    manifest: Path
    dirs: Dict[str, Path]
    csvs: List[Path]
    images: List[Path]

    @classmethod
    def of(cls, out: Path, items: List[ImageItem], distractor: float) -> _Files:
        dirs = {"train": out / "images" / "train_imgs", "test": out / "images" / "test_imgs"}
        csvs = [out / "train_df.csv", out / "sample_submission.csv", out / "test_labels.csv"]
        if distractor:
            csvs.append(out / DISTRACTOR_LABELS)
        return cls(out / MANIFEST_NAME, dirs, csvs, [dirs[it.split] / it.name for it in items])


def _up_to_date(out: Path, spec: _Spec, files: _Files) -> bool:
    """Whether ``out`` holds complete data of ``spec``; a non-empty folder that
    :func:`make_synthetic` did not write is refused (FileExistsError)."""
    previous = json.loads(files.manifest.read_text()) if files.manifest.is_file() else None
    if previous is None and out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out} is not empty and was not written by make_synthetic (no {MANIFEST_NAME}); "
            "choose a new or empty output folder"
        )
    return previous == {**spec.manifest(), "complete": True} and all(
        p.is_file() for p in files.csvs + files.images)


def _write_data(out: Path, spec: _Spec, items: List[ImageItem], files: _Files,
                progress: bool) -> None:  # fmt: skip
    """(Re)generate the data root: manifest first (incomplete), stale images removed, images,
    CSVs, then the manifest marked complete."""
    from ...io.outputs import output_dir, remove_output

    with output_dir(out, "synthetic data"):  # the one folder this command may write into
        atomic_write_text(files.manifest, json.dumps({**spec.manifest(), "complete": False},
                                                     indent=2) + "\n", kind="synthetic manifest")
        wanted = set(files.images)
        for d in files.dirs.values():
            for stale in sorted(d.glob("*.jpg")) if d.is_dir() else []:
                if stale not in wanted:
                    remove_output(stale)
        start = time.perf_counter()
        coords, others, outside = _render_images(spec, items, files.images, progress)
        _write_tables(out, items, coords, others, spec.distractor)
        atomic_write_text(files.manifest, json.dumps({**spec.manifest(), "complete": True},
                                                     indent=2) + "\n", kind="synthetic manifest")
        if progress:
            per_clip = spec.cameras_per_clip * spec.frames_per_camera
            logger.info(
                f"synthetic data: {spec.n_train} train + {spec.n_test} test images ({spec.width}x"
                f"{spec.height}, seed {spec.seed}, {-(-spec.n_train // per_clip)} + "
                f"{-(-spec.n_test // per_clip)} clips) in {out}; "
                f"{outside} keypoints outside the frame; "
                + (f"{len(others)} images with a distractor; " if spec.distractor else "")
                + f"{time.perf_counter() - start:.1f}s"
            )


def _render_images(spec: _Spec, items: List[ImageItem], paths: List[Path], progress: bool):
    """Render and write every image: ``(keypoints per split (N, K, 2), [(image, distractor
    keypoints)], keypoints outside the frame)``."""
    coords = {split: np.zeros((0, len(KEYPOINT_NAMES), 2)) for split in SPLITS}
    rows: Dict[str, List[np.ndarray]] = {split: [] for split in SPLITS}
    outside = 0
    others: List[Tuple[str, np.ndarray]] = []
    for item, path in tqdm(
        list(zip(items, paths)), desc="synthetic images", unit="img", disable=not progress
    ):
        r = spec.render(item)
        kps = r.keypoints
        if r.distractor is not None:
            others.append((item.name, r.distractor))
        outside += int(np.sum((kps[:, 0] < 0) | (kps[:, 0] >= spec.width) | (kps[:, 1] < 0)
                              | (kps[:, 1] >= spec.height)))  # fmt: skip
        write_jpeg(path, r.image, r.quality)
        rows[item.split].append(kps)
    for split in SPLITS:
        if rows[split]:
            coords[split] = np.stack(rows[split])
    return coords, others, outside


def _write_tables(out: Path, items: List[ImageItem], coords: Dict[str, np.ndarray],
                  others: List[Tuple[str, np.ndarray]], distractor: float) -> None:  # fmt: skip
    """``train_df.csv``, ``test_labels.csv``, ``sample_submission.csv`` (zeros) and, with a
    distractor, ``distractor_labels.csv``."""
    names = {split: [it.name for it in items if it.split == split] for split in SPLITS}
    write_keypoint_csv(keypoints_frame(names["train"], coords["train"]), out / "train_df.csv")
    write_keypoint_csv(keypoints_frame(names["test"], coords["test"]), out / "test_labels.csv")
    zeros = np.zeros_like(coords["test"])
    write_keypoint_csv(keypoints_frame(names["test"], zeros), out / "sample_submission.csv")
    if distractor:
        other_coords = np.stack([k for _, k in others]) if others else coords["test"][:0]
        write_keypoint_csv(
            keypoints_frame([n for n, _ in others], other_coords), out / DISTRACTOR_LABELS
        )


def write_synthetic_video(
    video: PathLike, items: List[ImageItem], seed: int, width: int, height: int,
    cameras_per_clip: int, frames_per_camera: int, outside_rate: float, fps: float,
    progress: bool = True, *, frame_step: int = 0, distractor: float = 0.0,
) -> Path:
    """Write the MP4 of the first test clip's first camera (see the module) and its labels CSV
    (``frame``, ``time``, ``image`` and the keypoint columns); returns the video path."""
    from ...io.video import write_video

    split = "test" if any(it.split == "test" for it in items) else "train"
    first = next(it for it in items if it.split == split)
    chosen = [it for it in items
              if it.split == split and it.clip == first.clip and it.camera_slot == 0]  # fmt: skip
    chosen.sort(key=lambda it: it.frame_slot)
    kps: List[np.ndarray] = []

    def images():
        for it in chosen:
            r = render_item_full(
                it, seed, width, height, cameras_per_clip, frames_per_camera, outside_rate,
                frame_step=frame_step, distractor=distractor,
            )  # fmt: skip
            kps.append(r.keypoints)
            yield r.image

    n = write_video(video, images(), fps, (width, height))
    table = keypoints_frame([it.name for it in chosen], np.stack(kps))
    table.insert(0, "time", np.arange(n) / fps)
    table.insert(0, "frame", np.arange(n))
    labels = video_labels_path(video)
    with atomic_path(labels, kind="video labels", option="--video") as tmp:
        table.to_csv(tmp, index=False)
    if progress:
        logger.info(f"synthetic video: {n} frames of {group_key(first.name)} ({split}) at "
                    f"{fps:g} fps -> {video} (true keypoints: {labels})")
    return Path(video)
