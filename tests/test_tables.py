"""The one table checker (io/schema.py): each rule of a TableSchema fails with one line naming
file, line and column, and the data reader, the predictions reader and check_submission all go
through it (the same bad file gets the same wording from each)."""

import numpy as np
import pandas as pd
import pytest

from motion_keypoints.data.layout import load_train_df
from motion_keypoints.io.predictions import PREDICTION_COLUMNS, prediction_frame, read_predictions
from motion_keypoints.io.problems import DataError
from motion_keypoints.io.schema import TableSchema, check_table, read_table
from motion_keypoints.io.tables import read_numeric_csv
from motion_keypoints.meta import COORD_COLUMNS, CSV_COLUMNS, NUM_KEYPOINTS
from motion_keypoints.submission import check_submission

COLUMNS = ("image", "a_x", "a_y", "b_x", "b_y")
IMAGES = ("i2.jpg", "i0.jpg", "i1.jpg")  # a universe not in sorted order
SCHEMA = TableSchema(COLUMNS, source="the layout", universe=IMAGES, universe_source="sample.csv",
                     row_order=True)
GOOD = ["image,a_x,a_y,b_x,b_y", "i2.jpg,1,2,3,4", "i0.jpg,5,6,7,8", "i1.jpg,9,10,11,12"]


def problems_of(tmp_path, lines, schema=SCHEMA):
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    problems = []
    table = check_table(path, schema, problems)
    for p in problems:  # every problem is one line that names the file
        assert "\n" not in str(p) and str(p).startswith(f"{path}: "), str(p)
    return [str(p)[len(f"{path}: "):] for p in problems], table


def swap(line, i, j):
    f = line.split(",")
    f[i], f[j] = f[j], f[i]
    return ",".join(f)


def test_a_good_table_passes_and_is_read(tmp_path):
    problems, table = problems_of(tmp_path, GOOD)
    assert problems == []
    assert table.images == list(IMAGES) and table.lines == [2, 3, 4]
    np.testing.assert_array_equal(table.values, np.arange(1, 13).reshape(3, 4))


@pytest.mark.parametrize("edit, expected", [
    (lambda ls: [",".join(x.split(",")[:2] + x.split(",")[3:]) for x in ls],
     "line 1, column a_y: missing column (column 3 of the layout): add it after 'a_x'"),
    (lambda ls: [swap(x, 1, 3) for x in ls],
     "line 1, column b_x: column 2 is 'b_x' but the layout has 'a_x' there (out of place at "
     "position 2: it belongs after 'a_y')"),
    (lambda ls: [ls[0] + ",c"] + [x + ",1" for x in ls[1:]],
     "line 1, column c: unexpected column: not in the layout (unexpected column at position 6): "
     "remove it"),
    (lambda ls: [ls[0].replace("a_y", "a_x")] + ls[1:],
     "line 1, column a_x: column appears twice (columns 2 and 3): keep one"),
    (lambda ls: [ls[0].replace("b_x", " b_x")] + ls[1:],
     "line 1, column b_x: column name ' b_x' has surrounding spaces: write it as 'b_x'"),
    (lambda ls: ls + [ls[2]],
     "line 5, column image: duplicate image 'i0.jpg' (first at line 3): keep one row per image"),
    (lambda ls: ls[:3] + [ls[3].replace("10", "inf")],
     "line 4, column a_y: 'inf' is not a finite coordinate"),
    (lambda ls: ls[:3] + [ls[3].replace("10", "nan")],
     "line 4, column a_y: 'nan' is not a coordinate (NaN/missing)"),
    (lambda ls: ls[:3] + [ls[3].replace("10", "ten")], "line 4, column a_y: 'ten' is not a number"),
    (lambda ls: ls + ["i9.jpg,1,2,3,4"],
     "line 5, column image: image 'i9.jpg' is not in sample.csv: remove its row"),
    (lambda ls: ls[:3], "column image: missing image 'i1.jpg' (line 4 of sample.csv): add its row"),
    (lambda ls: [ls[0], ls[2], ls[1], ls[3]],
     "line 2, column image: row order: image 'i0.jpg' where sample.csv has 'i2.jpg' (2 rows out "
     "of place): sort the rows in sample.csv order"),
    (lambda ls: ls[:2] + [ls[2] + ",7"] + ls[3:],
     "line 3: 6 fields but the header has 5: check for stray or missing commas"),
    (lambda ls: ls[:2] + [ls[2].replace("i0.jpg", "../i0.jpg")] + ls[3:],
     "line 3, column image: image name '../i0.jpg' climbs out of the image folder"),
])
def test_each_rule_fails_with_its_one_line_message(tmp_path, edit, expected):
    problems, _ = problems_of(tmp_path, edit(list(GOOD)))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_wrong_header_also_names_the_expected_order(tmp_path):
    problems, _ = problems_of(tmp_path, [swap(x, 1, 3) for x in GOOD])
    assert problems[-1] == "line 1: expected columns, in this order: image, a_x, a_y, b_x, b_y"


def test_spaces_around_an_image_are_one_problem_not_also_a_missing_image(tmp_path):
    problems, _ = problems_of(tmp_path, GOOD[:2] + [GOOD[2].replace("i0.jpg", " i0.jpg")] + GOOD[3:])
    assert problems == ["line 3, column image: image name ' i0.jpg' has surrounding spaces: write "
                        "it as 'i0.jpg'"]


