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
from .io.tables import coordinate_problem, parse_number, read_raw_csv
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


def check_submission(
    path: PathLike,
    sample_submission: PathLike,
    warnings: Optional[List[Problem]] = None,
    image_dir: Optional[PathLike] = None,
) -> List[Problem]:
    """Every problem of a submission file compared with ``sample_submission.csv`` (empty: valid).

    Checked as strictly as the grader: columns (missing, extra, duplicated, order, surrounding
    spaces), each image present exactly once and spelled exactly (no surrounding spaces), no
    image outside the sample, rows in the sample's order, and every value a finite number.
    Problems carry the file, line (header: 1) and column.

    Things that are valid but suspicious go to ``warnings`` when a list is given: an all-zero
    submission (the sample's placeholder) and, with ``image_dir`` (the test images), coordinates
    outside their image.
    """
    name = str(path)
    expected, expected_images = sample_layout(sample_submission)
    try:
        raw_header, rows = read_raw_csv(path, strip_header=False)
    except DataError as exc:
        return list(exc.problems)

    problems: List[Problem] = []
    header = [h.strip() for h in raw_header]
    for raw, col in zip(raw_header, header):
        if raw != col:
            problems.append(Problem(name, 1, col, f"column name {raw!r} has surrounding spaces: "
                                    f"write it as {col!r} (the grader compares names exactly)"))
    first_seen: Dict[str, int] = {}
    for j, col in enumerate(header):
        if col in first_seen:
            problems.append(
                Problem(name, 1, col, f"column appears twice (columns {first_seen[col] + 1} and {j + 1})")
            )
        else:
            first_seen[col] = j
    expected_set = set(expected)
    for j, col in enumerate(expected):
        if col not in first_seen:
            problems.append(
                Problem(name, 1, col, f"missing column (column {j + 1} of sample_submission.csv)")
            )
    for col in first_seen:
        if col not in expected_set:
            problems.append(Problem(name, 1, col, "unexpected column: not in sample_submission.csv"))
    if not problems and header != expected:
        j = next(i for i, (a, b) in enumerate(zip(header, expected)) if a != b)
        problems.append(
            Problem(
                name, 1, header[j],
                f"column {j + 1} is {header[j]!r} but sample_submission.csv has {expected[j]!r} "
                "there: put the columns in sample_submission.csv order",
            )
        )
    if "image" not in first_seen:
        problems.append(Problem(name, 1, "image", "no 'image' column: rows cannot be checked"))
        return problems

    image_col = first_seen["image"]
    value_cols = [(j, c) for c, j in first_seen.items() if c != "image" and c in expected_set]
    expected_pos = {img: i for i, img in enumerate(expected_images)}
    seen_at: Dict[str, int] = {}
    found: List[str] = []
    values: Dict[str, Tuple[int, Dict[str, float]]] = {}
    for line, fields in rows:
        if len(fields) != len(header):
            problems.append(
                Problem(name, line, None, f"{len(fields)} fields but the header has {len(header)}")
            )
            continue
        image = fields[image_col].strip()
        if image and image != fields[image_col]:
            problems.append(Problem(name, line, "image", f"image name {fields[image_col]!r} has "
                                    f"surrounding spaces: write it as {image!r}"))
        if not image:
            problems.append(Problem(name, line, "image", "empty image name"))
        elif image in seen_at:
            problems.append(
                Problem(name, line, "image", f"duplicate image {image!r} (first at line {seen_at[image]})")
            )
        elif image not in expected_pos:
            problems.append(
                Problem(name, line, "image", f"image {image!r} is not in sample_submission.csv")
            )
        else:
            seen_at[image] = line
            found.append(image)
        cells: Dict[str, float] = {}
        for j, col in value_cols:
            why = coordinate_problem(fields[j])
            if why:
                problems.append(Problem(name, line, col, why))
            else:
                cells[col] = parse_number(fields[j])
        if image:
            values.setdefault(image, (line, cells))
    for i, image in enumerate(expected_images):
        if image not in seen_at:
            problems.append(
                Problem(name, None, "image",
                        f"missing image {image!r} (line {i + 2} of sample_submission.csv)")
            )
    if len(found) == len(expected_images) and found != expected_images:
        out_of_place = sum(a != b for a, b in zip(found, expected_images))
        i = next(i for i, (a, b) in enumerate(zip(found, expected_images)) if a != b)
        problems.append(
            Problem(
                name, seen_at[found[i]], "image",
                f"row order: image {found[i]!r} where sample_submission.csv has "
                f"{expected_images[i]!r} ({out_of_place} rows out of place): sort the rows in "
                "sample_submission.csv order",
            )
        )
    if warnings is not None:
        warnings.extend(submission_warnings(name, values, image_dir))
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
