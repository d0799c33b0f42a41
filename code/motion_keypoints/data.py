"""The data layer: read, validate and write the keypoint CSVs, and turn them into detectron2 datasets.

A data root ``DIR`` has the competition layout::

    DIR/train_df.csv              image, NAME_x, NAME_y ... (one row per image)
    DIR/sample_submission.csv     same columns; its images are in test_imgs
    DIR/images/train_imgs/*.jpg
    DIR/images/test_imgs/*.jpg
    DIR/test_labels.csv           optional: true test keypoints (synthetic data only)
    DIR/label_overrides.csv       optional: corrected labels ``image, keypoint, x, y`` that
                                  :func:`load_train_df` applies over train_df.csv

Every problem is reported as a :class:`Problem` naming file, line (1-based, the header is line 1)
and column; :class:`DataError` collects all of them before anything is raised.

Coordinates are continuous pixel coordinates, used as they are (no half-pixel shift): a point is
inside an image of size W x H when ``0 <= x <= W`` and ``0 <= y <= H`` (detectron2's rule).
"""

from __future__ import annotations

import motion_keypoints.compat  # noqa: F401

import argparse
import csv
import difflib
import io
import logging
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Callable, Dict, List, Sequence, Tuple, Union

import numpy as np
import pandas as pd
from PIL import Image

from .keypoints import (
    COORD_COLUMNS,
    CSV_COLUMNS,
    DEFAULT_OKS_SIGMAS,
    KEYPOINT_NAMES,
    NUM_KEYPOINTS,
    check_metadata,
    detectron2_metadata,
)
from .utils import PathLike, atomic_path

#: How many problems/warnings a message shows before "... and N more".
MAX_SHOWN = 50
#: Image check levels: ``exists`` (file present); ``header`` (size read; truncated JPEGs caught by
#: their missing end marker); ``decode`` (every image decoded: also catches corrupt data).
IMAGE_CHECK_LEVELS = ("exists", "header", "decode")
SPLITS = ("train", "test")
#: Columns of ``label_overrides.csv``: one corrected keypoint per row.
OVERRIDE_COLUMNS = ("image", "keypoint", "x", "y")

logger = logging.getLogger("motion_keypoints")

_EXIF_ORIENTATION = 0x0112
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAN_WORDS = {"nan", "na", "n/a", "null", "none", "<na>"}
_INF_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass(frozen=True)
class DataPaths:
    """Where the files of a data root are."""

    root: Path
    train_csv: Path
    sample_submission: Path
    train_images: Path
    test_images: Path
    test_labels: Path
    overrides: Path

    @classmethod
    def from_root(cls, root: PathLike) -> DataPaths:
        root = Path(root)
        return cls(
            root=root,
            train_csv=root / "train_df.csv",
            sample_submission=root / "sample_submission.csv",
            train_images=root / "images" / "train_imgs",
            test_images=root / "images" / "test_imgs",
            test_labels=root / "test_labels.csv",
            overrides=root / "label_overrides.csv",
        )


@dataclass(frozen=True)
class Problem:
    """One problem (or warning) in the data. ``row`` is the 1-based line in ``file`` (header = 1)."""

    file: PathLike | None = None
    row: int | None = None
    column: str | None = None
    message: str = ""

    def __str__(self) -> str:
        where = [f"line {self.row}"] if self.row is not None else []
        if self.column is not None:
            where.append(f"column {self.column}")
        prefix = [str(self.file)] if self.file is not None else []
        if where:
            prefix.append(", ".join(where))
        return ": ".join(prefix + [self.message])


def format_problems(problems: Sequence[Problem], limit: int = MAX_SHOWN) -> List[str]:
    """One line per problem, the first ``limit`` of them, then ``... and N more``."""
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines


