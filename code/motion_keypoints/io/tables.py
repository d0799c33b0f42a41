"""The one CSV reader and cell parser of the kit, the keypoint CSVs (read strictly, written
exactly) and ``label_overrides.csv``.

Every problem is reported as a :class:`Problem` naming file, line (1-based, the header is line 1)
and column; :class:`DataError` collects all of them before anything is raised.
"""
from __future__ import annotations

import csv
import difflib
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..meta import COORD_COLUMNS, CSV_COLUMNS, KEYPOINT_NAMES, NUM_KEYPOINTS
from ..utils import PathLike, atomic_path
from .images import check_table_images, image_level
from .problems import DataError, Problem

#: Columns of ``label_overrides.csv``: one corrected keypoint per row.
OVERRIDE_COLUMNS = ("image", "keypoint", "x", "y")

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAN_WORDS = {"nan", "na", "n/a", "null", "none", "<na>"}
_INF_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}

@dataclass
class Table:
    path: Path
    df: pd.DataFrame | None = None  # None unless the whole file is valid
    lines: List[int] = field(default_factory=list)  # CSV line of each row of df
    images: Dict[str, int] = field(default_factory=dict)  # valid image name -> its CSV line
    sizes: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # image -> (width, height)


# ----------------------------------------------------------------------------------- CSV reading


def _expected_order_text(expected: Sequence[str]) -> str:
    base = len(CSV_COLUMNS)
    text = (
        "expected columns, in this order: image, then NAME_x, NAME_y for each keypoint in this "
        f"order: {', '.join(KEYPOINT_NAMES)} ({base} columns"
    )
    if tuple(expected[:base]) == CSV_COLUMNS and len(expected) > base:
        return text + f"), then {', '.join(expected[base:])}"
    return text + ")"


def _header_problems(path: Path, header: List[str], expected: Sequence[str], line: int) -> List[Problem]:
    """Missing, extra, duplicated and out-of-place columns, each named."""
    if header == list(expected):
        return []
    if len(header) == 1 and len(expected) > 1:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in header[0]:
                return [
                    Problem(path, line, None, f"the header is one column separated by {what}: "
                            "save the file comma-separated")
                ]
    problems: List[Problem] = []
    known = set(expected)
    first_pos: Dict[str, int] = {}
    for pos, col in enumerate(header, 1):
        if col in first_pos:
            problems.append(Problem(path, line, col, f"column appears twice (positions "
                                    f"{first_pos[col]} and {pos}): keep one"))
        else:
            first_pos[col] = pos
    missing = [c for c in expected if c not in first_pos]
    for pos, col in enumerate(header, 1):
        if col in known:
            continue
        close = difflib.get_close_matches(col.strip(), missing, n=1)
        if pos == 1 and col in ("", "Unnamed: 0"):
            hint = "it looks like a saved pandas index: write the CSV with index=False"
        elif close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "remove it"
        problems.append(Problem(path, line, col if col.strip() else f"{pos} (unnamed)",
                                f"unexpected column at position {pos}: {hint}"))
    for col in missing:
        i = expected.index(col)
        after = f"after {expected[i - 1]!r}" if i else "first"
        problems.append(Problem(path, line, col, f"missing column (expected at position {i + 1}, "
                                f"{after})"))
    present = [c for c in first_pos if c in known]
    present_expected = [c for c in expected if c in first_pos]
    if present != present_expected:
        # Name the fewest columns that explain the order: a swap moves two columns, a single
        # moved column shifts all others by one.
        swapped = {a for a, b in zip(present, present_expected) if a != b}
        matcher = difflib.SequenceMatcher(None, present_expected, present, autojunk=False)
        moved = set(present) - {c for block in matcher.get_matching_blocks()
                                for c in present[block.b:block.b + block.size]}
        out_of_place = swapped if len(swapped) <= len(moved) else moved
        for col in present:
            if col in out_of_place:
                i = expected.index(col)
                after = f"after {expected[i - 1]!r}" if i else "first"
                problems.append(Problem(path, line, col, f"column out of place at position "
                                        f"{first_pos[col]}: it belongs {after}"))
    problems.append(Problem(path, line, None, _expected_order_text(expected)))
    return problems


