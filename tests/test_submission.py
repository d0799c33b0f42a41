"""Writing the submission in sample_submission.csv's layout, and the checker's named problems."""

import numpy as np
import pandas as pd
import pytest

from motion_keypoints.cli.check_submission import main as check_submission_main
from motion_keypoints.io.problems import DataError
from motion_keypoints.meta import COORD_COLUMNS, CSV_COLUMNS, KEYPOINT_NAMES
from motion_keypoints.submission import check_submission, write_submission

K = len(KEYPOINT_NAMES)
IMAGES = [f"img_{i}.jpg" for i in (3, 1, 2, 0)]  # sample order is not sorted order


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample_submission.csv"
    df = pd.DataFrame(0, index=range(len(IMAGES)), columns=list(COORD_COLUMNS))
    df.insert(0, "image", IMAGES)
    df.to_csv(path, index=False)
    return path


def coords_for(images):
    """Distinct, recognisable values per image: image number * 1000 + column number."""
    return np.array([[int(i[4]) * 1000 + j + 0.25 for j in range(len(COORD_COLUMNS))] for i in images]
                    ).reshape(len(images), K, 2)


def test_write_follows_the_sample_rows_and_columns(sample, tmp_path):
    shuffled = ["img_0.jpg", "img_2.jpg", "img_3.jpg", "img_1.jpg"]
    out = write_submission(shuffled, coords_for(shuffled), sample, tmp_path / "sub" / "s.csv")
    df = pd.read_csv(out)
    assert list(df.columns) == list(CSV_COLUMNS)
    assert df["image"].tolist() == IMAGES
    np.testing.assert_array_equal(df[list(COORD_COLUMNS)].to_numpy(), coords_for(IMAGES).reshape(4, -1))
    assert check_submission(out, sample) == []
    assert [p.name for p in out.parent.iterdir()] == ["s.csv"]  # no temporary files left


def test_write_uses_the_sample_column_order(sample, tmp_path):
    df = pd.read_csv(sample)
    cols = list(df.columns)
    cols[1], cols[2] = cols[2], cols[1]
    df[cols].to_csv(sample, index=False)
    out = write_submission(IMAGES, coords_for(IMAGES), sample, tmp_path / "s.csv")
    written = pd.read_csv(out)
    assert list(written.columns) == cols
    assert written["nose_y"].iloc[0] == 3000 + 1 + 0.25


@pytest.mark.parametrize(
    "images, change, message",
    [
        (IMAGES[:3], None, "no prediction for image 'img_0.jpg'"),
        (IMAGES + ["img_9.jpg"], None, "predicted image 'img_9.jpg' is not in"),
        (IMAGES[:3] + ["img_3.jpg"], None, "image 'img_3.jpg' predicted twice"),
        (IMAGES, (1, "left_eye_x", np.nan), "column left_eye_x: non-finite value nan for image 'img_1.jpg'"),
        (IMAGES, (2, "nose_y", np.inf), "column nose_y: non-finite value inf for image 'img_2.jpg'"),
    ],
)
def test_write_refuses_bad_predictions_and_writes_nothing(sample, tmp_path, images, change, message):
    coords = coords_for(images).reshape(len(images), -1)
    if change:
        i, column, value = change
        coords[i, COORD_COLUMNS.index(column)] = value
    coords = coords.reshape(len(images), K, 2)
    out = tmp_path / "s.csv"
    out.write_text("old")
    with pytest.raises(DataError, match=message):
        write_submission(images, coords, sample, out)
    assert out.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "sample_submission.csv"]


def good_lines(sample, tmp_path):
    out = write_submission(IMAGES, coords_for(IMAGES), sample, tmp_path / "good.csv")
    return out.read_text().splitlines()


def edit_cell(lines, line_no, column, value):
    header = lines[0].split(",")
    fields = lines[line_no - 1].split(",")
    fields[header.index(column)] = value
    lines[line_no - 1] = ",".join(fields)
    return lines


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda ls: ls[:3] + ls[4:], "column image: missing image 'img_2.jpg' (line 4 of sample_submission.csv)"),
        (lambda ls: ls + [ls[2]], "line 6, column image: duplicate image 'img_1.jpg' (first at line 3)"),
        (lambda ls: ls + [ls[2].replace("img_1", "img_7")],
         "line 6, column image: image 'img_7.jpg' is not in sample_submission.csv"),
        (lambda ls: [ls[0]] + [ls[2], ls[1]] + ls[3:],
         "line 2, column image: row order: image 'img_1.jpg' where sample_submission.csv has "
         "'img_3.jpg' (2 rows out of place)"),
        (lambda ls: edit_cell(ls, 3, "nose_y", "abc"), "line 3, column nose_y: 'abc' is not a number"),
        (lambda ls: edit_cell(ls, 4, "left_eye_x", "nan"), "line 4, column left_eye_x: 'nan' is not a coordinate (NaN/missing)"),
        (lambda ls: edit_cell(ls, 5, "nose_x", "-inf"), "line 5, column nose_x: '-inf' is not a finite coordinate"),
        (lambda ls: edit_cell(ls, 2, "right_instep_y", ""), "line 2, column right_instep_y: missing value"),
        (lambda ls: ls[:2] + [ls[2] + ",7"] + ls[3:], f"line 3: {len(CSV_COLUMNS) + 1} fields but the header has {len(CSV_COLUMNS)}"),
        (lambda ls: [",".join(x.split(",")[:-1]) for x in ls],
         f"line 1, column {CSV_COLUMNS[-1]}: missing column (column {len(CSV_COLUMNS)} of "
         "sample_submission.csv)"),
        (lambda ls: [x + ",1" for x in ls[:1]] + [x + ",1" for x in ls[1:]],
         "line 1, column 1: unexpected column: not in sample_submission.csv"),
        (lambda ls: [",".join([f[0], f[2], f[1], *f[3:]]) for f in (x.split(",") for x in ls)],
         "line 1, column nose_y: column 2 is 'nose_y' but sample_submission.csv has 'nose_x' there"),
        (lambda ls: [ls[0].replace("nose_y", "nose_x")] + ls[1:],
         "line 1, column nose_x: column appears twice (columns 2 and 3)"),
        (lambda ls: [], "the file is empty: expected a header line"),
    ],
)
def test_checker_names_each_problem(sample, tmp_path, edit, expected):
    path = tmp_path / "sub.csv"
    path.write_text("\n".join(edit(good_lines(sample, tmp_path))) + "\n")
    problems = [str(p) for p in check_submission(path, sample)]
    assert any(p.startswith(f"{path}: ") and expected in p for p in problems), problems


