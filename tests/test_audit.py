"""The label audit (planted swaps and outliers are found and ranked first, clean data is not
flagged) and the label overrides of the data layer."""


import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from motion_keypoints.cli.check_data import main as check_data_main
from motion_keypoints.data.audit import (
    AUDIT_COLUMNS,
    audit,
    audit_keypoints,
    body_size,
    side_mismatch_scores,
    swap_scores,
)
from motion_keypoints.data.audit_report import format_findings, write_audit
from motion_keypoints.data.layout import load_train_df, validate_data_root
from motion_keypoints.io.outputs import editing
from motion_keypoints.io.problems import DataError
from motion_keypoints.io.tables import (
    OVERRIDE_COLUMNS,
    apply_overrides,
    keypoints_array,
    keypoints_frame,
    read_keypoint_csv,
    read_overrides,
    write_keypoint_csv,
)
from motion_keypoints.meta import FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES, keypoint_index
from motion_keypoints.utils import atomic_path, file_sha256

REPO = Path(__file__).resolve().parents[1]
LE, RE = keypoint_index("left_elbow"), keypoint_index("right_elbow")
LW = keypoint_index("left_wrist")
UPPER_BODY = ("shoulder", "elbow", "wrist", "palm")


def labels(root):
    df = read_keypoint_csv(Path(root) / "train_df.csv")
    return df, keypoints_array(df).copy()


def extent(kps):
    """The larger side of each pose's keypoint box: the body height of an upright person."""
    return np.ptp(kps, axis=1).max(axis=1)


def exchange(kps, i, parts):
    for part in parts:
        a, b = keypoint_index(f"left_{part}"), keypoint_index(f"right_{part}")
        kps[i, [a, b]] = kps[i, [b, a]]


def plant_errors(kps):
    """Swap the elbow labels of the 3 images whose elbows are farthest apart, move the left wrist
    of the next 2 images (in CSV order) 40% of the body height along the forearm, and mirror one
    more person entirely (consistent: not an error). Returns the changed array and the indices."""
    kps = kps.copy()
    separation = np.linalg.norm(kps[:, LE] - kps[:, RE], axis=1) / extent(kps)
    swapped = [int(i) for i in np.argsort(-separation)[:3]]
    rest = [i for i in range(len(kps)) if i not in swapped]
    moved, mirrored = rest[:2], rest[2]
    for i in swapped:
        exchange(kps, i, ["elbow"])
    for i in moved:
        forearm = kps[i, LW] - kps[i, LE]
        kps[i, LW] += 0.4 * extent(kps[i:i + 1])[0] * forearm / np.linalg.norm(forearm)
    kps[mirrored] = kps[mirrored][list(FLIP_INDEX)]
    return kps, swapped, moved, mirrored


def write_labels(root, df, kps):
    with editing(root):  # a deliberate edit of a (copied) data folder
        write_keypoint_csv(keypoints_frame(df["image"], kps), Path(root) / "train_df.csv")


@pytest.fixture
def planted(synthetic_data, tmp_path):
    """A copy of the synthetic data with planted errors, and what was planted."""
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    df, kps = labels(root)
    bad, swapped, moved, mirrored = plant_errors(kps)
    write_labels(root, df, bad)
    images = df["image"].tolist()
    return root, images, kps, swapped, moved, mirrored


# ------------------------------------------------------------------------------------ the audit


def test_clean_synthetic_data_is_not_flagged(synthetic_data):
    report = audit(synthetic_data)
    assert report.n_images == 24
    assert report.findings == [], format_findings(report)
    _, kps = labels(synthetic_data)
    assert swap_scores(kps).max() < 1.0
    assert side_mismatch_scores(kps).max() < 1.0


def test_a_mirrored_person_is_consistent(synthetic_data):
    df, kps = labels(synthetic_data)
    assert audit_keypoints(kps[:, list(FLIP_INDEX)], df["image"]) == []