def _image_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name inside the image folder (None when it is)."""
    if not name:
        return "empty image name: every row needs the image's file name"
    if name != name.strip():
        return f"image name {name!r} has leading or trailing spaces: remove them"
    if "\x00" in name:
        return f"image name {name!r} contains a NUL character"
    if os.path.isabs(name) or PureWindowsPath(name).anchor:
        return (f"image name {name!r} is an absolute path: the CSV must hold plain file names "
                "inside the image folder")
    parts = re.split(r"[\\/]", name)
    if ".." in parts:
        return (f"image name {name!r} climbs out of the image folder with '..': the CSV must hold "
                "plain file names inside the image folder")
    if len(parts) > 1 or name == ".":
        return (f"image name {name!r} names a subfolder: the CSV must hold plain file names "
                "inside the image folder")
    return None


def coordinate_problem(text: str) -> str | None:
    value = text.strip()
    if not value:
        return "missing value: every keypoint needs an x and a y"
    if value.lower() in _NAN_WORDS:
        return f"{value!r} is not a coordinate (NaN/missing): every keypoint needs an x and a y"
    if value.lower() in _INF_WORDS:
        return f"{value!r} is not a finite coordinate"
    if not _NUMBER.fullmatch(value):
        return f"{value!r} is not a number"
    if not np.isfinite(float(value)):
        return f"{value!r} is not a finite coordinate"
    return None


def read_records(path: Path, problems: List[Problem]):
    """Yield ``(line, fields)`` for the non-blank records of a CSV; file-level problems go to
    ``problems``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, None, None, f"not UTF-8 text (byte {exc.start}): save the "
                                "CSV as UTF-8"))
        return
    if not text.strip():
        problems.append(Problem(path, None, None, "the file is empty: expected a header line "
                                "'image,nose_x,nose_y,...' and one row per image"))
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 1
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield line, fields
            line = reader.line_num + 1
    except csv.Error as exc:
        problems.append(Problem(path, line, None, f"cannot parse CSV ({exc}): fix the quoting"))


