"""The synthetic data generator: layout, determinism, labels on the drawn figure, left/right."""

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import log_records

from motion_keypoints.cli.make_synthetic import main as make_synthetic_main
from motion_keypoints.data.naming import NAME_PATTERN
from motion_keypoints.data.split import group_key
from motion_keypoints.data.synthetic.render import (
    EXTREMITIES,
    marker_colour,
    render_background,
    render_person,
)
from motion_keypoints.data.synthetic.writer import make_synthetic, plan_items, render_item
from motion_keypoints.meta import COORD_COLUMNS, CSV_COLUMNS, KEYPOINT_NAMES, keypoint_index

REPO = Path(__file__).resolve().parents[1]
W, H = 320, 180


def _files(root: Path):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _inside(kps, width, height):
    return (kps[..., 0] >= 0) & (kps[..., 0] < width) & (kps[..., 1] >= 0) & (kps[..., 1] < height)


def _coords(df):
    return df[list(COORD_COLUMNS)].to_numpy(float).reshape(len(df), len(KEYPOINT_NAMES), 2)


def test_layout_columns_and_names(synthetic_data):
    root = synthetic_data
    train = pd.read_csv(root / "train_df.csv")
    labels = pd.read_csv(root / "test_labels.csv")
    sub = pd.read_csv(root / "sample_submission.csv")
    for df in (train, labels, sub):
        assert tuple(df.columns) == CSV_COLUMNS
    assert len(train) == 24 and len(labels) == 8
    assert sub["image"].tolist() == labels["image"].tolist()
    assert (sub[list(COORD_COLUMNS)].to_numpy() == 0).all()
    assert sorted(train["image"]) == sorted(p.name for p in (root / "images/train_imgs").iterdir())
    assert sorted(labels["image"]) == sorted(p.name for p in (root / "images/test_imgs").iterdir())
    for name in train["image"].tolist() + labels["image"].tolist():
        assert NAME_PATTERN.fullmatch(name), name
    clips = {
        split: {n.split("_")[0] for n in df["image"]}
        for split, df in (("train", train), ("test", labels))
    }
    assert clips["train"].isdisjoint(clips["test"])
    groups = train["image"].map(group_key).value_counts()
    assert len(groups) >= 4 and (groups >= 2).all()  # several neighbouring frames per clip/camera
    img = cv2.imread(str(root / "images/train_imgs" / train["image"][0]))
    assert img.shape == (H, W, 3)


def test_keypoints_are_finite_mostly_inside_and_exact_in_the_csv(synthetic_data):
    train = pd.read_csv(synthetic_data / "train_df.csv")
    labels = pd.read_csv(synthetic_data / "test_labels.csv")
    kps = np.concatenate([_coords(train), _coords(labels)])
    assert np.isfinite(kps).all()
    assert _inside(kps, W, H).mean() > 0.97
    assert _inside(kps, W, H).all(axis=1).mean() > 0.8
    # The CSV holds the rendered coordinates to the last bit; any image renders on its own.
    items = plan_items(24, 8, 0, 2, 3)
    for i in (0, 13, 27):
        _, k, _ = render_item(items[i], 0, W, H, 2, 3, 0.03)
        row = (train if items[i].split == "train" else labels).set_index("image").loc[items[i].name]
        assert np.array_equal(row.to_numpy(float).reshape(-1, 2), k)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = make_synthetic(tmp_path / "a", 7, 3, width=96, height=64, seed=5, progress=False)
    b = make_synthetic(tmp_path / "b", 7, 3, width=96, height=64, seed=5, progress=False)
    c = make_synthetic(tmp_path / "c", 7, 3, width=96, height=64, seed=6, progress=False)
    assert _files(a) == _files(b)
    for rel in _files(a):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "train_df.csv").read_bytes() != (c / "train_df.csv").read_bytes()
    img_a = sorted((a / "images/train_imgs").iterdir())[0]
    img_c = sorted((c / "images/train_imgs").iterdir())[0]
    assert img_a.read_bytes() != img_c.read_bytes()