def test_planted_swaps_and_outliers_are_found_and_ranked_first(planted):
    root, images, truth, swapped, moved, mirrored = planted
    report = audit(root)
    flagged = report.flagged_images()
    assert set(flagged) == {images[i] for i in swapped + moved}, format_findings(report)
    assert images[mirrored] not in flagged
    top = {f.image: f for f in report.findings[:len(swapped + moved)]}
    assert set(top) == set(flagged)
    for i in swapped:
        f = top[images[i]]
        assert (f.kind, set(f.keypoints)) == ("swap", {"left_elbow", "right_elbow"})
        assert f.line == i + 2  # header is line 1
        fix = {k: (x, y) for k, x, y in f.fix}
        assert fix == {"left_elbow": tuple(truth[i, LE]), "right_elbow": tuple(truth[i, RE])}
    for i in moved:
        f = top[images[i]]
        assert (f.kind, f.keypoints, f.line) == ("isolated_point", ("left_wrist",), i + 2)
        assert not f.fix
    assert [f.score for f in report.findings] == sorted((f.score for f in report.findings),
                                                        reverse=True)


def test_half_mirrored_body_is_a_side_mismatch(synthetic_data):
    df, kps = labels(synthetic_data)
    separation = np.minimum(*(np.linalg.norm(kps[:, keypoint_index(f"left_{p}")]
                                             - kps[:, keypoint_index(f"right_{p}")], axis=1)
                              for p in ("shoulder", "hip"))) / extent(kps)
    i = int(np.argmax(separation))  # the most frontal view
    exchange(kps, i, UPPER_BODY)
    findings = audit_keypoints(kps, df["image"])
    assert [(f.image, f.kind) for f in findings] == [(df["image"][i], "side_mismatch")]


@pytest.mark.parametrize("part", [a.removeprefix("left_") for a, _ in FLIP_PAIRS
                                  if a not in ("left_eye", "left_shoulder", "left_hip")])
def test_every_kind_of_limb_swap_is_found_where_the_pair_is_apart(synthetic_data, part):
    """Eyes sit too close to tell apart; swapped shoulders or hips are side mismatches."""
    df, kps = labels(synthetic_data)
    a, b = keypoint_index(f"left_{part}"), keypoint_index(f"right_{part}")
    i = int(np.argmax(np.linalg.norm(kps[:, a] - kps[:, b], axis=1) / extent(kps)))
    exchange(kps, i, [part])
    findings = audit_keypoints(kps, df["image"])
    assert [(f.image, f.kind, set(f.keypoints)) for f in findings] == [
        (df["image"][i], "swap", {f"left_{part}", f"right_{part}"})]


def test_degenerate_rows_are_reported_without_numeric_warnings(synthetic_data):
    df, kps = labels(synthetic_data)
    kps[0] = 7.0  # every keypoint at one place
    kps[1, keypoint_index("left_palm")] = kps[1, LW]  # a bone of length 0 is just short
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        findings = audit_keypoints(kps, df["image"])
    assert [(f.image, f.kind) for f in findings] == [(df["image"][0], "collapsed")]


