"""The competition file: written in ``sample_submission.csv``'s exact columns and row order, and a
checker that names every problem of any submission file (line and column).

``python code/check_submission.py --data-root DIR FILE`` runs
:mod:`motion_keypoints.cli.check_submission`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .io.problems import DataError, Problem
from .io.schema import TableSchema, check_table, read_raw_csv
from .meta import KEYPOINT_NAMES
from .utils import PathLike, atomic_path


def sample_layout(sample_submission: PathLike) -> Tuple[List[str], List[str]]:
    """Columns and image order of ``sample_submission.csv``."""
    header, rows = read_raw_csv(sample_submission)
    if not header or header[0] != "image":
        raise DataError(
            [Problem(str(sample_submission), 1, None, "first column must be 'image'")]
        )
    return header, [fields[0].strip() for _, fields in rows]


def submission_schema(sample_submission: PathLike) -> TableSchema:
    """What the grader accepts, from ``sample_submission.csv``: its columns in its order (names
    exact), every value a finite number, each of its images exactly once (spelled exactly) and
    no other, rows in its order."""
    columns, images = sample_layout(sample_submission)
    name = Path(sample_submission).name
    return TableSchema(tuple(columns), source=name, need_rows=False, universe=tuple(images),
                       universe_source=name, row_order=True)


def check_submission(
    path: PathLike,
    sample_submission: PathLike,
    warnings: Optional[List[Problem]] = None,
    image_dir: Optional[PathLike] = None,
) -> List[Problem]:
    """Every problem of a submission file compared with ``sample_submission.csv`` (empty: valid),
    found by the kit's one table checker (:func:`motion_keypoints.io.schema.check_table`) under
    :func:`submission_schema`, as strictly as the grader. Problems carry the file, line (header:
    1) and column.

    Things that are valid but suspicious go to ``warnings`` when a list is given: an all-zero
    submission (the sample's placeholder) and, with ``image_dir`` (the test images), coordinates
    outside their image.
    """
    schema = submission_schema(sample_submission)
    problems: List[Problem] = []
    table = check_table(path, schema, problems, register=True)
    if warnings is not None:
        values: Dict[str, Tuple[int, Dict[str, float]]] = {}
        for image, line, row in zip(table.images, table.lines, table.rows):
            cells = {c: float(v) for c, v in zip(schema.numeric, row) if np.isfinite(v)}
            if image:
                values.setdefault(image, (line, cells))
        warnings.extend(submission_warnings(str(path), values, image_dir))
    return problems


def submission_warnings(
    name: str,
    values: Dict[str, Tuple[int, Dict[str, float]]],
    image_dir: Optional[PathLike] = None,
) -> List[Problem]:
    """Valid but suspicious: every coordinate 0 (the sample's placeholder), and with
    ``image_dir``, coordinates outside their image (``0 <= x <= W``, ``0 <= y <= H``)."""
    from .io.images import image_size

    out: List[Problem] = []
    all_values = [v for _, cells in values.values() for v in cells.values()]
    if all_values and all(v == 0 for v in all_values):
        out.append(Problem(name, None, None, "every coordinate is 0: this looks like the "
                           "sample's placeholder, not predictions"))
        return out
    if image_dir is None:
        return out
    for image, (line, cells) in values.items():
        path = Path(image_dir) / image
        try:
            w, h = image_size(path)
        except (OSError, ValueError, DataError):
            continue  # a missing or unreadable image is check_data's to report
        for col, v in cells.items():
            limit = w if col.endswith("_x") else h if col.endswith("_y") else None
            if limit is not None and not 0 <= v <= limit:
                out.append(Problem(name, line, col, f"{v:g} is outside the {w}x{h} image "
                                   f"{image!r} (0 to {limit})"))
    return out


def submission_frame(
    images: Sequence[str],
    coords,
    sample_submission: PathLike,
    names: Sequence[str] = KEYPOINT_NAMES,
) -> pd.DataFrame:
    """Predictions ``(N, K, 2)`` for ``images`` as a frame in the sample's columns and row order.

    Raises :class:`DataError` naming missing/extra/duplicate images, column mismatches and
    non-finite values (they are never replaced by zeros).
    """
    images = [str(i) for i in images]
    coords = np.asarray(coords, dtype=float)
    if coords.shape != (len(images), len(names), 2):
        raise ValueError(
            f"coords have shape {coords.shape}; expected ({len(images)}, {len(names)}, 2) "
            "for the images and keypoints given"
        )
    sample = str(sample_submission)
    expected, expected_images = sample_layout(sample_submission)
    columns = ["image"] + [f"{n}_{axis}" for n in names for axis in ("x", "y")]
    problems: List[Problem] = []
    for col in expected:
        if col not in columns:
            problems.append(Problem(sample, 1, col, "sample_submission.csv column has no prediction"))
    for col in columns:
        if col not in expected:
            problems.append(Problem(sample, 1, col, "predicted column is not in sample_submission.csv"))
    row_of: Dict[str, int] = {}
    for i, image in enumerate(images):
        if image in row_of:
            problems.append(Problem(None, None, "image", f"image {image!r} predicted twice"))
        row_of[image] = i
    expected_set = set(expected_images)
    extra = [i for i in images if i not in expected_set]
    missing = [i for i in expected_images if i not in row_of]
    problems += [Problem(None, None, "image", f"predicted image {i!r} is not in {sample}") for i in extra]
    problems += [Problem(None, None, "image", f"no prediction for image {i!r} of {sample}") for i in missing]
    flat = coords.reshape(len(images), -1)
    for i, j in zip(*np.nonzero(~np.isfinite(flat))):
        problems.append(
            Problem(None, None, columns[1 + j], f"non-finite value {flat[i, j]} for image {images[i]!r}")
        )
    if problems:
        raise DataError(problems)
    frame = pd.DataFrame(flat, columns=columns[1:])
    frame.insert(0, "image", images)
    return frame.set_index("image").loc[expected_images].reset_index()[expected]


def write_submission(
    images: Sequence[str],
    coords,
    sample_submission: PathLike,
    out: PathLike,
    names: Sequence[str] = KEYPOINT_NAMES,
) -> Path:
    """Write the submission atomically, in ``sample_submission.csv``'s columns and row order.

    The written file is validated with :func:`check_submission` before it replaces ``out``; on any
    problem nothing is written and :class:`DataError` lists the problems.
    """
    frame = submission_frame(images, coords, sample_submission, names)
    out = Path(out)
    with atomic_path(out, kind="submission") as tmp:
        frame.to_csv(tmp, index=False)
        problems = check_submission(tmp, sample_submission)
        if problems:
            raise DataError(problems)
    return out
