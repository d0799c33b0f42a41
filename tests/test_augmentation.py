"""The augmentation stage: keypoints follow the pixels, flips swap labels, sets are reproducible,
idempotent and resumable, and bad names fail with suggestions."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import log_records

from motion_keypoints.augment import render as augment_render
from motion_keypoints.augment.config import load_augmentation_config
from motion_keypoints.augment.ops import (
    AugmentationError,
    _albumentations,
    _apply_chain,
    rotate_crop_class,
)
from motion_keypoints.augment.render import (
    EXTRA_COLUMNS,
    _render_source,
    augment_image,
    build_sets,
    transform_dict,
)
from motion_keypoints.cli.augmentation import main as augmentation_main
from motion_keypoints.data.layout import DataPaths
from motion_keypoints.io.images import image_size
from motion_keypoints.io.outputs import editing
from motion_keypoints.io.problems import DataError
from motion_keypoints.io.tables import keypoints_array, read_keypoint_csv, write_keypoint_csv
from motion_keypoints.meta import FLIP_INDEX, KEYPOINT_NAMES, keypoint_index
from motion_keypoints.utils import file_sha256

W, H = 320, 180
SMALL_SET = {
    "transforms": ["original", "hflip", "rotate45", "random_crop_120x160+blur"],
    "copies": 2,
    "seed": 3,
}
SMALL_PER_IMAGE = 1 + 1 + 2 + 2  # deterministic transforms render one copy


def write_config(tmp_path, sets, name="aug.yaml", **top):
    path = Path(tmp_path) / name
    path.write_text(yaml.safe_dump({**top, "sets": sets}))
    return load_augmentation_config(path)


def build(root, out, config, **kw):
    kw.setdefault("workers", 1)
    kw.setdefault("progress", False)
    kw.setdefault("echo", print)  # the library's console lines, as the command prints them
    return build_sets(root, out, list(config.sets), config=config, **kw)


def set_files(set_dir):
    return {
        p.relative_to(set_dir).as_posix(): p.read_bytes()
        for p in sorted(set_dir.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


# ------------------------------------------------------------------ keypoints follow the pixels


def dot_image(x, y):
    """Grey image with a white disc centred on the pixel (x, y) (the kit's pixel-index
    coordinates, motion_keypoints.geometry: the centre of pixel column j is x = j)."""
    img = np.full((H, W, 3), 40, np.uint8)
    cv2.circle(img, (int(round(x)), int(round(y))), 4, (255, 255, 255), -1)
    return img


def dot_centre(img):
    """Intensity-weighted centre of the bright disc in pixel-index coordinates, None if absent."""
    g = img.astype(np.float64).mean(axis=2)
    weight = np.clip(g - 126.0, 0, None)
    if weight.sum() == 0:
        return None
    ys, xs = np.mgrid[: g.shape[0], : g.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()


def a_pose(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform([40, 30], [W - 40, H - 30], size=(len(KEYPOINT_NAMES), 2)).round(1) + 0.5


@pytest.mark.parametrize(
    "transform",
    [
        "original",
        "hflip",
        "center_crop_100x200",
        "random_crop_120x160",
        "random_crop_960x720",
        "rotate45",
        "shift_scale",
        "brightness_contrast",
        "blur",
        "rotate45+random_crop_120x160",
        "rotate45+center_crop_100x200",
        "rotate45+random_crop_960x720",
        "hflip+rotate45",
        "hflip+shift_scale+random_crop_150x300",
    ],
)
def test_keypoints_move_with_the_pixels(transform):
    config = load_augmentation_config()
    flips = transform.split("+").count("hflip") % 2
    k = keypoint_index("left_wrist")
    found = 0
    for seed in range(4):
        for pos in ([160.0, 90.0], [100.0, 60.0], [230.0, 120.0]):
            kps = a_pose(seed)
            kps[k] = pos
            img, out, _ = augment_image(dot_image(*pos), kps, transform, seed, config)
            # after a mirror, the person's left wrist is seen where a right wrist would be
            expected = out[FLIP_INDEX[k] if flips else k]
            h, w = img.shape[:2]
            if not (8 <= expected[0] <= w - 8 and 8 <= expected[1] <= h - 8):
                continue
            centre = dot_centre(img)
            assert centre is not None, (transform, seed, pos)
            np.testing.assert_allclose(centre, expected, atol=0.75, err_msg=f"{transform} {seed}")
            found += 1
    assert found >= 4, f"the dot left the frame in almost every draw of {transform}"


@pytest.mark.parametrize("random_position", [True, False])
def test_fused_rotate_crop_equals_albumentations_rotate_then_crop(random_position):
    A = _albumentations()
    img = cv2.GaussianBlur(
        np.random.default_rng(0).integers(0, 255, (H, W, 3), np.uint8), (7, 7), 2
    )
    kps = a_pose(4)
    for seed in range(3):
        op = rotate_crop_class()(45, 120, 160, random_position)
        op.set_random_seed(seed)
        matrix = op.get_params_dependent_on_data({"shape": img.shape}, {})["matrix"]
        angle = np.degrees(np.arctan2(matrix[0, 1], matrix[0, 0]))
        plain = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)
        x0, y0 = np.round(plain[:, 2] - matrix[:, 2]).astype(int)
        reference = A.Compose(
            [A.Rotate(limit=(angle, angle), p=1), A.Crop(x0, y0, x0 + 160, y0 + 120)],
            keypoint_params=A.KeypointParams(format="xy", remove_invisible=False),
        )(image=img, keypoints=kps)
        fused = A.Compose(
            [op], keypoint_params=A.KeypointParams(format="xy", remove_invisible=False), seed=None
        )
        op.set_random_seed(seed)
        fused_out = fused(image=img, keypoints=kps)
        assert np.abs(fused_out["image"].astype(int) - reference["image"]).max() <= 1
        np.testing.assert_allclose(fused_out["keypoints"], reference["keypoints"], atol=1e-3)


def test_flip_mirrors_x_and_swaps_left_right_labels():
    config = load_augmentation_config()
    kps = a_pose(1)
    img = np.zeros((H, W, 3), np.uint8)
    _, out, _ = augment_image(img, kps, "hflip", 0, config)
    for name in ("nose", "neck", "left_wrist", "right_knee", "left_instep"):
        i = keypoint_index(name)
        partner = name.replace("left_", "R_").replace("right_", "left_").replace("R_", "right_")
        # the person's left keypoint after the flip is the mirror of their right one before
        # (pixel-index coordinates: column j moves to W - 1 - j, geometry.flip_points)
        np.testing.assert_allclose(
            out[keypoint_index(partner)], [W - 1 - kps[i, 0], kps[i, 1]], atol=1e-3
        )
    _, twice, _ = augment_image(img, kps, "hflip+hflip", 0, config)
    np.testing.assert_allclose(twice, kps, atol=1e-3)


def test_nan_keypoints_are_an_error_naming_image_and_transform():
    kps = a_pose(2)
    kps[keypoint_index("right_ankle")] = np.nan
    with pytest.raises(
        AugmentationError, match=r"frame_7\.jpg: transform 'rotate45'.*right_ankle"
    ):
        augment_image(np.zeros((H, W, 3), np.uint8), kps, "rotate45", 0, label="frame_7.jpg")


def test_seed_fixes_the_draw():
    config = load_augmentation_config()
    img, kps = dot_image(100.5, 60.5), a_pose(3)
    a = augment_image(img, kps, "rotate45+random_crop_120x160", 5, config)
    b = augment_image(img, kps, "rotate45+random_crop_120x160", 5, config)
    c = augment_image(img, kps, "rotate45+random_crop_120x160", 6, config)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[1], c[1])


# ------------------------------------------------------------------------------ the config


def test_shipped_config_has_the_reference_sets():
    config = load_augmentation_config()
    assert len(config.sets["reference8"].transforms) == 8
    assert len(config.sets["reference6"].transforms) == 6
    assert "demo" in config.sets
    transforms = transform_dict(config)
    for name in (
        "original",
        "center_crop",
        "random_crop_960x720",
        "random_crop_720x540",
        "random_crop_960x960",
        "rotate45",
        "rotate45+random_crop_960x720",
        "hflip",
        "shift_scale",
        "brightness_contrast",
        "blur",
    ):
        assert name in transforms
    assert config.resolve("center_crop") == (("center_crop", {"height": 720, "width": 1280}),)
    assert config.resolve("random_crop_960x720") == (
        ("random_crop", {"height": 960, "width": 720}),
    )
    out = transforms["random_crop_960x720"](
        image=np.zeros((1080, 1920, 3), np.uint8), keypoints=a_pose()
    )
    assert out["image"].shape[:2] == (960, 720)


def test_unknown_set_names_the_closest(synthetic_data, tmp_path):
    with pytest.raises(
        AugmentationError, match=r"'demi'.*\(did you mean 'demo'\?\); known sets: demo, "
    ):
        build_sets(synthetic_data, tmp_path / "out", ["demi"], workers=1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            {"transforms": ["rotate_45"], "copies": 1, "seed": 0},
            r"sets\.bad\.transforms\[0\]: unknown transform 'rotate_45' \(did you mean 'rotate45'\?\); known: blur, ",
        ),
        (
            {"transforms": ["original", "rotate45+random_crop_96O"], "copies": 1, "seed": 0},
            r"sets\.bad\.transforms\[1\]: unknown transform 'random_crop_96O'",
        ),
        (
            {"transforms": ["original"], "copies": 0, "seed": 0},
            r"sets\.bad\.copies: must be a positive",
        ),
        ({"transforms": ["original"], "copies": 1}, r"sets\.bad: missing seed"),
        (
            {"transforms": ["original"], "copies": 1, "seed": 0, "copy": 2},
            r"sets\.bad\.copy: unknown key",
        ),
        (
            {"transforms": ["hflip", "hflip"], "copies": 1, "seed": 0},
            r"sets\.bad\.transforms: lists hflip more than once",
        ),
    ],
)
def test_bad_sets_fail_naming_file_and_key(tmp_path, body, expected):
    with pytest.raises(AugmentationError, match=r"aug\.yaml: " + expected):
        write_config(tmp_path, {"bad": body})


def test_bad_transform_definitions_fail(tmp_path):
    ok = {"s": {"transforms": ["original"], "copies": 1, "seed": 0}}
    with pytest.raises(
        AugmentationError,
        match=r"transform 'crop' .*unknown type 'center_crap' \(did you mean 'center_crop'\?\)",
    ):
        write_config(
            tmp_path, ok, transforms={"crop": {"type": "center_crap", "height": 5, "width": 5}}
        )
    with pytest.raises(AugmentationError, match=r"transform 'b' \(blur\): .*odd"):
        write_config(tmp_path, ok, transforms={"b": {"type": "blur", "blur_limit": [4, 6]}})
    with pytest.raises(
        AugmentationError, match=r"unknown parameter\(s\) angle; allowed: limit"
    ):
        write_config(tmp_path, ok, transforms={"r": {"type": "rotate", "angle": 3}})
    with pytest.raises(AugmentationError, match=r"oversize: must be one of pad, clamp"):
        write_config(tmp_path, ok, oversize="stretch")


# ------------------------------------------------------------------------------ building sets


def test_build_writes_images_annotations_and_manifest(synthetic_data, tmp_path):
    config = write_config(tmp_path, {"small": SMALL_SET})
    paths = DataPaths.from_root(synthetic_data)
    originals = {p.name: file_sha256(p) for p in paths.train_images.iterdir()}
    [summary] = build(synthetic_data, tmp_path / "out", config, limit=5)

    set_dir = tmp_path / "out" / "small-limit5"
    assert summary["outputs"] == summary["rendered"] == 5 * SMALL_PER_IMAGE
    df = read_keypoint_csv(
        set_dir / "annotations.csv",
        image_dir=set_dir / "images",
        extra_columns=EXTRA_COLUMNS,
        check_images=True,
    )
    assert len(df) == 5 * SMALL_PER_IMAGE
    train = read_keypoint_csv(paths.train_csv)
    assert list(dict.fromkeys(df["source_image"])) == list(train["image"][:5])
    assert df["transform"].value_counts().to_dict() == {
        "original": 5,
        "hflip": 5,
        "rotate45": 10,
        "random_crop_120x160+blur": 10,
    }
    originals_out = df[df["transform"] == "original"]
    np.testing.assert_array_equal(keypoints_array(originals_out), keypoints_array(train[:5]))
    crops = df[df["transform"] == "random_crop_120x160+blur"]["image"]
    assert {image_size(set_dir / "images" / n) for n in crops} == {(160, 120)}
    assert {p.name for p in (set_dir / "images").iterdir()} == set(df["image"])

    manifest = json.loads((set_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["source"]["sha256"] == file_sha256(paths.train_csv)
    assert manifest["definition"]["transforms"] == SMALL_SET["transforms"]
    assert manifest["definition"]["seed"] == 3
    assert manifest["counts"]["outputs"] == len(df)
    assert {"albumentations", "opencv", "motion_keypoints"} <= set(manifest["versions"])
    assert manifest["wall_seconds"] > 0
    assert {p.name: file_sha256(p) for p in paths.train_images.iterdir()} == originals


def test_rerun_skips_finished_images_and_reproduces_annotations(synthetic_data, tmp_path):
    config = write_config(tmp_path, {"small": SMALL_SET})
    build(synthetic_data, tmp_path / "out", config, limit=4)
    set_dir = tmp_path / "out" / "small-limit4"
    before = set_files(set_dir)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (set_dir / "images").iterdir()}
    [again] = build(synthetic_data, tmp_path / "out", config, limit=4)
    assert again["rendered"] == 0 and again["skipped"] == 4 * SMALL_PER_IMAGE
    assert again["rebuilt"] is None
    assert set_files(set_dir) == before
    assert {p.name: p.stat().st_mtime_ns for p in (set_dir / "images").iterdir()} == mtimes


def test_results_do_not_depend_on_the_number_of_workers(synthetic_data, tmp_path):
    config = write_config(tmp_path, {"small": SMALL_SET})
    # OpenCV's thread pool busy in the parent must not hang the forked workers
    augment_image(dot_image(100.5, 60.5), a_pose(), "rotate45+blur", 0)
    build(synthetic_data, tmp_path / "one", config, limit=6, workers=1)
    build(synthetic_data, tmp_path / "two", config, limit=6, workers=2)
    assert set_files(tmp_path / "one" / "small-limit6") == set_files(tmp_path / "two" / "small-limit6")


def test_interrupted_run_resumes_without_duplicates(synthetic_data, tmp_path, monkeypatch):
    config = write_config(tmp_path, {"small": SMALL_SET})
    build(synthetic_data, tmp_path / "clean", config, limit=6)
    clean = set_files(tmp_path / "clean" / "small-limit6")

    render = _render_source
    calls = []

    def render_then_die(task):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(task.image)
        return render(task)

    monkeypatch.setattr(augment_render, "_render_source", render_then_die)
    with pytest.raises(KeyboardInterrupt):
        build(synthetic_data, tmp_path / "out", config, limit=6)
    monkeypatch.setattr(augment_render, "_render_source", render)
    set_dir = tmp_path / "out" / "small-limit6"
    assert not (set_dir / "annotations.csv").exists()
    assert json.loads((set_dir / "manifest.json").read_text())["status"] == "running"
    # a write killed half-way leaves a temporary file behind
    (set_dir / "images" / ".x.abc.tmp.jpg").write_bytes(b"\xff\xd8 truncated")

    [summary] = build(synthetic_data, tmp_path / "out", config, limit=6)
    assert summary["rendered"] == 3 * SMALL_PER_IMAGE
    assert set_files(set_dir) == clean


def test_worker_errors_stop_the_run_naming_image_and_transform(
    synthetic_data, tmp_path, monkeypatch
):
    config = write_config(tmp_path, {"small": SMALL_SET})
    apply_chain = _apply_chain

    def nan_keypoints(image, keypoints, *args):
        return apply_chain(image, np.full_like(np.asarray(keypoints), np.nan), *args)

    monkeypatch.setattr(augment_render, "_apply_chain", nan_keypoints)  # forked workers inherit it
    with pytest.raises(AugmentationError) as info:
        build(synthetic_data, tmp_path / "out", config, limit=4, workers=2)
    first_four = read_keypoint_csv(synthetic_data / "train_df.csv")["image"][:4]
    image, _, message = str(info.value).partition(": ")
    assert Path(image).name in set(first_four)
    assert message.startswith(
        "transform 'hflip' (copy 0): produced non-finite (NaN) keypoints: nose"
    )
    set_dir = tmp_path / "out" / "small-limit4"
    assert json.loads((set_dir / "manifest.json").read_text())["status"] == "running"
    assert not (set_dir / "annotations.csv").exists()


def test_deleted_outputs_are_rebuilt(synthetic_data, tmp_path):
    config = write_config(tmp_path, {"small": SMALL_SET})
    build(synthetic_data, tmp_path / "out", config, limit=6)
    set_dir = tmp_path / "out" / "small-limit6"
    before = set_files(set_dir)
    images = sorted((set_dir / "images").iterdir())
    images[0].unlink()
    images[-1].unlink()
    sorted((set_dir / "records").iterdir())[2].unlink()
    (set_dir / "annotations.csv").unlink()
    [summary] = build(synthetic_data, tmp_path / "out", config, limit=6)
    assert summary["rendered"] == 3 * SMALL_PER_IMAGE
    assert set_files(set_dir) == before


def test_changed_definition_or_source_csv_rebuilds_the_set(synthetic_data, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    config = write_config(tmp_path, {"small": SMALL_SET})
    build(root, tmp_path / "out", config, limit=3)
    ann = tmp_path / "out" / "small-limit3" / "annotations.csv"
    first = read_keypoint_csv(ann, extra_columns=EXTRA_COLUMNS)

    config = write_config(tmp_path, {"small": {**SMALL_SET, "seed": 4}})
    [summary] = build(root, tmp_path / "out", config, limit=3)
    assert "changed" in summary["rebuilt"] and summary["rendered"] == 3 * SMALL_PER_IMAGE
    assert "rebuilding the set from scratch" in capsys.readouterr().out
    second = read_keypoint_csv(ann, extra_columns=EXTRA_COLUMNS)
    rotated = (first["transform"] == "rotate45").to_numpy()
    assert not np.allclose(keypoints_array(first)[rotated], keypoints_array(second)[rotated])

    train = read_keypoint_csv(root / "train_df.csv")
    train.loc[0, "nose_x"] += 3.0
    with editing(root):  # a deliberate edit of a (copied) data folder
        write_keypoint_csv(train, root / "train_df.csv")
    [summary] = build(root, tmp_path / "out", config, limit=3)
    assert summary["rebuilt"] and summary["rendered"] == 3 * SMALL_PER_IMAGE
    third = read_keypoint_csv(ann, extra_columns=EXTRA_COLUMNS)
    assert third.loc[0, "nose_x"] == train.loc[0, "nose_x"]


@pytest.mark.parametrize("oversize", ["pad", "clamp"])
def test_crops_larger_than_the_image(synthetic_data, tmp_path, oversize):
    sets = {"big": {"transforms": ["random_crop_960x960", "center_crop"], "copies": 1, "seed": 0}}
    config = write_config(tmp_path, sets, oversize=oversize)
    [summary] = build(synthetic_data, tmp_path / "out", config, limit=2)
    set_dir = tmp_path / "out" / "big-limit2"
    df = read_keypoint_csv(set_dir / "annotations.csv", extra_columns=EXTRA_COLUMNS)
    src = keypoints_array(read_keypoint_csv(synthetic_data / "train_df.csv")[:2])
    sizes = {
        t: {image_size(set_dir / "images" / n) for n in df[df["transform"] == t]["image"]}
        for t in ("random_crop_960x960", "center_crop")
    }
    centre = keypoints_array(df[df["transform"] == "center_crop"])
    if oversize == "pad":
        assert sizes == {"random_crop_960x960": {(960, 960)}, "center_crop": {(1280, 720)}}
        np.testing.assert_allclose(centre, src + [(1280 - W) / 2, (720 - H) / 2], atol=1e-3)
    else:
        assert sizes == {"random_crop_960x960": {(W, H)}, "center_crop": {(W, H)}}
        np.testing.assert_allclose(centre, src, atol=1e-3)
    manifest = json.loads((set_dir / "manifest.json").read_text())
    assert manifest["adjusted"] == summary["adjusted"]
    for t in ("random_crop_960x960", "center_crop"):
        [(note, count)] = manifest["adjusted"][t].items()
        assert count == 2 and ("padded" if oversize == "pad" else "clamped") in note


def test_bad_data_root_fails_before_rendering(synthetic_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    lines = (root / "train_df.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[3] = "oops"
    lines[2] = ",".join(cells)
    (root / "train_df.csv").write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path, {"small": SMALL_SET})
    with pytest.raises(DataError, match=r"train_df\.csv: line 3, column left_eye_x: 'oops'"):
        build(root, tmp_path / "out", config)
    assert not (tmp_path / "out").exists()


def test_cli_prints_a_summary_and_reports_errors(synthetic_data, tmp_path, capsys):
    args = [
        "--data-root",
        str(synthetic_data),
        "--out",
        str(tmp_path / "out"),
        "--workers",
        "1",
        "--quiet",
    ]
    assert augmentation_main(args + ["--sets", "demo", "--limit", "3"]) == 0
    n = 3 * len(load_augmentation_config().sets["demo"].transforms)
    assert (
        f"demo-limit3: {n} images from 3 sources ({n} rendered, 0 already done)"
        in capsys.readouterr().out
    )
    assert augmentation_main(args + ["--sets", "demo,referense8"]) == 1
    err = capsys.readouterr().err
    assert "unknown augmentation set 'referense8'" in err and "did you mean 'reference8'" in err


@pytest.mark.slow
def test_benchmark_smoke_run():
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "augmentation.py"), "--quick"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^ratio kit/serial images/s: \d+\.\d\dx end to end", proc.stdout, re.M)
    assert re.search(r"^verdict: .*\(goal >= 1\.8x .*\): (MET|NOT MET)$", proc.stdout, re.M)


# ------------------------------------------------- --limit never shrinks a set; the manifest; --out


def test_limit_builds_its_own_set_and_leaves_a_complete_set_alone(synthetic_data, tmp_path):
    config = write_config(tmp_path, {"small": {**SMALL_SET, "transforms": ["original"]}})
    [full] = build(synthetic_data, tmp_path / "out", config)
    set_dir = tmp_path / "out" / "small"
    before = set_files(set_dir)
    n_train = len(read_keypoint_csv(synthetic_data / "train_df.csv"))
    assert full["outputs"] == n_train
    [limited] = build(synthetic_data, tmp_path / "out", config, limit=2)
    assert set_files(set_dir) == before  # the complete set keeps every image
    assert json.loads((set_dir / "manifest.json").read_text())["complete"] is True
    assert limited["set"] == "small-limit2" and limited["outputs"] == 2
    manifest = json.loads((tmp_path / "out" / "small-limit2" / "manifest.json").read_text())
    assert manifest["set"] == "small-limit2" and manifest["base_set"] == "small"
    assert manifest["limit"] == 2 and manifest["complete"] is True


def test_manifest_records_what_training_checks(synthetic_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    config = write_config(tmp_path, {"small": {**SMALL_SET, "transforms": ["original"]}})
    build(root, tmp_path / "out", config, limit=2)
    manifest = json.loads((tmp_path / "out" / "small-limit2" / "manifest.json").read_text())
    assert manifest["data_root"] == str(root.resolve())
    assert manifest["source"]["train_csv_sha256"] == file_sha256(root / "train_df.csv")
    assert manifest["source"]["overrides_sha256"] is None
    assert len(manifest["definition_hash"]) == 64 and manifest["hash"] != manifest["definition_hash"]
    first = read_keypoint_csv(root / "train_df.csv")["image"][0]
    (root / "label_overrides.csv").write_text(f"image,keypoint,x,y\n{first},nose,10,10\n")
    build(root, tmp_path / "out", config, limit=2)
    manifest = json.loads((tmp_path / "out" / "small-limit2" / "manifest.json").read_text())
    assert manifest["source"]["overrides_sha256"] == file_sha256(root / "label_overrides.csv")
    assert manifest["source"]["train_csv_sha256"] == file_sha256(root / "train_df.csv")


def test_a_build_that_stops_midway_is_not_complete(synthetic_data, tmp_path, monkeypatch):
    config = write_config(tmp_path, {"small": {**SMALL_SET, "transforms": ["original"]}})

    def die(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(augment_render, "_render_source", die)
    with pytest.raises(KeyboardInterrupt):
        build(synthetic_data, tmp_path / "out", config, limit=2)
    manifest = json.loads((tmp_path / "out" / "small-limit2" / "manifest.json").read_text())
    assert manifest["complete"] is False


@pytest.mark.parametrize("where", ["images", "images/train_imgs", "train_df.csv", "new.csv"])
def test_out_inside_the_data_images_or_a_csv_is_refused(synthetic_data, tmp_path, where, capsys):
    out = (tmp_path / where) if where == "new.csv" else (synthetic_data / where)
    before = {p: p.stat().st_mtime_ns for p in synthetic_data.rglob("*")}
    code = augmentation_main(["--data-root", str(synthetic_data), "--out", str(out),
                              "--sets", "demo", "--quiet", "--limit", "1"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: --out") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in synthetic_data.rglob("*")} == before
    assert not (tmp_path / "new.csv").exists()


def test_config_file_flag_and_workers_auto(synthetic_data, tmp_path, capsys):
    cfg = tmp_path / "aug.yaml"
    cfg.write_text(yaml.safe_dump({"sets": {"mine": {"transforms": ["original"], "copies": 1,
                                                      "seed": 0}}}))
    code = augmentation_main(["--data-root", str(synthetic_data), "--out", str(tmp_path / "o"),
                              "--sets", "mine", "--config-file", str(cfg), "--quiet",
                              "--limit", "1", "--workers", "0"])
    assert code == 0 and (tmp_path / "o" / "mine-limit1" / "annotations.csv").is_file()
    with pytest.raises(SystemExit) as info:
        augmentation_main(["--data-root", str(synthetic_data), "--sets", "mine", "--config",
                           str(cfg)])
    assert info.value.code == 2


def test_build_sets_logs_its_lines_without_a_printer(synthetic_data, tmp_path):
    """Issue 18: the library never prints; its lines go to ``echo`` (a command's printer) or,
    without one, to the log."""
    from motion_keypoints.augment.render import describe_set

    config = write_config(tmp_path, {"small": SMALL_SET})
    with log_records("motion_keypoints.augment.render") as records:
        [summary] = build_sets(synthetic_data, tmp_path / "out", ["small"], config=config,
                               workers=1, limit=2, progress=False)
    assert [r.getMessage() for r in records] == [describe_set(summary)]
    assert describe_set(summary).startswith(
        f"small-limit2: {2 * SMALL_PER_IMAGE} images from 2 sources ({2 * SMALL_PER_IMAGE} "
        "rendered, 0 already done) in ")
    printed = []
    build(synthetic_data, tmp_path / "out", config, limit=2, echo=printed.append)
    assert len(printed) == 1 and f"(0 rendered, {2 * SMALL_PER_IMAGE} already done)" in printed[0]