def test_shapes_and_values_are_checked():
    kps = np.zeros((2, len(KEYPOINT_NAMES), 2))
    with pytest.raises(ValueError, match="shape"):
        body_size(kps[:, :3])
    kps[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        audit_keypoints(kps, ["a.jpg", "b.jpg"])
    with pytest.raises(ValueError, match="1 image names for 2"):
        audit_keypoints(np.ones_like(kps), ["a.jpg"])


def test_body_size_scales_with_the_person_and_ignores_one_wild_point(synthetic_data):
    _, kps = labels(synthetic_data)
    size = body_size(kps)
    centre = kps.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(body_size(centre + 2.5 * (kps - centre)), 2.5 * size)
    for i in range(len(kps)):
        wild = kps.copy()
        wild[i, LW] += 3 * size[i]
        assert abs(body_size(wild)[i] / size[i] - 1) < 0.15


# ---------------------------------------------------------------------------------- outputs


def test_write_audit_csv_pictures_and_suggested_fixes(planted, tmp_path):
    root, images, truth, swapped, moved, _ = planted
    out = tmp_path / "audit"
    stale = out / "pictures" / "999_old.jpg"
    with atomic_path(stale, kind="audit picture") as tmp:  # an earlier run's picture
        tmp.write_bytes(b"left over from an earlier run")
    report = audit(root)
    written = write_audit(report, out, progress=False)
    table = pd.read_csv(written["csv"])
    assert list(table.columns) == list(AUDIT_COLUMNS)
    assert table["rank"].tolist() == list(range(1, len(report.findings) + 1))
    assert table["image"].tolist() == [f.image for f in report.findings]
    assert table["line"].tolist() == [f.line for f in report.findings]
    pictures = sorted((out / "pictures").iterdir())
    assert len(pictures) == len(swapped + moved) and not stale.exists()
    for rel in table["picture"]:
        img = cv2.imread(str(out / rel))
        assert img is not None and img.shape[1] == 640  # small images are scaled up to 640
    fixes = pd.read_csv(written["overrides"])
    assert list(fixes.columns) == list(OVERRIDE_COLUMNS)
    assert len(fixes) == 2 * len(swapped)

    # Accepting the fixes: the swaps are gone, the moved wrists remain, train_df.csv untouched.
    before = file_sha256(root / "train_df.csv")
    shutil.copy(written["overrides"], root / "label_overrides.csv")
    again = audit(root)
    assert again.overrides_applied == 2 * len(swapped)
    assert set(again.flagged_images()) == {images[i] for i in moved}
    assert file_sha256(root / "train_df.csv") == before
    fixed = keypoints_array(load_train_df(root))
    for i in swapped:
        np.testing.assert_array_equal(fixed[i], truth[i])


def test_check_data_audit_cli(planted, tmp_path, capsys):
    root, images, _, swapped, moved, _ = planted
    out = tmp_path / "audit"
    code = check_data_main(["--data-root", str(root), "--check-images", "exists", "--audit",
                              "--audit-out", str(out), "--audit-top", "2"])
    stdout = capsys.readouterr().out
    assert code == 0  # findings are warnings
    assert "audit: 5 findings in 5 of 24 images (3 swap, 2 isolated_point)" in stdout
    assert len(re.findall(r"^ +\d+\. .*\(line \d+\) ", stdout, re.M)) == 2
    assert "... and 3 more (all in audit.csv)" in stdout
    assert str(out / "audit.csv") in stdout and (out / "audit.csv").is_file()

    (root / "label_overrides.csv").write_text(f"image,keypoint,x,y\n{images[0]},left_elbo,1,2\n")
    assert check_data_main(["--data-root", str(root), "--audit", "--audit-out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "label_overrides.csv: line 2, column keypoint: unknown keypoint 'left_elbo': did you " \
           "mean 'left_elbow'?" in err


@pytest.mark.slow
def test_check_data_script_audit(synthetic_data, tmp_path):
    proc = subprocess.run([sys.executable, "code/check_data.py", "--data-root", str(synthetic_data),
                           "--audit", "--audit-out", str(tmp_path / "audit")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "audit: 0 findings in 0 of 24 images" in proc.stdout
    assert pd.read_csv(tmp_path / "audit" / "audit.csv").empty


# -------------------------------------------------------------------------------- overrides


def write_overrides(root, text):
    path = Path(root) / "label_overrides.csv"
    path.write_text(text)
    return path


@pytest.fixture
def data_copy(synthetic_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data, root)
    return root


def test_overrides_replace_exactly_the_named_coordinates(data_copy):
    df, kps = labels(data_copy)
    name = df["image"][3]
    path = write_overrides(data_copy, f"image,keypoint,x,y\n{name},left_wrist,12.5,-3\n"
                                      f"{name},nose,1e2,7\n")
    out = apply_overrides(df, path)
    expected = kps.copy()
    expected[3, LW] = (12.5, -3.0)
    expected[3, keypoint_index("nose")] = (100.0, 7.0)
    np.testing.assert_array_equal(keypoints_array(out), expected)
    np.testing.assert_array_equal(keypoints_array(df), kps)  # the input frame is unchanged
    assert list(out.columns) == list(df.columns) and out["image"].tolist() == df["image"].tolist()
    np.testing.assert_array_equal(keypoints_array(load_train_df(data_copy)), expected)
    np.testing.assert_array_equal(keypoints_array(load_train_df(data_copy, overrides=False)),
                                  kps)
    read = read_overrides(path)
    assert read["line"].tolist() == [2, 3] and read["x"].tolist() == [12.5, 100.0]


def test_header_only_overrides_change_nothing(data_copy):
    df, kps = labels(data_copy)
    write_overrides(data_copy, "image,keypoint,x,y\n")
    np.testing.assert_array_equal(keypoints_array(load_train_df(data_copy)), kps)


BAD_OVERRIDES = [
    ("{img},left_elbo,1,2", 2, "keypoint", r"unknown keypoint 'left_elbo': did you mean 'left_elbow'"),
    ("{img},LeftElbow,1,2", 2, "keypoint", r"unknown keypoint 'LeftElbow'"),
    ("nowhere.jpg,nose,1,2", 2, "image", r"image 'nowhere.jpg' has no row in train_df\.csv"),
    ("{img},nose,abc,2", 2, "x", r"'abc' is not a number"),
    ("{img},nose,1,nan", 2, "y", r"NaN"),
    ("{img},nose,1", 2, None, r"3 fields: expected 4"),
    ("{img},nose,1,2\n{img},nose,3,4", 3, "keypoint", r"second override of nose .*first on line 2"),
]


@pytest.mark.parametrize("row, line, column, pattern", BAD_OVERRIDES)
def test_bad_overrides_are_named_by_line_and_column(data_copy, row, line, column, pattern):
    df, _ = labels(data_copy)
    path = write_overrides(data_copy, "image,keypoint,x,y\n" + row.format(img=df["image"][0]) + "\n")
    for call in (lambda: apply_overrides(df, path), lambda: load_train_df(data_copy),
                 lambda: validate_data_root(data_copy, check_images="exists")):
        with pytest.raises(DataError) as info:
            call()
        hits = [p for p in info.value.problems if p.row == line and p.column == column
                and re.search(pattern, p.message) and Path(p.file).name == path.name]
        assert hits, "\n".join(map(str, info.value.problems))


@pytest.mark.parametrize("text, pattern", [
    ("", r"the file is empty: expected the header 'image,keypoint,x,y'"),
    ("image,kp,x,y\n", r"line 1: header is 'image,kp,x,y': expected exactly 'image,keypoint,x,y'"),
])
def test_overrides_file_level_problems(data_copy, text, pattern):
    write_overrides(data_copy, text)
    with pytest.raises(DataError, match=pattern):
        load_train_df(data_copy)


def test_validate_counts_overrides_and_warns_about_points_they_move_outside(data_copy, capsys):
    df, _ = labels(data_copy)
    name = df["image"][5]
    write_overrides(data_copy, f"image,keypoint,x,y\n{name},nose,-40,10\n{name},neck,50,60\n")
    report = validate_data_root(data_copy, check_images="header")  # sizes for the warnings
    assert report.summary["train"]["overrides"] == 2
    outside = [w for w in report.warnings if w.row == 7 and "nose (-40, 10)" in w.message]
    assert outside, "\n".join(map(str, report.warnings))
    assert check_data_main(["--data-root", str(data_copy), "--check-images", "exists"]) == 0
    assert "label overrides: 2 keypoints corrected by label_overrides.csv" in capsys.readouterr().out