def test_an_image_does_not_depend_on_how_many_are_made(tmp_path, synthetic_data):
    small = make_synthetic(tmp_path / "small", 4, 1, width=W, height=H, seed=0, progress=False)
    big_train = pd.read_csv(synthetic_data / "train_df.csv")
    small_train = pd.read_csv(small / "train_df.csv")
    pd.testing.assert_frame_equal(small_train, big_train.iloc[:4])
    for name in small_train["image"]:
        rel = Path("images/train_imgs") / name
        assert (small / rel).read_bytes() == (synthetic_data / rel).read_bytes()
    # Test clips are numbered after the training clips, but their content is the same.
    big_test = sorted((synthetic_data / "images/test_imgs").iterdir())[0]
    small_test = sorted((small / "images/test_imgs").iterdir())[0]
    assert big_test.name != small_test.name
    assert big_test.read_bytes() == small_test.read_bytes()


@pytest.mark.parametrize("size", [(W, H), (640, 360)])
def test_labels_lie_on_the_drawn_markers(size):
    width, height = size
    own = opposite = total = 0
    for seed in range(12):
        background = render_background(np.random.default_rng(100 + seed), width, height)
        img, kps = render_person(
            np.random.default_rng(seed), width, height, background=background
        )
        assert kps.shape == (len(KEYPOINT_NAMES), 2)
        assert _inside(kps, width, height).all()
        x, y = np.round(kps).astype(int).T
        diff = np.abs(img[y, x].astype(int) - background[y, x].astype(int)).max(axis=1)
        assert (diff >= 25).all(), [n for n, d in zip(KEYPOINT_NAMES, diff) if d < 25]
        for name, pixel in zip(KEYPOINT_NAMES, img[y, x]):
            total += 1
            own += tuple(pixel) == marker_colour(name)
            mirror = name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")
            opposite += mirror != name and tuple(pixel) == marker_colour(mirror)
    # Markers of neighbouring joints (eyes, nose) overlap at small scale; the side colours do not swap.
    assert own / total > (0.75 if width < 400 else 0.9)
    assert opposite / total < 0.02


@pytest.mark.parametrize("facing, sign", [("front", 1), ("back", -1)])
def test_left_and_right_are_on_consistent_sides(facing, sign):
    """Facing the camera, the person's left is on the image's right (and the reverse from behind),
    for the shoulders, hips, eyes and ears alike, and the left markers are drawn in the left colour."""
    idx = {n: keypoint_index(n) for n in KEYPOINT_NAMES}
    sides = {"left": [], "right": []}
    for seed in range(30):
        img, k = render_person(np.random.default_rng(seed), 640, 360, facing=facing)
        x = k[:, 0]
        assert sign * (x[idx["left_shoulder"]] - x[idx["neck"]]) > 0, seed
        assert sign * (x[idx["neck"]] - x[idx["right_shoulder"]]) > 0, seed
        assert sign * (x[idx["left_hip"]] - x[idx["spine1(waist)"]]) > 0, seed
        assert sign * (x[idx["spine1(waist)"]] - x[idx["right_hip"]]) > 0, seed
        assert sign * (x[idx["left_ear"]] - x[idx["right_ear"]]) > 0, seed
        for name, (px, py) in zip(KEYPOINT_NAMES, np.round(k).astype(int)):
            side = name.split("_")[0]
            if side in sides:
                blue, _, red = img[py, px].astype(int)
                sides[side].append(red - blue if side == "left" else blue - red)
    # Left markers are warm (yellow), right ones cool (cyan), from the front and from behind.
    assert np.mean(np.array(sides["left"]) > 50) > 0.9
    assert np.mean(np.array(sides["right"]) > 50) > 0.9


def test_outside_rate_pushes_only_hands_and_feet_out():
    items = plan_items(30, 0, 3, 2, 3)
    out_images = 0
    for item in items:
        _, clean, _ = render_item(item, 3, W, H, 2, 3, outside_rate=0.0)
        assert _inside(clean, W, H).all()
        _, kps, _ = render_item(item, 3, W, H, 2, 3, outside_rate=1.0)
        outside = ~_inside(kps, W, H)
        out_images += outside.any()
        assert {KEYPOINT_NAMES[i] for i in np.flatnonzero(outside)} <= set(EXTREMITIES)
        beyond = np.maximum.reduce([-kps[:, 0], kps[:, 0] - W, -kps[:, 1], kps[:, 1] - H])
        assert beyond.max() <= 0.015 * W + 1e-9  # just outside, not far away
    assert out_images >= len(items) // 2