class DataError(ValueError):
    """Bad input data; ``.problems`` lists every problem found, its str one line per problem."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(format_problems(self.problems)))


@dataclass
class DataReport:
    """What :func:`validate_data_root` found: a summary per split and the warnings (not errors)."""

    summary: dict
    warnings: List[Problem] = field(default_factory=list)


@dataclass
class _Table:
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


def _coordinate_problem(text: str) -> str | None:
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


def _records(path: Path, problems: List[Problem]):
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


def _parse_csv(path: PathLike, expected: Sequence[str], problems: List[Problem]) -> _Table:
    """Parse and check a keypoint CSV strictly; every problem goes to ``problems``."""
    path = Path(path)
    table = _Table(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        problems.append(Problem(path, None, None, f"CSV {what}: expected the file at {path}"))
        return table
    start = len(problems)
    records = _records(path, problems)
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
            bad = _coordinate_problem(cell)
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


# ------------------------------------------------------------------------------------- images


def _image_level(check_images: Union[bool, str]) -> str:
    if check_images is True:
        return "decode"
    if check_images is False:
        return "exists"
    if check_images not in IMAGE_CHECK_LEVELS:
        raise ValueError(f"check_images must be True, False or one of {IMAGE_CHECK_LEVELS}, "
                         f"got {check_images!r}")
    return check_images


def _oriented_size(im: Image.Image) -> Tuple[int, int, int]:
    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    w, h = im.size
    return (h, w, orientation) if orientation in (5, 6, 7, 8) else (w, h, orientation)


def _ends_with_jpeg_eoi(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 2))
        return f.read() == b"\xff\xd9"


def _open_image(path: Path, decode: bool) -> Tuple[Tuple[int, int] | None, int, str | None]:
    """``(size, exif_orientation, error)`` of an image file. ``decode`` decodes its pixels (at 1/8
    scale for JPEGs: every byte is still read). Without it, a JPEG that does not end with the
    end-of-image marker (truncated, or with trailing bytes) is decoded to tell which."""
    try:
        with Image.open(path) as im:
            w, h, orientation = _oriented_size(im)
            if decode or (im.format == "JPEG" and not _ends_with_jpeg_eoi(path)):
                im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except Exception as exc:  # any decoder failure means the file is unusable
        return None, 1, (f"cannot be read as an image ({type(exc).__name__}: {exc}): the file is "
                         "corrupt or truncated; copy it again")
    return (w, h), orientation, None


def image_size(path: PathLike) -> Tuple[int, int]:
    """``(width, height)`` of an image from its header, as image loaders see it (EXIF rotation
    applied, as detectron2's ``read_image`` and OpenCV do)."""
    path = Path(path)
    size, _, error = _open_image(path, decode=False)
    if error:
        raise DataError([Problem(path, None, None, error)])
    return size


def _check_table_images(table: _Table, image_dir: Path, level: str, problems: List[Problem],
                        warnings: List[Problem], cache: Dict[Path, tuple]) -> None:
    """Check that every image of ``table`` is in ``image_dir`` (and readable, by ``level``);
    fill ``table.sizes``."""
    if not image_dir.is_dir():
        problems.append(Problem(image_dir, None, None, f"image folder not found: expected the "
                                f"images listed in {table.path.name} in {image_dir}"))
        return
    if not table.images:
        return
    on_disk = {e.name for e in os.scandir(image_dir) if e.is_file()}
    by_lower = {n.lower(): n for n in on_disk}
    names = list(table.images)
    present = []
    for name, line in table.images.items():
        if name in on_disk:
            present.append((name, line))
            continue
        near = by_lower.get(name.lower())
        hint = f" (there is {near!r}: names are case-sensitive)" if near else ""
        problems.append(Problem(table.path, line, "image", f"image {name!r} not found in "
                                f"{image_dir}{hint}"))
    if not present and len(names) > 1:
        problems.append(Problem(table.path, None, "image", f"none of the {len(names)} images is in "
                                f"{image_dir}: is the data root right?"))
    if level == "exists":
        return
    todo = [image_dir / n for n, _ in present if image_dir / n not in cache]
    if todo:
        from tqdm import tqdm

        decode = level == "decode"
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = pool.map(lambda p: _open_image(p, decode), todo)
            bar = tqdm(results, total=len(todo), desc=f"checking images in {image_dir.name}",
                       unit="img", disable=len(todo) < 500, leave=False)
            cache.update(zip(todo, bar))
    for name, line in present:
        size, orientation, error = cache[image_dir / name]
        if error:
            problems.append(Problem(table.path, line, "image", f"image {image_dir / name} {error}"))
            continue
        table.sizes[name] = size
        if orientation != 1:
            warnings.append(Problem(table.path, line, "image", f"image {name!r} has EXIF orientation "
                                    f"{orientation}: loaders rotate it to {size[0]}x{size[1]}; check "
                                    "the keypoints were labelled on the rotated image"))


def _outside_warnings(table: _Table) -> Tuple[List[Problem], int, int]:
    """Warnings for rows with keypoints outside their image; also the point and row counts."""
    df = table.df
    known = df["image"].map(lambda n: n in table.sizes).to_numpy(bool)
    if not known.any():
        return [], 0, 0
    xy = keypoints_array(df)[known]
    wh = np.array([table.sizes[n] for n in df["image"][known]], np.float64)[:, None, :]
    outside = ((xy < 0) | (xy > wh)).any(axis=2)
    lines = np.asarray(table.lines)[known]
    images = df["image"][known].tolist()
    warnings = []
    for r in np.flatnonzero(outside.any(axis=1)):
        pts = ", ".join(f"{KEYPOINT_NAMES[k]} ({xy[r, k, 0]:g}, {xy[r, k, 1]:g})"
                        for k in np.flatnonzero(outside[r]))
        w, h = table.sizes[images[r]]
        warnings.append(Problem(table.path, int(lines[r]), None, f"keypoints outside the {w}x{h} "
                                f"image {images[r]!r}: {pts} (they get visibility 0 in training)"))
    return warnings, int(outside.sum()), len(warnings)


# ------------------------------------------------------------------------------------ public API


def read_keypoint_csv(path: PathLike, image_dir: PathLike | None = None,
                      extra_columns: Sequence[str] = (),
                      check_images: Union[bool, str] = False) -> pd.DataFrame:
    """Read a keypoint CSV strictly: columns exactly ``CSV_COLUMNS`` (+ ``extra_columns``, read as
    strings), coordinates finite float64, image names plain and unique. With ``image_dir``, every
    image must be there (``check_images``: False/``"exists"``, ``"header"``, True/``"decode"``).
    Raises :class:`DataError` listing every problem (file, line, column)."""
    level = _image_level(check_images)
    problems: List[Problem] = []
    table = _parse_csv(path, CSV_COLUMNS + tuple(extra_columns), problems)
    if image_dir is not None and table.images:
        _check_table_images(table, Path(image_dir), level, problems, [], {})
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
    df = pd.DataFrame(coords.reshape(len(images), -1), columns=list(COORD_COLUMNS))
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


def write_keypoint_csv(df: pd.DataFrame, path: PathLike) -> None:
    """Write a keypoint frame atomically; floats as ``repr`` so reading back gives identical
    values. Refuses frames whose columns do not start with ``CSV_COLUMNS`` or whose coordinates
    are not finite."""
    path = Path(path)
    cols = list(df.columns)
    if tuple(cols[:len(CSV_COLUMNS)]) != CSV_COLUMNS:
        missing = [c for c in CSV_COLUMNS if c not in cols]
        raise DataError([Problem(path, 1, None, "refusing to write: the frame's columns must start "
                                 f"with CSV_COLUMNS in order (missing: {', '.join(missing) or 'none'})")])
    xy = keypoints_array(df).reshape(len(df), -1)
    bad = np.argwhere(~np.isfinite(xy))
    if len(bad):
        raise DataError([Problem(path, int(r) + 2, COORD_COLUMNS[c], "refusing to write a "
                                 "non-finite coordinate") for r, c in bad])
    rows = zip(df["image"].astype(str).tolist(), xy.tolist(),
               *(df[c].tolist() for c in cols[len(CSV_COLUMNS):]))
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(cols)
        for image, values, *extra in rows:
            writer.writerow([image, *map(repr, values), *map(_cell_text, extra)])


def image_lines(path: PathLike) -> Dict[str, int]:
    """``image -> line`` (1-based, header = 1) of a valid keypoint CSV; raises :class:`DataError`
    like :func:`read_keypoint_csv`."""
    problems: List[Problem] = []
    table = _parse_csv(path, CSV_COLUMNS, problems)
    if problems:
        raise DataError(problems)
    return dict(table.images)


def _parse_overrides(path: Path, images: Dict[str, int] | None, labels: str,
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
    records = _records(path, problems)
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
            bad = _coordinate_problem(cell)
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
    df = _parse_overrides(Path(path), known, labels, problems)
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


def load_train_df(root: PathLike, overrides: bool = True) -> pd.DataFrame:
    """The training labels of a data root: ``train_df.csv`` read strictly, with
    ``label_overrides.csv`` applied when it exists (and ``overrides`` is true)."""
    paths = DataPaths.from_root(root)
    df = read_keypoint_csv(paths.train_csv)
    if overrides and paths.overrides.is_file():
        fixes = read_overrides(paths.overrides, df["image"].tolist(), paths.train_csv.name)
        df = apply_overrides(df, fixes)
        logger.info("applied %d label overrides (%d images) from %s", len(fixes),
                    fixes["image"].nunique(), paths.overrides)
    return df


def validate_data_root(root: PathLike, check_images: Union[bool, str] = True,
                       splits: Sequence[str] = SPLITS) -> DataReport:
    """Check a data root before long work: the CSVs (strictly), ``label_overrides.csv`` when
    present, that every listed image is in its folder and readable (``check_images``:
    False/``"exists"``, ``"header"``, True/``"decode"``), and, where image sizes are known, which
    keypoints (overrides applied) lie outside their image (warnings).
    Raises :class:`DataError` listing every problem found."""
    level = _image_level(check_images)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}: choose from {SPLITS}")
    paths = DataPaths.from_root(root)
    if not paths.root.is_dir():
        raise DataError([Problem(paths.root, None, None, "data root not found: expected a folder "
                                 "with train_df.csv, sample_submission.csv, images/train_imgs/ and "
                                 "images/test_imgs/")])
    problems: List[Problem] = []
    warnings: List[Problem] = []
    cache: Dict[Path, tuple] = {}
    summary: dict = {"root": str(paths.root), "check_images": level}
    jobs = []
    if "train" in splits:
        jobs.append(("train", paths.train_csv, paths.train_images, True))
    if "test" in splits:
        jobs.append(("test", paths.sample_submission, paths.test_images, False))
        if paths.test_labels.exists():
            jobs.append(("test_labels", paths.test_labels, paths.test_images, True))
    tables = {}
    for split, csv_path, image_dir, labelled in jobs:
        table = _parse_csv(csv_path, CSV_COLUMNS, problems)
        if split != "test_labels" or image_dir.is_dir():
            _check_table_images(table, image_dir, level, problems, warnings, cache)
        if table.df is None:
            continue
        tables[split] = table
        info = {"csv": str(csv_path), "rows": len(table.df), "image_dir": str(image_dir)}
        if split == "train" and paths.overrides.is_file():
            fixes = _parse_overrides(paths.overrides, table.images, csv_path.name, problems)
            if fixes is not None:
                table.df = apply_overrides(table.df, fixes)
                info["overrides"] = len(fixes)
                info["overrides_csv"] = str(paths.overrides)
        if image_dir.is_dir():
            on_disk = {e.name for e in os.scandir(image_dir) if e.is_file()}
            info["files_in_dir"] = len(on_disk)
            info["unlisted_files"] = len(on_disk - set(table.images))
        if table.sizes:
            sizes = Counter(f"{w}x{h}" for w, h in table.sizes.values())
            info["image_sizes"] = dict(sizes.most_common())
        if labelled:
            outside, n_points, n_rows = _outside_warnings(table)
            warnings.extend(outside)
            info["points_outside"] = n_points
            info["rows_with_points_outside"] = n_rows
        summary[split] = info
    if "test" in tables and "test_labels" in tables:
        listed = set(tables["test"].df["image"])
        labels = tables["test_labels"]
        for name, line in zip(labels.df["image"], labels.lines):
            if name not in listed:
                problems.append(Problem(labels.path, line, "image", f"image {name!r} is not in "
                                        f"{paths.sample_submission.name}"))
    if problems:
        raise DataError(problems)
    return DataReport(summary, warnings)


# ------------------------------------------------------------------------------------ detectron2


def make_dataset_dicts(df: pd.DataFrame, image_dir: PathLike, bbox_margin: float = 0.1,
                       with_annotations: bool = True) -> List[dict]:
    """detectron2 dataset dicts, one person per image.

    The box is the keypoints' extent grown on each side by ``bbox_margin`` times the extent of
    that axis (at least one pixel), clipped to the image. Keypoints are ``[x, y, v]`` floats with
    v = 2 inside the image and 0 outside. Width and height are read from each image file.
    ``with_annotations=False`` gives annotation-free dicts for inference.
    """
    from detectron2.structures import BoxMode

    if not (np.isfinite(bbox_margin) and bbox_margin >= 0):
        raise ValueError(f"bbox_margin must be a finite fraction >= 0, got {bbox_margin!r}")
    image_dir = Path(image_dir)
    xy = keypoints_array(df) if with_annotations else None
    if with_annotations and not np.isfinite(xy).all():
        rows = np.flatnonzero(~np.isfinite(xy).all(axis=(1, 2)))
        raise ValueError(f"non-finite keypoints in rows {rows[:10].tolist()}: read the CSV with "
                         "read_keypoint_csv, which rejects them")
    dicts = []
    for i, name in enumerate(df["image"].tolist()):
        file_name = image_dir / name
        width, height = image_size(file_name)
        record = {"file_name": str(file_name), "image_id": i, "height": height, "width": width}
        if with_annotations:
            pts = xy[i]
            inside = ((pts >= 0) & (pts <= (width, height))).all(axis=1)
            low, high = pts.min(axis=0), pts.max(axis=0)
            pad = np.maximum(bbox_margin * (high - low), 1.0)
            x0, y0 = np.clip(low - pad, 0, (width, height))
            x1, y1 = np.clip(high + pad, 0, (width, height))
            keypoints = np.column_stack([pts, np.where(inside, 2.0, 0.0)])
            record["annotations"] = [{
                "bbox": [float(x0), float(y0), float(x1), float(y1)],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "keypoints": keypoints.ravel().tolist(),
                "iscrowd": 0,
            }]
        dicts.append(record)
    return dicts


def register_dataset(name: str, dicts_fn: Callable[[], List[dict]],
                     sigmas: Sequence[float] | None = None) -> None:
    """Register ``dicts_fn`` under ``name`` with this task's keypoint metadata (and OKS sigmas as
    ``keypoint_oks_sigmas``). Registering the same function again does nothing; a different
    function or different sigmas replace the old registration."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    sigmas = [float(s) for s in (DEFAULT_OKS_SIGMAS if sigmas is None else sigmas)]
    check_metadata(sigmas=sigmas)
    if name in DatasetCatalog:
        if DatasetCatalog[name] == dicts_fn and \
                MetadataCatalog.get(name).get("keypoint_oks_sigmas") == sigmas:
            return
        DatasetCatalog.remove(name)
    if name in MetadataCatalog:
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, dicts_fn)
    MetadataCatalog.get(name).set(**detectron2_metadata(), keypoint_oks_sigmas=sigmas)


# -------------------------------------------------------------------------------------- the CLI

HINT = (
    "Fix the problems above, then run `python code/check_data.py --data-root {root}` again. "
    "Expected layout: {root}/train_df.csv, {root}/sample_submission.csv, "
    "{root}/images/train_imgs/*.jpg, {root}/images/test_imgs/*.jpg; CSV columns: image, then "
    "NAME_x, NAME_y for each keypoint (motion_keypoints.keypoints.CSV_COLUMNS)."
)


def format_report(report: DataReport) -> str:
    """The human summary of a :class:`DataReport` (warnings not included)."""
    s = report.summary
    lines = [f"Data root: {s['root']} (images checked: {s['check_images']})"]
    for split in ("train", "test", "test_labels"):
        if split not in s:
            continue
        info = s[split]
        text = f"{split}: {info['rows']} rows in {Path(info['csv']).name}"
        if "files_in_dir" in info:
            text += (f"; {info['files_in_dir']} files in {info['image_dir']} "
                     f"({info['unlisted_files']} not listed in the CSV)")
        lines.append(text)
        if "image_sizes" in info:
            lines.append("  image sizes: " + ", ".join(f"{k} ({v} images)"
                                                       for k, v in info["image_sizes"].items()))
        if "overrides" in info:
            lines.append(f"  label overrides: {info['overrides']} keypoints corrected by "
                         f"{Path(info['overrides_csv']).name}")
        if info.get("points_outside"):
            lines.append(f"  keypoints outside their image: {info['points_outside']} in "
                         f"{info['rows_with_points_outside']} rows (warnings; visibility 0)")
    lines.append(f"OK: the data is usable ({len(report.warnings)} warnings).")
    return "\n".join(lines)


def build_check_data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="check_data.py",
        description="Validate a data root (CSVs, image files, keypoints) and print a summary. "
                    "Exit status 0 when the data is usable, 1 with one line per problem otherwise.")
    parser.add_argument("--data-root", default="data",
                        help="folder with train_df.csv, sample_submission.csv and images/ "
                             "(default: %(default)s)")
    parser.add_argument("--check-images", choices=IMAGE_CHECK_LEVELS, default="decode",
                        help="exists: files present; header: sizes read, truncated JPEGs caught; "
                             "decode: every image decoded, also catching corrupt data "
                             "(default: %(default)s)")
    parser.add_argument("--max-shown", type=int, default=MAX_SHOWN,
                        help="problems/warnings printed before '... and N more' (default: %(default)s)")
    parser.add_argument("--audit", action="store_true",
                        help="also audit the training labels: rank suspicious annotations "
                             "(left/right swaps, bones far too long, isolated points), write "
                             "audit.csv, suggested_overrides.csv and a picture per flagged image "
                             "(findings are warnings: the exit status stays 0)")
    parser.add_argument("--audit-out", default="outputs/audit",
                        help="folder for the audit's outputs (default: %(default)s)")
    parser.add_argument("--audit-top", type=int, default=20,
                        help="findings printed (all are in audit.csv; default: %(default)s)")
    return parser


def check_data_main(argv: Sequence[str] | None = None) -> int:
    """``check_data.py``: 0 when the data root is usable, 1 otherwise (problems on stderr)."""
    parser = build_check_data_parser()
    args = parser.parse_args(argv)
    if args.audit_top < 0:
        parser.error(f"--audit-top must be >= 0, got {args.audit_top}")
    try:
        report = validate_data_root(args.data_root, check_images=args.check_images)
    except DataError as exc:
        print(f"check_data: {len(exc.problems)} problem(s) in {args.data_root}:", file=sys.stderr)
        for line in format_problems(exc.problems, args.max_shown):
            print(line, file=sys.stderr)
        print(HINT.format(root=args.data_root), file=sys.stderr)
        return 1
    for line in format_problems(report.warnings, args.max_shown):
        print(f"warning: {line}", file=sys.stderr)
    print(format_report(report))
    if args.audit:
        from .audit import audit, format_findings, write_audit

        found = audit(args.data_root)
        written = write_audit(found, args.audit_out)
        print(format_findings(found, args.audit_top))
        print(f"audit: ranked findings in {written['csv']}; {len(found.flagged_images())} "
              f"pictures in {written['pictures']}; swap fixes to review in "
              f"{written['overrides']} (copy the rows you accept into "
              f"{DataPaths.from_root(args.data_root).overrides})")
    return 0