def test_a_header_without_rows_fails_only_where_rows_are_needed(tmp_path):
    assert problems_of(tmp_path, GOOD[:1], TableSchema(COLUMNS))[0] == [
        "the file has a header but no data rows: expected one row per image"]
    assert problems_of(tmp_path, GOOD[:1], TableSchema(COLUMNS, need_rows=False))[0] == []


def test_a_lenient_schema_ignores_other_columns_and_reads_missing_values_as_nan(tmp_path):
    lenient = TableSchema(("image", "b_x", "a_x"), ordered=False, exact_names=False,
                          missing_values=True, source="this reader")
    lines = [GOOD[0].replace("b_x", " b_x "), GOOD[1].replace(",3,", ",,"), GOOD[2].replace("5", "nan")]
    problems, table = problems_of(tmp_path, lines, lenient)
    assert problems == []
    np.testing.assert_array_equal(table.values, [[np.nan, 1], [7, np.nan]])
    problems, _ = problems_of(tmp_path, [GOOD[0].replace("a_x", "z"), GOOD[1].replace("3", "-inf")],
                              lenient)
    assert problems == ["line 1, column a_x: missing column (required by this reader): add it",
                        "line 2, column b_x: '-inf' is not a finite coordinate"]


def test_file_level_problems_are_one_line_each(tmp_path):
    with pytest.raises(DataError, match=r"CSV not found: expected the file at .*nowhere\.csv"):
        read_table(tmp_path / "nowhere.csv", SCHEMA)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="the file is empty"):
        read_table(tmp_path / "empty.csv", SCHEMA)


# ------------------------------------------------------------ every reader goes through it


def predictions_file(path, images):
    """A predictions CSV as the predictors write it (every person detected)."""
    rng = np.random.default_rng(0)
    persons = [{"keypoints": rng.uniform(5, 50, (NUM_KEYPOINTS, 2)),
                "keypoint_scores": np.ones(NUM_KEYPOINTS), "box": np.array([1.0, 1, 60, 40]),
                "score": 0.9} for _ in images]
    prediction_frame(images, persons, [(64, 48)] * len(images)).to_csv(path, index=False)
    return path


def sample_file(path, images):
    df = pd.DataFrame(0, index=range(len(images)), columns=list(COORD_COLUMNS))
    df.insert(0, "image", images)
    df.to_csv(path, index=False)
    return path


def messages(problems, path):
    """``(line, column) -> message`` of the row-level problems of ``path``."""
    return {(p.row, p.column): p.message for p in problems
            if str(p.file) == str(path) and p.row not in (None, 1)}


def three_readers(root, bad):
    """The problems of ``bad`` (root/train_df.csv) from the data layer, the predictions reader
    and check_submission."""
    out = []
    for read in (lambda: load_train_df(root, overrides=False), lambda: read_predictions(bad)):
        with pytest.raises(DataError) as info:
            read()
        out.append(info.value.problems)
    out.append(check_submission(bad, root / "sample_submission.csv"))
    return out


def test_the_same_bad_rows_get_the_same_words_from_every_reader(tmp_path):
    images = ["a.jpg", "b.jpg", "c.jpg"]
    sample_file(tmp_path / "sample_submission.csv", images)
    bad = predictions_file(tmp_path / "train_df.csv", images)
    df = pd.read_csv(bad, dtype={"image": str}, keep_default_na=False)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True).astype(str)  # a.jpg again, line 5
    df.loc[1, "nose_x"] = "abc"
    df.loc[2, "left_eye_y"] = "inf"
    df.to_csv(bad, index=False)
    data, predictions, submission = (messages(p, bad) for p in three_readers(tmp_path, bad))
    expected = {
        (3, "nose_x"): "'abc' is not a number",
        (4, "left_eye_y"): "'inf' is not a finite coordinate",
        (5, "image"): "duplicate image 'a.jpg' (first at line 2): keep one row per image",
    }
    assert data == expected
    assert predictions == expected
    assert submission == expected


def test_the_same_bad_header_gets_the_same_words_from_every_reader(tmp_path):
    images = ["a.jpg", "b.jpg"]
    sample_file(tmp_path / "sample_submission.csv", images)
    bad = predictions_file(tmp_path / "train_df.csv", images)
    lines = bad.read_text().splitlines()
    bad.write_text("\n".join([lines[0].replace("nose_y", "nose_x", 1)] + lines[1:]) + "\n")
    twice = "column appears twice (columns 2 and 3): keep one"
    for problems in three_readers(tmp_path, bad):
        assert [p.message for p in problems if p.row == 1 and p.column == "nose_x"] == [twice]
        missing = [p.message for p in problems if p.row == 1 and p.column == "nose_y"]
        assert len(missing) == 1 and missing[0].startswith("missing column ")


def test_numeric_reader_and_predictions_reader_accept_the_kits_predictions(tmp_path):
    path = predictions_file(tmp_path / "p.csv", ["a.jpg", "b.jpg"])
    images, lines, values = read_numeric_csv(path, COORD_COLUMNS)
    assert images == ["a.jpg", "b.jpg"] and lines == [2, 3] and values.shape == (2, 2 * NUM_KEYPOINTS)
    assert read_predictions(path)["images"] == images
    assert list(pd.read_csv(path).columns) == list(PREDICTION_COLUMNS)
    assert tuple(PREDICTION_COLUMNS[:len(CSV_COLUMNS)]) == CSV_COLUMNS
