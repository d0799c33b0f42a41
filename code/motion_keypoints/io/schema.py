"""The one table checker of the kit: a :class:`TableSchema` (required columns, their order,
finite numbers, unique plain image names, the image universe and its order) and
:func:`check_table`, which every CSV reader goes through: the keypoint CSVs of a data root
(:mod:`.tables`), a run's predictions (:mod:`.predictions`), submissions
(:mod:`motion_keypoints.submission`) and the numeric tables evaluate and smooth read
(:func:`read_numeric_csv`). ``label_overrides.csv``, one row per corrected keypoint, keeps its
own reader in :mod:`.tables` (it shares the cell and image-name rules).

Every broken rule is one :class:`Problem` naming file, line (1-based, the header is line 1),
column and the fix, worded the same whichever reader found it; :class:`DataError` collects all of
them before anything is raised.
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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..meta import CSV_COLUMNS, KEYPOINT_NAMES
from ..utils import PathLike
from .outputs import register_inputs
from .problems import DataError, Problem

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NAN_WORDS = {"nan", "na", "n/a", "null", "none", "<na>"}
_INF_WORDS = {"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}


@dataclass(frozen=True)
class TableSchema:
    """What a CSV must hold; :func:`check_table` checks a file against it, one
    :class:`Problem` (file, line, column, fix) per broken rule. Every CSV reader of the kit
    (keypoint CSVs, predictions, submissions, numeric tables) goes through it, so a rule is
    worded the same whichever command reads the file."""

    columns: Tuple[str, ...]  # required columns, ``image`` first
    text: Tuple[str, ...] = ()  # required columns kept as text; all others but image are numbers
    source: str = "the keypoint layout"  # what defines the columns, named in messages
    ordered: bool = True  # exactly ``columns`` in this order (else others are allowed, ignored)
    exact_names: bool = True  # spaces around names are errors (else they are stripped)
    missing_values: bool = False  # empty/'nan' numeric cells are NaN (else errors: finite only)
    need_rows: bool = True  # a header without rows is an error
    universe: Optional[Tuple[str, ...]] = None  # the images allowed, each required once
    universe_source: str = ""  # the file listing ``universe`` (e.g. sample_submission.csv)
    row_order: bool = False  # rows in ``universe`` order

    @property
    def numeric(self) -> Tuple[str, ...]:
        return tuple(c for c in self.columns if c != "image" and c not in self.text)


@dataclass
class CheckedTable:
    """What :func:`check_table` read: per row with the right number of fields its image, line
    and numbers (``schema.numeric`` order; NaN where missing or bad) and text cells."""

    path: Path
    schema: TableSchema
    images: List[str] = field(default_factory=list)
    lines: List[int] = field(default_factory=list)
    rows: List[np.ndarray] = field(default_factory=list)
    text: Dict[str, List[str]] = field(default_factory=dict)
    first_line: Dict[str, int] = field(default_factory=dict)  # valid image -> first line

    @property
    def values(self) -> np.ndarray:
        if not self.rows:
            return np.full((0, len(self.schema.numeric)), np.nan)
        return np.stack(self.rows)


def _expected_order_text(expected: Sequence[str]) -> str:
    base = len(CSV_COLUMNS)
    if tuple(expected[:base]) != CSV_COLUMNS:
        return f"expected columns, in this order: {', '.join(expected)}"
    text = (
        "expected columns, in this order: image, then NAME_x, NAME_y for each keypoint in this "
        f"order: {', '.join(KEYPOINT_NAMES)} ({base} columns"
    )
    if len(expected) > base:
        return text + f"), then {', '.join(expected[base:])}"
    return text + ")"


def _after(columns: Sequence[str], col: str) -> str:
    i = list(columns).index(col)
    return f"after {columns[i - 1]!r}" if i else "first"


def _column_problems(path: Path, line: int, names: List[str], schema: TableSchema) -> List[Problem]:
    """Duplicated, unexpected (ordered schemas) and missing columns, each named."""
    problems: List[Problem] = []
    first_pos: Dict[str, int] = {}
    for pos, col in enumerate(names, 1):
        if col in first_pos:
            problems.append(Problem(path, line, col, f"column appears twice (columns "
                                    f"{first_pos[col]} and {pos}): keep one"))
        first_pos.setdefault(col, pos)
    missing = [c for c in schema.columns if c not in first_pos]
    for pos, col in enumerate(names, 1):
        if not schema.ordered or col in schema.columns:
            continue
        close = difflib.get_close_matches(col, missing, n=1)
        if pos == 1 and col in ("", "Unnamed: 0"):
            hint = "it looks like a saved pandas index: write the CSV with index=False"
        else:
            hint = f"did you mean {close[0]!r}?" if close else "remove it"
        problems.append(Problem(path, line, col or f"{pos} (unnamed)", f"unexpected column: not "
                                f"in {schema.source} (unexpected column at position {pos}): {hint}"))
    for col in missing:
        where = (f"(column {schema.columns.index(col) + 1} of {schema.source}): add it "
                 f"{_after(schema.columns, col)}" if schema.ordered else
                 f"(required by {schema.source}): add it")
        problems.append(Problem(path, line, col, f"missing column {where}"))
    return problems


def _order_problems(path: Path, line: int, names: List[str], schema: TableSchema) -> List[Problem]:
    """The fewest columns that explain a wrong order: a swap moves two columns, a single moved
    column shifts all others by one."""
    expected = schema.columns
    position = {}
    for pos, col in enumerate(names, 1):
        position.setdefault(col, pos)
    present = [c for c in position if c in expected]
    present_expected = [c for c in expected if c in position]
    if present == present_expected:
        return []
    swapped = {a for a, b in zip(present, present_expected) if a != b}
    matcher = difflib.SequenceMatcher(None, present_expected, present, autojunk=False)
    moved = set(present) - {c for block in matcher.get_matching_blocks()
                            for c in present[block.b:block.b + block.size]}
    out_of_place = swapped if len(swapped) <= len(moved) else moved
    problems = []
    for col in (c for c in present if c in out_of_place):
        pos = position[col]
        where = f"out of place at position {pos}: it belongs {_after(expected, col)}"
        message = (f"column {pos} is {col!r} but {schema.source} has {expected[pos - 1]!r} there "
                   f"({where})" if pos <= len(expected) else f"column {where}")
        problems.append(Problem(path, line, col, message))
    return problems


def header_problems(path: Path, header: List[str], schema: TableSchema, line: int) -> List[Problem]:
    """Every problem of a header under ``schema``; the last names the expected order."""
    names = [h.strip() for h in header]
    problems: List[Problem] = []
    if schema.exact_names:
        problems += [Problem(path, line, col, f"column name {raw!r} has surrounding spaces: write "
                             f"it as {col!r} (names are compared exactly)")
                     for raw, col in zip(header, names) if raw != col and col]
    if names == list(schema.columns):
        return problems
    if len(names) == 1 and len(schema.columns) > 1:
        for sep, what in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
            if sep in header[0]:
                return [Problem(path, line, None, f"the header is one column separated by {what}: "
                                "save the file comma-separated")]
    problems += _column_problems(path, line, names, schema)
    if schema.ordered:
        problems += _order_problems(path, line, names, schema)
    if schema.ordered and problems:
        problems.append(Problem(path, line, None, _expected_order_text(schema.columns)))
    return problems


def image_name_problem(name: str) -> str | None:
    """Why ``name`` is not a plain file name inside the image folder (None when it is)."""
    if not name:
        return "empty image name: every row needs the image's file name"
    if name != name.strip():
        return f"image name {name!r} has surrounding spaces: write it as {name.strip()!r}"
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


def coordinate_problem(text: str, what: str = "coordinate") -> str | None:
    """Why a cell is not a finite number (None when it is); ``what`` names it in the message."""
    value = text.strip()
    if not value:
        return "missing value: every keypoint needs an x and a y"
    if value.lower() in _NAN_WORDS:
        return f"{value!r} is not a {what} (NaN/missing): every keypoint needs an x and a y"
    if value.lower() in _INF_WORDS:
        return f"{value!r} is not a finite {what}"
    if not _NUMBER.fullmatch(value):
        return f"{value!r} is not a number"
    if not np.isfinite(float(value)):
        return f"{value!r} is not a finite {what}"
    return None


def _cell_value(text: str, column: str, missing_ok: bool) -> Tuple[float, str | None]:
    """A numeric cell's value (NaN when missing and ``missing_ok``) or why it is bad."""
    if missing_ok and text.strip().lower() in ("", "nan"):
        return math.nan, None
    bad = coordinate_problem(text, "coordinate" if column.endswith(("_x", "_y")) else "number")
    return (math.nan, bad) if bad else (float(text), None)


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