def test_checker_cli(sample, tmp_path, capsys):
    root = sample.parent
    good = tmp_path / "good.csv"
    good.write_text("\n".join(good_lines(sample, tmp_path)) + "\n")
    assert check_submission_main(["--data-root", str(root), str(good)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {good}: 4 images")
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(edit_cell(good_lines(sample, tmp_path), 2, "nose_x", "x")) + "\n")
    assert check_submission_main(["--data-root", str(root), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: line 2, column nose_x: 'x' is not a number" in out
    assert out.rstrip().endswith(f"INVALID: {bad}: 1 problem(s)")
    missing = tmp_path / "nothing.csv"
    assert check_submission_main(["--data-root", str(root), str(missing)]) == 1
    assert "file not found" in capsys.readouterr().out


# ------------------------------------------------------- strict where the grader is (10.9)


def test_surrounding_spaces_in_header_or_image_are_errors(sample, tmp_path):
    lines = good_lines(sample, tmp_path)
    path = tmp_path / "spaces.csv"
    header = lines[0].split(",")
    header[1] = f" {header[1]} "
    lines[0] = ",".join(header)
    lines[2] = lines[2].replace("img_1.jpg", "img_1.jpg ", 1)
    path.write_text("\n".join(lines) + "\n")
    problems = [str(p) for p in check_submission(path, sample)]
    assert any(f"line 1, column {COORD_COLUMNS[0]}: column name ' {COORD_COLUMNS[0]} ' has "
               "surrounding spaces" in p for p in problems), problems
    assert any("line 3, column image: image name 'img_1.jpg ' has surrounding spaces" in p
               for p in problems), problems


def test_all_zero_submission_is_a_warning(sample, tmp_path, capsys):
    warnings = []
    assert check_submission(sample, sample, warnings) == []
    assert len(warnings) == 1 and "every coordinate is 0" in str(warnings[0])
    assert check_submission_main(["--data-root", str(sample.parent), str(sample)]) == 0
    captured = capsys.readouterr()
    assert "warning: " in captured.err and "placeholder" in captured.err
    assert captured.out.startswith(f"OK: {sample}")


def test_coordinates_outside_the_image_are_warnings(sample, tmp_path, tmp_path_factory, capsys):
    import cv2

    images = tmp_path / "images" / "test_imgs"
    images.mkdir(parents=True)
    for name in IMAGES:
        cv2.imwrite(str(images / name), np.zeros((40, 60, 3), np.uint8))
    coords = np.full((len(IMAGES), K, 2), 10.0)
    coords[1, 0, 0] = 61.0  # img_1.jpg nose_x, beyond the 60 px width
    coords[2, 1, 1] = -1.0  # img_2.jpg left_eye_y
    out = write_submission(IMAGES, coords, sample,  # never into the data folder tmp_path
                           tmp_path_factory.mktemp("out") / "sub.csv")
    warnings = []
    assert check_submission(out, sample, warnings, images) == []
    text = [str(w) for w in warnings]
    assert len(text) == 2, text
    assert f"{out}: line 3, column {COORD_COLUMNS[0]}: 61 is outside the 60x40 image 'img_1.jpg'" \
        in text[0]
    assert check_submission_main(["--data-root", str(tmp_path), str(out)]) == 0
    assert capsys.readouterr().err.count("warning: ") == 2


# ------------------------------------------------------- the one table checker (issue 18)


def test_checker_is_the_tables_schema_with_the_sample_as_universe(sample, tmp_path):
    from motion_keypoints.io.schema import check_table
    from motion_keypoints.submission import submission_schema

    schema = submission_schema(sample)
    assert schema.columns == CSV_COLUMNS and schema.universe == tuple(IMAGES) and schema.row_order
    lines = good_lines(sample, tmp_path)
    path = tmp_path / "sub.csv"
    path.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:], lines[1]]) + "\n")
    direct: list = []
    check_table(path, schema, direct)
    assert [str(p) for p in check_submission(path, sample)] == [str(p) for p in direct]
    assert len(direct) == 2, direct  # the duplicate, then the row order


def test_image_with_spaces_is_one_problem_not_also_missing(sample, tmp_path):
    lines = good_lines(sample, tmp_path)
    lines[2] = lines[2].replace("img_1.jpg", " img_1.jpg", 1)
    path = tmp_path / "spaces.csv"
    path.write_text("\n".join(lines) + "\n")
    assert [str(p) for p in check_submission(path, sample)] == [
        f"{path}: line 3, column image: image name ' img_1.jpg' has surrounding spaces: write it "
        "as 'img_1.jpg'"]