def test_rerun_is_idempotent_and_removes_stale_images(tmp_path):
    out = tmp_path / "data"
    make_synthetic(out, 6, 2, width=64, height=48, progress=False)
    first = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    make_synthetic(out, 6, 2, width=64, height=48, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == first
    make_synthetic(out, 3, 1, width=64, height=48, progress=False)
    assert len(list((out / "images/train_imgs").iterdir())) == 3
    assert len(pd.read_csv(out / "train_df.csv")) == 3
    assert len(list((out / "images/test_imgs").iterdir())) == 1


def test_refuses_foreign_folders_and_bad_arguments(tmp_path):
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty and was not written by make_synthetic"):
        make_synthetic(foreign, 2, 1, width=64, height=48, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    with pytest.raises(ValueError, match="n_train >= 1"):
        make_synthetic(tmp_path / "x", 0, 1, progress=False)
    with pytest.raises(ValueError, match="too small"):
        make_synthetic(tmp_path / "x", 1, 1, width=16, height=16, progress=False)
    assert make_synthetic_main(["--out", str(foreign), "--train", "1", "--test", "1", "--quiet"]) == 1


@pytest.mark.slow
def test_cli_writes_the_layout(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "code/make_synthetic.py", "--out", str(out), "--train", "5", "--test", "2",
           "--width", "96", "--height", "64", "--seed", "3"]  # fmt: skip
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "5 train + 2 test images" in run.stdout
    assert len(list((out / "images/train_imgs").glob("*.jpg"))) == 5
    assert len(list((out / "images/test_imgs").glob("*.jpg"))) == 2
    for name in ("train_df.csv", "sample_submission.csv", "test_labels.csv", "synthetic.json"):
        assert (out / name).is_file()
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "up to date" in again.stdout


# ---------------------------------------------------------------- issue 13: dense clips, distractor, video


def test_dense_clips_are_consecutive_and_move_smoothly():
    from motion_keypoints.data.naming import GROUP_PATTERN

    frames = 12
    items = plan_items(2 * frames, 0, 0, 1, frames, frame_step=1)
    by_clip = {}
    for it in items:
        kps = render_item(it, 0, W, H, 1, frames, 0.03, frame_step=1)[1]
        by_clip.setdefault(it.clip, []).append((int(GROUP_PATTERN.match(it.name)["frame"]), kps))
    sparse = plan_items(frames, 0, 0, 1, frames)
    sparse_kps = np.stack([render_item(it, 0, W, H, 1, frames, 0.0)[1] for it in sparse])
    for seq in by_clip.values():
        numbers = [f for f, _ in seq]
        assert np.array_equal(np.diff(numbers), np.ones(frames - 1))  # consecutive frames
        kps = np.stack([k for _, k in seq])
        speed = np.linalg.norm(np.diff(kps, axis=0), axis=-1)
        accel = np.linalg.norm(np.diff(kps, 2, axis=0), axis=-1)
        assert speed.max() < 0.05 * W  # no jumps (no per-frame push towards a border)
        assert accel.mean() < 0.5  # smooth: second differences well under a pixel
    # the sparse default jitters the pose per frame: far rougher
    assert np.linalg.norm(np.diff(sparse_kps, 2, axis=0), axis=-1).mean() > 1.0


def test_distractor_is_drawn_but_not_labelled(tmp_path):
    from motion_keypoints.data.synthetic.writer import DISTRACTOR_LABELS, render_item_full

    items = plan_items(6, 0, 0, 1, 6, frame_step=1)
    for it in items[:3]:
        plain = render_item_full(it, 0, W, H, 1, 6, 0.0, frame_step=1)
        both = render_item_full(it, 0, W, H, 1, 6, 0.0, frame_step=1, distractor=1.0)
        assert plain.distractor is None and both.distractor is not None
        assert np.array_equal(plain.keypoints, both.keypoints)  # the label is the main person's
        d = both.distractor
        assert _inside(d, W, H).all()
        size = lambda k: np.ptp(k[:, 1])  # noqa: E731
        assert size(d) < 0.8 * size(both.keypoints)  # smaller
        x, y = np.round(d).astype(int).T
        changed = np.abs(both.image[y, x].astype(int) - plain.image[y, x].astype(int)).max(1)
        assert (changed > 25).mean() > 0.8  # drawn where its keypoints are
    out = make_synthetic(tmp_path / "d", 6, 0, width=W, height=H, progress=False,
                         cameras_per_clip=1, frames_per_camera=6, frame_step=1, distractor=1.0)
    train = pd.read_csv(out / "train_df.csv")
    others = pd.read_csv(out / DISTRACTOR_LABELS)
    assert tuple(train.columns) == CSV_COLUMNS and len(train) == 6  # one labelled person per image
    assert others["image"].tolist() == train["image"].tolist()
    assert not np.allclose(_coords(others), _coords(train))


def test_default_output_has_no_new_files_or_keys(synthetic_data):
    import json

    meta = json.loads((synthetic_data / "synthetic.json").read_text())
    assert "frame_step" not in meta and "distractor" not in meta
    assert not (synthetic_data / "distractor_labels.csv").exists()


def test_video_of_one_clip_is_written_and_decodable(tmp_path):
    from motion_keypoints.data.synthetic.writer import video_labels_path
    from motion_keypoints.io.video import count_frames, open_frames

    video = tmp_path / "v" / "clip.mp4"
    out = tmp_path / "data"
    code = make_synthetic_main(["--out", str(out), "--train", "2", "--test", "10", "--width", "96",
                                "--height", "64", "--cameras-per-clip", "1", "--frames-per-camera",
                                "10", "--frame-step", "1", "--video", str(video), "--quiet"])
    assert code == 0
    src = open_frames(video)
    assert (src.width, src.height) == (96, 64) and src.fps == 30.0
    assert count_frames(video) == 10
    labels = pd.read_csv(video_labels_path(video))
    assert labels["frame"].tolist() == list(range(10))
    truth = pd.read_csv(out / "test_labels.csv").set_index("image")
    assert np.allclose(labels[list(COORD_COLUMNS)].to_numpy(float),
                       truth.loc[labels["image"], list(COORD_COLUMNS)].to_numpy(float))
    frame0 = next(iter(src))
    assert frame0.shape == (64, 96, 3)


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    assert make_synthetic_main(["--out", str(tmp_path / "x"), "--train", "2", "--test", "0",
                                "--frame-step", "-1", "--quiet"]) == 1
    assert make_synthetic_main(["--out", str(tmp_path / "y"), "--train", "2", "--test", "0",
                                "--distractor", "2", "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


# --------------------------------------------- issue 18: libraries log, only the commands print
def test_make_synthetic_logs_its_lines_instead_of_printing(tmp_path):
    with log_records("motion_keypoints.data.synthetic.writer") as records:
        make_synthetic(tmp_path / "d", 4, 2, width=64, height=48, seed=1, progress=True)
        make_synthetic(tmp_path / "d", 4, 2, width=64, height=48, seed=1, progress=True)
        make_synthetic(tmp_path / "d", 4, 2, width=64, height=48, seed=1, progress=False)
    lines = [r.getMessage() for r in records]
    assert len(lines) == 2, lines  # progress=False: nothing
    assert lines[0].startswith("synthetic data: 4 train + 2 test images (64x48, seed 1")
    assert lines[1] == f"synthetic data in {tmp_path / 'd'} is up to date (4 train + 2 test images)"


def test_library_modules_of_issue_18_never_print():
    """augment, data/synthetic, motion, export, geometry and the fusion return results and log;
    only cli/ prints."""
    import ast

    pkg = REPO / "code" / "motion_keypoints"
    files = [*(pkg / "augment").glob("*.py"), *(pkg / "data" / "synthetic").glob("*.py"),
             *(pkg / "motion").glob("*.py"), *(pkg / "export").glob("*.py"),
             pkg / "geometry.py", pkg / "ensemble" / "fuse.py", pkg / "ensemble" / "fusing.py"]
    printing = [f"{p.relative_to(pkg)}:{n.lineno}" for p in files
                for n in ast.walk(ast.parse(p.read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
    assert len(files) > 15 and not printing, printing