def parse_csv(path: PathLike, expected: Sequence[str], problems: List[Problem]) -> Table:
    """Parse and check a keypoint CSV strictly; every problem goes to ``problems``."""
    path = Path(path)
    table = Table(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        problems.append(Problem(path, None, None, f"CSV {what}: expected the file at {path}"))
        return table
    start = len(problems)
    records = read_records(path, problems)
    header_line, header = next(records, (None, None))
    if header is None:
        return table
    problems.extend(_header_problems(path, header, expected, header_line))
    index = {}
    for i, col in enumerate(header):
        index.setdefault(col, i)
    if "image" not in index:
        return table
    coord_cols = [c for c in COORD_COLUMNS if c in index]
    extra_cols = [c for c in expected[len(CSV_COLUMNS):] if c in index]
    images: List[str] = []
    coords: List[List[float]] = []
    extras: List[List[str]] = []
    first_line = table.images
    n_records = 0
    for line, fields in records:
        n_records += 1
        if len(fields) != len(header):
            problems.append(Problem(path, line, None, f"{len(fields)} fields but the header has "
                                    f"{len(header)}: check for stray or missing commas"))
            continue
        name = fields[index["image"]]
        name_problem = _image_name_problem(name)
        if name_problem:
            problems.append(Problem(path, line, "image", name_problem))
        elif name in first_line:
            problems.append(Problem(path, line, "image", f"duplicate image {name!r} (first listed "
                                    f"on line {first_line[name]}): keep one row per image"))
        else:
            first_line[name] = line
        row = []
        for col in coord_cols:
            cell = fields[index[col]]
            bad = coordinate_problem(cell)
            if bad:
                problems.append(Problem(path, line, col, bad))
                row.append(np.nan)
            else:
                row.append(float(cell))
        images.append(name)
        coords.append(row)
        extras.append([fields[index[c]] for c in extra_cols])
        table.lines.append(line)
    if not n_records:
        problems.append(Problem(path, None, None, "the file has a header but no data rows: "
                                "expected one row per image"))
    if len(problems) == start and images:
        extra = {c: [r[j] for r in extras] for j, c in enumerate(extra_cols)}
        table.df = keypoints_frame(images, np.asarray(coords, np.float64).reshape(-1, NUM_KEYPOINTS, 2),
                                   extra=extra or None)
    return table



# ------------------------------------------------------------------------------------ public API


def read_keypoint_csv(path: PathLike, image_dir: PathLike | None = None,
                      extra_columns: Sequence[str] = (),
                      check_images: Union[bool, str] = False) -> pd.DataFrame:
    """Read a keypoint CSV strictly: columns exactly ``CSV_COLUMNS`` (+ ``extra_columns``, read as
    strings), coordinates finite float64, image names plain and unique. With ``image_dir``, every
    image must be there (``check_images``: False/``"exists"``, ``"header"``, True/``"decode"``).
    Raises :class:`DataError` listing every problem (file, line, column)."""
    level = image_level(check_images)
    problems: List[Problem] = []
    table = parse_csv(path, CSV_COLUMNS + tuple(extra_columns), problems)
    if image_dir is not None and table.images:
        check_table_images(table, Path(image_dir), level, problems, [], {})
    if problems:
        raise DataError(problems)
    return table.df


def keypoints_array(df: pd.DataFrame) -> np.ndarray:
    """The coordinates of a keypoint frame as a float64 ``(N, K, 2)`` array."""
    missing = [c for c in COORD_COLUMNS if c not in df.columns]
    if missing:
        raise KeyError(f"keypoint columns missing from the frame: {', '.join(missing)}")
    return df[list(COORD_COLUMNS)].to_numpy(np.float64).reshape(len(df), NUM_KEYPOINTS, 2)


def keypoints_frame(images: Sequence[str], coords, extra=None) -> pd.DataFrame:
    """A frame in ``CSV_COLUMNS`` order from image names and ``(N, K, 2)`` coordinates;
    ``extra`` (a mapping or frame of columns) is appended at the end."""
    coords = np.asarray(coords, np.float64)
    images = [str(n) for n in images]
    if coords.shape != (len(images), NUM_KEYPOINTS, 2):
        raise ValueError(f"coords must have shape ({len(images)}, {NUM_KEYPOINTS}, 2) for "
                         f"{len(images)} images, got {coords.shape}")
    df = pd.DataFrame(coords.reshape(len(images), len(COORD_COLUMNS)), columns=list(COORD_COLUMNS))
    df.insert(0, "image", pd.Series(images, dtype="str"))
    if extra is not None:
        extra = pd.DataFrame(extra).reset_index(drop=True)
        clash = [c for c in extra.columns if c in df.columns]
        if clash or len(extra) != len(df):
            raise ValueError(f"extra columns must be new ({clash or 'ok'}) and have {len(df)} rows "
                             f"(got {len(extra)})")
        df = pd.concat([df, extra], axis=1)
    return df


def _cell_text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def write_keypoint_csv(df: pd.DataFrame, path: PathLike, kind: str = "keypoint table") -> None:
    """Write a keypoint frame atomically; floats as ``repr`` so reading back gives identical
    values. Refuses frames whose columns do not start with ``CSV_COLUMNS`` or whose coordinates
    are not finite."""
    path = Path(path)
    cols = list(df.columns)
    if tuple(cols[:len(CSV_COLUMNS)]) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in cols]
        raise DataError([Problem(path, 1, None, "refusing to write: the frame's columns must start "
                                 f"with CSV_COLUMNS in order (missing: {', '.join(missing) or 'none'})")])
    xy = keypoints_array(df).reshape(len(df), len(COORD_COLUMNS))
    bad = np.argwhere(~np.isfinite(xy))
    if len(bad):
        raise DataError([Problem(path, int(r) + 2, COORD_COLUMNS[c], "refusing to write a "
                                 "non-finite coordinate") for r, c in bad])
    rows = zip(df["image"].astype(str).tolist(), xy.tolist(),
               *(df[c].tolist() for c in cols[len(CSV_COLUMNS):]))
    with atomic_path(path, kind=kind) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(cols)
        for image, values, *extra in rows:
            writer.writerow([image, *map(repr, values), *map(_cell_text, extra)])


