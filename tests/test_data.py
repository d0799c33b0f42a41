"""The data layer: strict CSV reading, validation of a data root, the check_data CLI and the
detectron2 dataset dicts. Every test builds its own tiny data root (a few 64x48 JPEGs)."""


import csv
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from motion_keypoints.cli.check_data import main as check_data_main
from motion_keypoints.data.layout import validate_data_root
from motion_keypoints.engine.datasets import make_dataset_dicts, register_dataset
from motion_keypoints.io.images import image_size
from motion_keypoints.io.outputs import editing
from motion_keypoints.io.problems import MAX_SHOWN, DataError, Problem
from motion_keypoints.io.tables import (
    keypoints_array,
    keypoints_frame,
    read_keypoint_csv,
    write_keypoint_csv,
)
from motion_keypoints.meta import CSV_COLUMNS, NUM_KEYPOINTS, keypoint_index

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48


def build_root(root: Path, n_train=4, n_test=2, sizes=((W, H),), seed=0) -> Path:
    """A valid data root: JPEGs cycling through ``sizes`` and keypoints inside each image."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        folder = root / "images" / f"{split}_imgs"
        folder.mkdir(parents=True)
        names, coords = [], []
        for i in range(n):
            w, h = sizes[i % len(sizes)]
            name = f"00{i}-1-1-01-Z17_A-000000{i}.jpg" if split == "train" else f"test-{i}.jpg"
            cv2.imwrite(str(folder / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
            names.append(name)
            coords.append(rng.uniform(2, (w - 2, h - 2), (NUM_KEYPOINTS, 2)))
        if split == "test":
            coords = np.zeros((n, NUM_KEYPOINTS, 2))
        csv_name = "train_df.csv" if split == "train" else "sample_submission.csv"
        with editing(root):  # the test builds a data folder by hand
            write_keypoint_csv(keypoints_frame(names, coords), root / csv_name)
    return root


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def set_cell(path, line, column, value):
    rows = read_rows(path)
    rows[line - 1][rows[0].index(column)] = value
    write_rows(path, rows)


def image_of_line(root, line, csv_name="train_df.csv"):
    return read_rows(root / csv_name)[line - 1][0]


@pytest.fixture
def root(tmp_path):
    return build_root(tmp_path / "data")


def problems_of(root, **kwargs):
    with pytest.raises(DataError) as info:
        validate_data_root(root, **kwargs)
    return info.value.problems


def assert_problem(problems, file, line, column, pattern):
    """Some problem names ``file`` (a file name), ``line`` and ``column`` and matches ``pattern``."""
    hits = [p for p in problems if Path(p.file).name == file and p.row == line
            and p.column == column and re.search(pattern, p.message)]
    assert hits, "no problem like ({}, {}, {}, {!r}) in:\n{}".format(
        file, line, column, pattern, "\n".join(map(str, problems)))
    text = str(hits[0])
    assert file in text and (line is None or f"line {line}" in text)
    assert column is None or f"column {column}" in text


# --------------------------------------------------------------------------------- CSV round trip


def test_csv_round_trip_gives_identical_floats(tmp_path):
    rng = np.random.default_rng(1)
    coords = rng.uniform(-50, 2000, (5, NUM_KEYPOINTS, 2))
    coords[0, 0] = (0.1 + 0.2, 1e-7)
    coords[1, 1] = (1919.9999999999998, -0.0)
    df = keypoints_frame([f"img{i}.jpg" for i in range(5)], coords,
                           extra={"source": ["a", "b", "c", "d", "e"]})
    path = tmp_path / "kp.csv"
    write_keypoint_csv(df, path)
    assert "0.30000000000000004" in path.read_text()
    back = read_keypoint_csv(path, extra_columns=("source",))
    assert list(back.columns) == list(CSV_COLUMNS) + ["source"]
    assert back["image"].tolist() == df["image"].tolist()
    assert back["source"].tolist() == list("abcde")
    assert np.array_equal(keypoints_array(back), coords)
    assert keypoints_array(back).dtype == np.float64
    assert [p.name for p in tmp_path.iterdir()] == ["kp.csv"]  # no temporary file left behind


def test_keypoints_frame_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        keypoints_frame(["a.jpg"], np.zeros((1, NUM_KEYPOINTS - 1, 2)))
    df = keypoints_frame(["a.jpg", "b.jpg"], np.arange(2 * NUM_KEYPOINTS * 2).reshape(2, -1, 2))
    assert tuple(df.columns) == CSV_COLUMNS
    assert df.loc[1, "nose_x"] == NUM_KEYPOINTS * 2 and df.loc[0, "nose_y"] == 1


def test_write_refuses_non_finite_coordinates(tmp_path):
    coords = np.ones((2, NUM_KEYPOINTS, 2))
    coords[1, keypoint_index("neck"), 1] = np.nan
    with pytest.raises(DataError) as info:
        write_keypoint_csv(keypoints_frame(["a.jpg", "b.jpg"], coords), tmp_path / "x.csv")
    assert_problem(info.value.problems, "x.csv", 3, "neck_y", "non-finite")
    assert not (tmp_path / "x.csv").exists()


# ------------------------------------------------------------------------------------ validation


def test_valid_root_summary_and_image_sizes_from_files(tmp_path):
    root = build_root(tmp_path / "data", n_train=5, sizes=((W, H), (50, 30)))
    report = validate_data_root(root)
    train, test = report.summary["train"], report.summary["test"]
    assert train["rows"] == 5 and test["rows"] == 2
    assert train["image_sizes"] == {"64x48": 3, "50x30": 2}
    assert train["points_outside"] == 0 and report.warnings == []
    assert train["unlisted_files"] == 0
    assert image_size(root / "images/train_imgs" / image_of_line(root, 3)) == (50, 30)


def test_points_outside_the_frame_are_warnings(root):
    set_cell(root / "train_df.csv", 3, "left_ankle_x", "-4.5")
    set_cell(root / "train_df.csv", 3, "left_ankle_y", str(H + 1))
    report = validate_data_root(root)
    assert report.summary["train"]["points_outside"] == 1
    (warning,) = report.warnings
    assert warning.row == 3 and "left_ankle" in warning.message and "64x48" in warning.message


def _drop_column(path, column):
    rows = read_rows(path)
    i = rows[0].index(column)
    write_rows(path, [r[:i] + r[i + 1:] for r in rows])


def _add_column(path, column):
    write_rows(path, [r + ([column] if n == 0 else ["1"]) for n, r in enumerate(read_rows(path))])


def _swap_columns(path, a, b):
    rows = read_rows(path)
    i, j = rows[0].index(a), rows[0].index(b)
    for r in rows:
        r[i], r[j] = r[j], r[i]
    write_rows(path, rows)


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _remove_image(root, line, csv_name="train_df.csv", folder="train_imgs"):
    (root / "images" / folder / image_of_line(root, line, csv_name)).unlink()


def _corrupt_image(root, line):
    (root / "images/train_imgs" / image_of_line(root, line)).write_bytes(b"not a jpeg at all")


def _truncate_image(root, line):
    _truncate(root / "images/train_imgs" / image_of_line(root, line))


def _rename_image(root, line, name):
    set_cell(root / "train_df.csv", line, "image", name)


TRAIN = "train_df.csv"
SAMPLE = "sample_submission.csv"

BAD_INPUTS = {
    "missing column": (lambda r: _drop_column(r / TRAIN, "nose_y"),
                       (TRAIN, 1, "nose_y", r"missing column .*after 'nose_x'")),
    "extra column": (lambda r: _add_column(r / TRAIN, "score"),
                     (TRAIN, 1, "score", "unexpected column at position")),
    "misspelt column": (lambda r: (_drop_column(r / TRAIN, "neck_x"), _add_column(r / TRAIN, "Neck_x")),
                        (TRAIN, 1, "Neck_x", "did you mean 'neck_x'")),
    "wrong order": (lambda r: _swap_columns(r / TRAIN, "nose_x", "left_eye_x"),
                    (TRAIN, 1, "left_eye_x", "out of place at position 2: it belongs after 'nose_y'")),
    "order named": (lambda r: _swap_columns(r / TRAIN, "nose_x", "left_eye_x"),
                    (TRAIN, 1, None, "expected columns, in this order: image, then NAME_x")),
    "semicolons": (lambda r: write_rows(r / TRAIN, [[";".join(x)] for x in read_rows(r / TRAIN)]),
                   (TRAIN, 1, None, "separated by semicolons")),
    "non-numeric": (lambda r: set_cell(r / TRAIN, 3, "left_eye_x", "abc"),
                    (TRAIN, 3, "left_eye_x", "'abc' is not a number")),
    "python-only float syntax": (lambda r: set_cell(r / TRAIN, 2, "neck_y", "1_000"),
                                 (TRAIN, 2, "neck_y", "not a number")),
    "NaN": (lambda r: set_cell(r / TRAIN, 4, "right_knee_y", "NaN"),
            (TRAIN, 4, "right_knee_y", "NaN")),
    "empty cell": (lambda r: set_cell(r / TRAIN, 2, "nose_x", ""),
                   (TRAIN, 2, "nose_x", "missing value")),
    "infinite": (lambda r: set_cell(r / TRAIN, 2, "nose_x", "inf"),
                 (TRAIN, 2, "nose_x", "not a finite")),
    "field count": (lambda r: write_rows(r / TRAIN, [x + (["9"] if n == 2 else [])
                                                     for n, x in enumerate(read_rows(r / TRAIN))]),
                    (TRAIN, 3, None, "fields but the header has")),
    "duplicate image": (lambda r: set_cell(r / TRAIN, 4, "image", image_of_line(r, 2)),
                        (TRAIN, 4, "image", "duplicate image .* line 2")),
    "image missing on disk": (lambda r: _remove_image(r, 3),
                              (TRAIN, 3, "image", "not found in .*train_imgs")),
    "corrupt image": (lambda r: _corrupt_image(r, 2),
                      (TRAIN, 2, "image", "cannot be read as an image")),
    "truncated JPEG": (lambda r: _truncate_image(r, 5),
                       (TRAIN, 5, "image", "truncated")),
    "parent folder": (lambda r: _rename_image(r, 2, "../x.jpg"),
                      (TRAIN, 2, "image", "climbs out of the image folder")),
    "subfolder with ..": (lambda r: _rename_image(r, 2, "sub/../../x.jpg"),
                          (TRAIN, 2, "image", "climbs out of the image folder")),
    "absolute path": (lambda r: _rename_image(r, 3, "/etc/hostname"),
                      (TRAIN, 3, "image", "absolute path")),
    "subfolder": (lambda r: _rename_image(r, 3, "sub/x.jpg"),
                  (TRAIN, 3, "image", "names a subfolder")),
    "0-byte CSV": (lambda r: (r / TRAIN).write_bytes(b""),
                   (TRAIN, None, None, "the file is empty")),
    "header only": (lambda r: write_rows(r / TRAIN, read_rows(r / TRAIN)[:1]),
                    (TRAIN, None, None, "no data rows")),
    "missing CSV": (lambda r: (r / TRAIN).unlink(),
                    (TRAIN, None, None, r"CSV not found: expected the file at .*data/train_df\.csv")),
    "missing image folder": (lambda r: [p.unlink() for p in (r / "images/train_imgs").iterdir()]
                             and (r / "images/train_imgs").rmdir(),
                             ("train_imgs", None, None, "image folder not found: expected .*train_df")),
    "sample submission column": (lambda r: _drop_column(r / SAMPLE, "right_instep_y"),
                                 (SAMPLE, 1, "right_instep_y", "missing column")),
    "test image missing": (lambda r: _remove_image(r, 2, SAMPLE, "test_imgs"),
                           (SAMPLE, 2, "image", "not found in .*test_imgs")),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named_by_file_line_and_column(root, case):
    mutate, expected = BAD_INPUTS[case]
    mutate(root)
    assert_problem(problems_of(root), *expected)


def test_all_problems_are_collected_before_raising(root):
    set_cell(root / TRAIN, 3, "left_eye_x", "abc")
    _remove_image(root, 4)
    _drop_column(root / SAMPLE, "nose_x")
    problems = problems_of(root)
    assert_problem(problems, TRAIN, 3, "left_eye_x", "not a number")
    assert_problem(problems, TRAIN, 4, "image", "not found")
    assert_problem(problems, SAMPLE, 1, "nose_x", "missing column")


@pytest.mark.parametrize("level", ["header", "decode"])
def test_read_keypoint_csv_checks_images_when_given_a_folder(root, level):
    images = root / "images/train_imgs"
    with open(images / image_of_line(root, 3), "ab") as f:
        f.write(b"trailing bytes after the end marker")  # still a complete, readable JPEG
    read_keypoint_csv(root / TRAIN, images, check_images=level)
    _truncate_image(root, 2)
    read_keypoint_csv(root / TRAIN, images)  # existence only
    with pytest.raises(DataError, match="line 2, column image: .*truncated") as info:
        read_keypoint_csv(root / TRAIN, images, check_images=level)
    assert len(info.value.problems) == 1


def test_error_printout_is_capped():
    err = DataError([Problem("f.csv", i + 2, "nose_x", "bad") for i in range(MAX_SHOWN + 10)])
    lines = str(err).splitlines()
    assert len(lines) == MAX_SHOWN + 1 and lines[-1] == "... and 10 more"
    assert lines[0] == "f.csv: line 2, column nose_x: bad"
    assert len(err.problems) == MAX_SHOWN + 10


def test_exif_rotated_image_size_matches_detectron2_loader(root):
    from detectron2.data import detection_utils

    path = root / "images/train_imgs" / image_of_line(root, 2)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when displayed
    Image.open(path).save(path, exif=exif)
    assert image_size(path) == (H, W)
    assert detection_utils.read_image(str(path)).shape[:2] == (W, H)
    report = validate_data_root(root)
    assert any("EXIF orientation 6" in w.message and w.row == 2 for w in report.warnings)


# ------------------------------------------------------------------------------------------- CLI


def test_check_data_main_in_process(root, capsys):
    set_cell(root / TRAIN, 2, "nose_x", "-1")
    assert check_data_main(["--data-root", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "train: 4 rows" in out and "64x48 (4 images)" in out and "OK" in out
    assert re.search(r"warning: .*train_df\.csv: line 2: keypoints outside .* nose", err)

    set_cell(root / TRAIN, 3, "left_eye_x", "abc")
    _remove_image(root, 4)
    assert check_data_main(["--data-root", str(root)]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert lines[0].startswith("check_data: 2 problem(s)")
    assert re.search(r"train_df\.csv: line 3, column left_eye_x: 'abc' is not a number", err)
    assert re.search(r"train_df\.csv: line 4, column image: image .* not found", err)
    assert "check_data.py --data-root" in lines[-1]
    assert out == ""


@pytest.mark.slow
def test_check_data_script_exit_codes(root, tmp_path):
    def run(data_root):
        return subprocess.run([sys.executable, "code/check_data.py", "--data-root", str(data_root)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    ok = run(root)
    assert ok.returncode == 0, ok.stderr
    assert "train: 4 rows" in ok.stdout
    missing = run(tmp_path / "nowhere")
    assert missing.returncode == 1
    assert "nowhere: data root not found" in missing.stderr


# ------------------------------------------------------------------------------------ detectron2


def test_bbox_is_extent_plus_margin_clipped_to_image(root):
    name = image_of_line(root, 2)
    coords = np.column_stack([np.linspace(20, 40, NUM_KEYPOINTS), np.linspace(10, 30, NUM_KEYPOINTS)])
    df = keypoints_frame([name], coords[None])
    (record,) = make_dataset_dicts(df, root / "images/train_imgs", bbox_margin=0.1)
    assert (record["width"], record["height"]) == (W, H)
    # dataset dicts are in detectron2's continuous coordinates: pixel index + 0.5 (geometry)
    np.testing.assert_allclose(record["annotations"][0]["bbox"], [18.5, 8.5, 42.5, 32.5])

    coords[0] = (-10, 5)  # outside the frame: clipped box, visibility 0
    coords[1] = (63.5, 47)
    (record,) = make_dataset_dicts(keypoints_frame([name], coords[None]),
                                     root / "images/train_imgs", bbox_margin=0.5)
    (anno,) = record["annotations"]
    assert anno["bbox"] == [0.0, 0.0, float(W), float(H)]
    kps = np.asarray(anno["keypoints"]).reshape(-1, 3)
    assert kps[0].tolist() == [-9.5, 5.5, 0.0]
    assert kps[1, 2] == 2 and (kps[2:, 2] == 2).all()
    assert all(type(v) is float for v in anno["keypoints"])
    coords[3] = np.nan
    with pytest.raises(ValueError, match=r"non-finite keypoints in rows \[0\]"):
        make_dataset_dicts(keypoints_frame([name], coords[None]), root / "images/train_imgs")


def test_dataset_dicts_pass_detectron2_transforms_and_flip(root):
    import torch
    from detectron2.data import DatasetCatalog, detection_utils
    from detectron2.data import transforms as T

    df = read_keypoint_csv(root / TRAIN)
    dicts = make_dataset_dicts(df, root / "images/train_imgs")
    name = "test_data_flip"
    register_dataset(name, lambda: dicts)
    try:
        flip_indices = detection_utils.create_keypoint_hflip_indices([name])
        record = DatasetCatalog.get(name)[1]
        image = detection_utils.read_image(record["file_name"], format="BGR")
        detection_utils.check_image_size(record, image)
        (anno,) = record["annotations"]
        transforms = T.TransformList([T.HFlipTransform(record["width"])])
        flipped = detection_utils.transform_instance_annotations(
            dict(anno), transforms, image.shape[:2], keypoint_hflip_indices=flip_indices)
        instances = detection_utils.annotations_to_instances([flipped], image.shape[:2])
    finally:
        DatasetCatalog.remove(name)
    orig = np.asarray(anno["keypoints"]).reshape(-1, 3)
    kps = instances.gt_keypoints.tensor[0].numpy()
    assert kps.shape == (NUM_KEYPOINTS, 3)
    left, right = keypoint_index("left_eye"), keypoint_index("right_eye")
    np.testing.assert_allclose(kps[left, :2], [W - orig[right, 0], orig[right, 1]], rtol=1e-6)
    np.testing.assert_allclose(kps[right, :2], [W - orig[left, 0], orig[left, 1]], rtol=1e-6)
    x0, y0, x1, y1 = anno["bbox"]
    box = instances.gt_boxes.tensor[0]
    assert torch.allclose(box, torch.tensor([W - x1, y0, W - x0, y1], dtype=box.dtype))
    assert instances.gt_classes.tolist() == [0]


def test_register_dataset_twice_and_replace():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    def first():
        return [{"file_name": "a.jpg"}]

    def second():
        return [{"file_name": "b.jpg"}]

    name = "test_data_register"
    try:
        register_dataset(name, first)
        register_dataset(name, first)
        assert DatasetCatalog.get(name) == first()
        register_dataset(name, second, sigmas=[0.5] * NUM_KEYPOINTS)
        assert DatasetCatalog.get(name) == second()
        meta = MetadataCatalog.get(name)
        assert meta.keypoint_oks_sigmas == [0.5] * NUM_KEYPOINTS
        assert meta.keypoint_names[0] == "nose" and len(meta.keypoint_names) == NUM_KEYPOINTS
        with pytest.raises(ValueError, match="OKS sigmas"):
            register_dataset(name, second, sigmas=[1.0])
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_inference_dicts_have_no_annotations(root):
    df = read_keypoint_csv(root / SAMPLE)
    dicts = make_dataset_dicts(df, root / "images/test_imgs", with_annotations=False)
    assert [d["image_id"] for d in dicts] == [0, 1]
    assert all("annotations" not in d and (d["width"], d["height"]) == (W, H) for d in dicts)


# ------------------------------------------------------- implausible coordinates (10.7)


def test_points_far_outside_the_frame_are_errors_naming_line_and_column(root):
    from motion_keypoints.data.layout import FAR_MARGIN

    set_cell(root / "train_df.csv", 3, "left_ankle_x", "99999")
    set_cell(root / "train_df.csv", 4, "nose_y", str(-H * FAR_MARGIN - 1))
    set_cell(root / "train_df.csv", 2, "neck_x", str(W * (1 + FAR_MARGIN) - 1))  # near: warning
    with pytest.raises(DataError) as info:
        validate_data_root(root)
    assert_problem(info.value.problems, "train_df.csv", 3, "left_ankle_x", "implausibly far")
    assert_problem(info.value.problems, "train_df.csv", 4, "nose_y", "implausibly far")
    assert len(info.value.problems) == 2
    report = validate_data_root(root, allow_far_points=True)
    assert report.summary["train"]["points_outside"] == 3 and len(report.warnings) == 3


def test_check_data_far_points_exit_1_unless_allowed(root, capsys):
    set_cell(root / "train_df.csv", 3, "left_ankle_x", "99999")
    assert check_data_main(["--data-root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "line 3, column left_ankle_x" in err and "--allow-far-points" in err
    assert check_data_main(["--data-root", str(root), "--allow-far-points"]) == 0


# ------------------------------------------------------- the one table checker (issue 18)


def test_train_csv_is_read_by_the_one_table_checker(root):
    rows = read_rows(root / TRAIN)
    rows[0][1] = f" {rows[0][1]}"  # ' nose_x': one problem, not also an unexpected and a missing column
    rows[3][0] = rows[1][0]
    write_rows(root / TRAIN, rows)
    problems = problems_of(root)
    assert [str(p).split(": ", 1)[1] for p in problems if Path(p.file).name == TRAIN] == [
        "line 1, column nose_x: column name ' nose_x' has surrounding spaces: write it as 'nose_x' "
        "(names are compared exactly)",
        f"line 4, column image: duplicate image {rows[1][0]!r} (first at line 2): keep one row per "
        "image",
    ]


def test_check_data_returns_its_lines_and_prints_nothing(root, capsys):
    from motion_keypoints.data.check import check_data

    result = check_data(root)
    assert result.code == 0 and result.err == []
    assert "train: 4 rows" in "\n".join(result.out)
    set_cell(root / TRAIN, 3, "left_eye_x", "abc")
    result = check_data(root)
    assert result.code == 1 and result.out == []
    assert result.err[0].startswith("check_data: 1 problem(s)")
    assert result.err[1].endswith("train_df.csv: line 3, column left_eye_x: 'abc' is not a number")
    assert "check_data.py --data-root" in result.err[-1]
    assert capsys.readouterr() == ("", "")