def _open_csv(path: Path, problems: List[Problem], register: bool):
    """The records of ``path`` (None when it is not a file); ``register``: an input of the
    running command, so the output policy never writes over it."""
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "not found"
        fix = "" if path.is_dir() else " (file not found: check the path)"
        problems.append(Problem(path, None, None, f"CSV {what}: expected the file at {path}{fix}"))
        return None
    if register:
        register_inputs(path)
    return read_records(path, problems)


def _row_image(table: CheckedTable, line: int, raw: str, universe, problems: List[Problem]) -> str:
    """The image of a row; its name, uniqueness and membership of the universe checked."""
    schema, name = table.schema, raw.strip()
    if schema.exact_names and name and name != raw:
        problems.append(Problem(table.path, line, "image", image_name_problem(raw)))
    bad = image_name_problem(name)
    if bad:
        problems.append(Problem(table.path, line, "image", bad))
    elif name in table.first_line:
        problems.append(Problem(table.path, line, "image", f"duplicate image {name!r} (first at "
                                f"line {table.first_line[name]}): keep one row per image"))
    elif universe is not None and name not in universe:
        problems.append(Problem(table.path, line, "image", f"image {name!r} is not in "
                                f"{schema.universe_source}: remove its row"))
    else:
        table.first_line[name] = line
    return name


