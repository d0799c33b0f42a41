"""The keypoint CSVs (read strictly through the one table checker, :mod:`.schema`; written
exactly) and ``label_overrides.csv``.

Every problem is reported as a :class:`Problem` naming file, line (1-based, the header is line 1)
and column; :class:`DataError` collects all of them before anything is raised.
"""
from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..meta import COORD_COLUMNS, CSV_COLUMNS, KEYPOINT_NAMES, NUM_KEYPOINTS
from ..utils import PathLike, atomic_path
from .images import check_table_images, image_level
from .problems import DataError, Problem
from .schema import CheckedTable as CheckedTable
from .schema import TableSchema, check_table, coordinate_problem, image_name_problem, read_records
from .schema import read_numeric_csv as read_numeric_csv
from .schema import read_raw_csv as read_raw_csv
from .schema import read_table as read_table

#: Columns of ``label_overrides.csv``: one corrected keypoint per row.
OVERRIDE_COLUMNS = ("image", "keypoint", "x", "y")


@dataclass
class Table:
    path: Path
    df: pd.DataFrame | None = None  # None unless the whole file is valid
    lines: List[int] = field(default_factory=list)  # CSV line of each row of df
    images: Dict[str, int] = field(default_factory=dict)  # valid image name -> its CSV line
    sizes: Dict[str, Tuple[int, int]] = field(default_factory=dict)  # image -> (width, height)


def keypoint_schema(extra: Sequence[str] = ()) -> TableSchema:
    """A keypoint CSV (train_df.csv, sample_submission.csv, annotations): ``CSV_COLUMNS`` then
    the ``extra`` text columns, finite coordinates, at least one row."""
    return TableSchema(CSV_COLUMNS + tuple(extra), text=tuple(extra))


def parse_csv(path: PathLike, expected: Sequence[str], problems: List[Problem]) -> Table:
    """Parse and check a keypoint CSV strictly (:func:`keypoint_schema`: ``expected`` is
    ``CSV_COLUMNS`` then text columns); every problem goes to ``problems``."""
    if tuple(expected[:len(CSV_COLUMNS)]) != CSV_COLUMNS:
        raise ValueError("a keypoint CSV's columns start with CSV_COLUMNS")
    start = len(problems)
    checked = check_table(path, keypoint_schema(expected[len(CSV_COLUMNS):]), problems)
    table = Table(checked.path, lines=checked.lines, images=checked.first_line)
    if len(problems) == start and checked.images:
        coords = checked.values.reshape(-1, NUM_KEYPOINTS, 2)
        table.df = keypoints_frame(checked.images, coords, extra=checked.text or None)
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
        bad = image_name_problem(name)
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