def image_lines(path: PathLike) -> Dict[str, int]:
    """``image -> line`` (1-based, header = 1) of a valid keypoint CSV; raises :class:`DataError`
    like :func:`read_keypoint_csv`."""
    problems: List[Problem] = []
    table = parse_csv(path, CSV_COLUMNS, problems)
    if problems:
        raise DataError(problems)
    return dict(table.images)


def parse_overrides(path: Path, images: Dict[str, int] | None, labels: str,
                     problems: List[Problem]) -> pd.DataFrame | None:
    """The rows of an overrides CSV with their ``line``; every problem goes to ``problems``."""
    if not path.is_file():
        problems.append(Problem(path, None, None, "overrides CSV not found"))
        return None
    start = len(problems)
    if not path.read_bytes().strip():
        problems.append(Problem(path, None, None, "the file is empty: expected the header "
                                f"'{','.join(OVERRIDE_COLUMNS)}' and one row per corrected "
                                "keypoint"))
        return None
    records = read_records(path, problems)
    header_line, header = next(records, (None, None))
    if header is None:
        return None
    if [c.strip() for c in header] != list(OVERRIDE_COLUMNS):
        problems.append(Problem(path, header_line, None, f"header is {','.join(header)!r}: "
                                f"expected exactly {','.join(OVERRIDE_COLUMNS)!r} (one corrected "
                                "keypoint per row; keypoint is a name such as left_elbow)"))
        return None
    rows, first = [], {}
    for line, fields in records:
        if len(fields) != len(OVERRIDE_COLUMNS):
            problems.append(Problem(path, line, None, f"{len(fields)} fields: expected "
                                    f"{len(OVERRIDE_COLUMNS)} ({', '.join(OVERRIDE_COLUMNS)})"))
            continue
        name, keypoint, x, y = fields
        bad = _image_name_problem(name)
        if bad:
            problems.append(Problem(path, line, "image", bad))
        elif images is not None and name not in images:
            problems.append(Problem(path, line, "image", f"image {name!r} has no row in "
                                    f"{labels}: overrides can only correct labelled images"))
        if keypoint not in KEYPOINT_NAMES:
            close = difflib.get_close_matches(keypoint.strip(), KEYPOINT_NAMES, n=1)
            hint = f"did you mean {close[0]!r}?" if close else \
                f"use one of {', '.join(KEYPOINT_NAMES)}"
            problems.append(Problem(path, line, "keypoint",
                                    f"unknown keypoint {keypoint!r}: {hint}"))
        for col, cell in (("x", x), ("y", y)):
            bad = coordinate_problem(cell)
            if bad:
                problems.append(Problem(path, line, col, bad))
        key = (name, keypoint)
        if key in first:
            problems.append(Problem(path, line, "keypoint", f"second override of {keypoint} in "
                                    f"{name!r} (first on line {first[key]}): keep one"))
        first.setdefault(key, line)
        rows.append((name, keypoint, x, y, line))
    if len(problems) > start:
        return None
    df = pd.DataFrame(rows, columns=[*OVERRIDE_COLUMNS, "line"])
    for col in ("x", "y"):
        df[col] = [float(v) for v in df[col]]
    return df.astype({"image": "str", "keypoint": "str", "line": np.int64})


def read_overrides(path: PathLike, images: Sequence[str] | None = None,
                   labels: str = "train_df.csv") -> pd.DataFrame:
    """Read and check a ``label_overrides.csv``: columns ``image, keypoint, x, y`` (keypoint a
    name from ``KEYPOINT_NAMES``), finite coordinates, each (image, keypoint) at most once and,
    with ``images``, every image among them. Returns the rows plus their CSV ``line``; raises
    :class:`DataError` listing every problem (file, line, column)."""
    problems: List[Problem] = []
    known = None if images is None else {str(n): 0 for n in images}
    df = parse_overrides(Path(path), known, labels, problems)
    if problems:
        raise DataError(problems)
    return df