def _check_rows(table: CheckedTable, records, header: List[str], problems: List[Problem]) -> None:
    """Every data row: its number of fields, image and cells."""
    schema = table.schema
    index: Dict[str, int] = {}
    for i, col in enumerate(header):
        index.setdefault(col.strip(), i)
    numeric = [(j, col, index[col]) for j, col in enumerate(schema.numeric) if col in index]
    text = [(col, index[col]) for col in schema.text if col in index]
    table.text = {col: [] for col, _ in text}
    universe = None if schema.universe is None else set(schema.universe)
    n_records = 0
    for line, fields in records:
        n_records += 1
        if len(fields) != len(header):
            problems.append(Problem(table.path, line, None, f"{len(fields)} fields but the header "
                                    f"has {len(header)}: check for stray or missing commas"))
            continue
        table.images.append(_row_image(table, line, fields[index["image"]], universe, problems))
        table.lines.append(line)
        row = np.full(len(schema.numeric), np.nan)
        for j, col, i in numeric:
            row[j], bad = _cell_value(fields[i], col, schema.missing_values)
            if bad:
                problems.append(Problem(table.path, line, col, bad))
        table.rows.append(row)
        for col, i in text:
            table.text[col].append(fields[i])
    if not n_records and schema.need_rows:
        problems.append(Problem(table.path, None, None, "the file has a header but no data rows: "
                                "expected one row per image"))


def _universe_problems(table: CheckedTable) -> List[Problem]:
    """Images of the universe without a row, and rows out of the universe's order."""
    universe, source, seen = table.schema.universe, table.schema.universe_source, table.first_line
    problems = [Problem(table.path, None, "image", f"missing image {image!r} (line {i + 2} of "
                        f"{source}): add its row") for i, image in enumerate(universe)
                if image not in seen]
    found = list(seen)
    if table.schema.row_order and len(found) == len(universe) and found != list(universe):
        out_of_place = sum(a != b for a, b in zip(found, universe))
        i = next(i for i, (a, b) in enumerate(zip(found, universe)) if a != b)
        problems.append(Problem(table.path, seen[found[i]], "image", f"row order: image "
                                f"{found[i]!r} where {source} has {universe[i]!r} ({out_of_place} "
                                f"rows out of place): sort the rows in {source} order"))
    return problems


def check_table(path: PathLike, schema: TableSchema, problems: List[Problem],
                register: bool = False) -> CheckedTable:
    """Check the CSV at ``path`` against ``schema``: header (required columns, their order,
    duplicates, spaces), each row (number of fields, a plain, unique image name from the
    universe, finite numbers) and the universe (every image once, in order). Every problem goes
    to ``problems``; rows are read as far as the header allows. ``register``: the file is an
    input of the running command (the output policy never writes over it)."""
    path = Path(path)
    table = CheckedTable(path, schema)
    start = len(problems)
    records = _open_csv(path, problems, register)
    if records is None:
        return table
    header_line, header = next(records, (None, None))
    if header is None:
        if len(problems) == start:
            problems.append(Problem(path, None, None, "no header line: expected "
                                    f"'{','.join(schema.columns[:3])},...' and one row per image"))
        return table
    problems.extend(header_problems(path, header, schema, header_line))
    if "image" not in [h.strip() for h in header]:
        return table
    _check_rows(table, records, header, problems)
    if schema.universe is not None:
        problems.extend(_universe_problems(table))
    return table


def read_table(path: PathLike, schema: TableSchema, register: bool = True) -> CheckedTable:
    """:func:`check_table`, raising :class:`DataError` listing every problem."""
    problems: List[Problem] = []
    table = check_table(path, schema, problems, register)
    if problems:
        raise DataError(problems)
    return table


#: A CSV read as text: header fields and ``(line number, fields)`` for each data line.
RawCsv = Tuple[List[str], List[Tuple[int, List[str]]]]


def read_raw_csv(path: PathLike) -> RawCsv:
    """Header (fields stripped) and data records of a CSV, as text, with their 1-based line
    numbers (header: line 1); the file is an input of the running command. Raises
    :class:`DataError` when the file is missing, empty or not UTF-8 text."""
    problems: List[Problem] = []
    records = _open_csv(Path(path), problems, register=True)
    records = [] if records is None else list(records)
    if not records and not problems:
        problems.append(Problem(Path(path), None, None, "no header line"))
    if problems:
        raise DataError(problems)
    (_, header), *rows = records
    return [h.strip() for h in header], rows


def read_numeric_csv(path: PathLike, numeric: Sequence[str], source: str = "this command"
                     ) -> Tuple[List[str], List[int], np.ndarray]:
    """``image`` names, their line numbers and a float array (rows, len(numeric)) of a CSV,
    checked by :func:`check_table`: ``image`` and ``numeric`` required (other columns ignored,
    names stripped), images plain and unique, cells finite numbers or empty/``nan`` (NaN).
    Raises :class:`DataError` naming line and column of every problem."""
    schema = TableSchema(("image", *numeric), source=source, ordered=False, exact_names=False,
                         missing_values=True, need_rows=False)
    table = read_table(path, schema)
    return table.images, table.lines, table.values