def apply_overrides(df: pd.DataFrame, overrides: PathLike | pd.DataFrame) -> pd.DataFrame:
    """A copy of the keypoint frame ``df`` with the corrected keypoints of ``overrides`` (a
    ``label_overrides.csv`` path, or a frame from :func:`read_overrides`) put in. The input
    frame and files are never changed."""
    if not isinstance(overrides, pd.DataFrame):
        overrides = read_overrides(overrides, df["image"].tolist())
    position = {name: i for i, name in enumerate(df["image"].tolist())}
    lines = overrides["line"].tolist() if "line" in overrides else [None] * len(overrides)
    missing = [(line, n) for line, n in zip(lines, overrides["image"]) if n not in position]
    if missing:
        raise DataError([Problem(None, line, "image", f"override for image {n!r}, which is not "
                                 "in the labels it should correct") for line, n in missing])
    coords = keypoints_array(df).copy()
    rows = [position[n] for n in overrides["image"]]
    cols = [KEYPOINT_NAMES.index(k) for k in overrides["keypoint"]]
    coords[rows, cols] = overrides[["x", "y"]].to_numpy(np.float64)
    out = df.copy()
    out[list(COORD_COLUMNS)] = coords.reshape(len(df), -1)
    return out


#: A CSV read as text: header fields and ``(line number, fields)`` for each data line.
RawCsv = Tuple[List[str], List[Tuple[int, List[str]]]]


def read_raw_csv(path: PathLike, strip_header: bool = True) -> RawCsv:
    """Header (fields stripped unless ``strip_header`` is false) and data records of a CSV, as
    text, with their 1-based line numbers (header: line 1), read by :func:`read_records`. Raises
    :class:`DataError` when the file is missing, empty or not UTF-8 text."""
    path = Path(path)
    if not path.is_file():
        raise DataError([Problem(str(path), None, None, "file not found")])
    from .outputs import register_inputs

    register_inputs(path)  # the output policy never writes over what a command reads
    problems: List[Problem] = []
    records = list(read_records(path, problems))
    if problems:
        raise DataError(problems)
    if not records:
        raise DataError([Problem(str(path), None, None, "empty file: no header line")])
    (_, header), *rows = records
    return ([h.strip() for h in header] if strip_header else list(header)), rows


def parse_number(text: str) -> float:
    """A numeric cell: NaN when empty or ``nan`` (no value), else a finite number (ValueError
    otherwise, with :func:`coordinate_problem`'s message)."""
    t = text.strip()
    if t.lower() in ("", "nan"):
        return math.nan
    bad = coordinate_problem(t)
    if bad:
        raise ValueError(bad)
    return float(t)


def read_numeric_csv(
    path: PathLike, numeric: Sequence[str]
) -> Tuple[List[str], List[int], np.ndarray]:
    """``image`` names, their line numbers and a float array (rows, len(numeric)) of a CSV.

    Empty and ``nan`` cells are NaN; other columns are ignored. Raises :class:`DataError` naming
    line and column of every missing column, malformed line, non-numeric cell or duplicate image.
    """
    name = str(path)
    header, rows = read_raw_csv(path)
    problems = [
        Problem(name, 1, c, "missing column") for c in ("image", *numeric) if c not in header
    ]
    problems += [
        Problem(name, 1, c, "column appears twice") for c in set(header) if header.count(c) > 1
    ]
    if problems:
        raise DataError(problems)
    col = [header.index(c) for c in numeric]
    image_col = header.index("image")
    images: List[str] = []
    lines: List[int] = []
    values = np.full((len(rows), len(numeric)), np.nan)
    first: Dict[str, int] = {}
    for r, (line, fields) in enumerate(rows):
        if len(fields) != len(header):
            problems.append(
                Problem(name, line, None, f"{len(fields)} fields but the header has {len(header)}")
            )
            continue
        image = fields[image_col].strip()
        if image in first:
            problems.append(Problem(name, line, "image",
                                    f"duplicate image {image!r} (first at line {first[image]})"))
        first.setdefault(image, line)
        images.append(image)
        lines.append(line)
        for j, c in enumerate(col):
            try:
                values[r, j] = parse_number(fields[c])
            except ValueError:
                problems.append(Problem(name, line, numeric[j], f"not a number: {fields[c]!r}"))
    if problems:
        raise DataError(problems)
    return images, lines, values


