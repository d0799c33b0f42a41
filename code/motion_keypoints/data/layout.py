"""A data root: its layout, its validation before long work, and its training labels.

A data root ``DIR`` has the competition layout::

    DIR/train_df.csv              image, NAME_x, NAME_y ... (one row per image)
    DIR/sample_submission.csv     same columns; its images are in test_imgs
    DIR/images/train_imgs/*.jpg
    DIR/images/test_imgs/*.jpg
    DIR/test_labels.csv           optional: true test keypoints (synthetic data only)
    DIR/label_overrides.csv       optional: corrected labels ``image, keypoint, x, y`` that
                                  :func:`load_train_df` applies over train_df.csv

Coordinates are pixel indices (see :mod:`motion_keypoints.geometry`); a point is reported as
outside an image of size W x H unless ``0 <= x <= W`` and ``0 <= y <= H``. Just outside is a
warning (the point gets visibility 0 in training); further than ``far_margin`` times the image
size outside (default :data:`FAR_MARGIN`: half the width left/right, half the height above/below)
it is implausible and an error naming file, line and column, unless ``allow_far_points``
(``check_data.py --allow-far-points``, the train config's ``DATA.ALLOW_FAR_POINTS``).
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from ..io.images import check_table_images, image_level
from ..io.problems import DataError, Problem
from ..io.tables import (
    CSV_COLUMNS,
    Table,
    apply_overrides,
    keypoints_array,
    parse_csv,
    parse_overrides,
    read_keypoint_csv,
    read_overrides,
)
from ..meta import KEYPOINT_NAMES
from ..utils import PathLike

#: The parts of a data root: ``train`` (train_df.csv + train_imgs) and ``test``
#: (sample_submission.csv + test_imgs).
DATA_SPLITS = ("train", "test")

logger = logging.getLogger("motion_keypoints")

#: How far outside its image a keypoint may lie, as a fraction of the image size (x: width,
#: y: height), before it is an error rather than a warning.
FAR_MARGIN = 0.5

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



@dataclass
class DataReport:
    """What :func:`validate_data_root` found: a summary per split and the warnings (not errors)."""

    summary: dict
    warnings: List[Problem] = field(default_factory=list)



def _outside_warnings(table: Table, far_margin: float | None = FAR_MARGIN
                      ) -> Tuple[List[Problem], List[Problem], int, int]:
    """Warnings for rows with keypoints outside their image, errors (one per coordinate) for
    points beyond ``far_margin`` x the image size outside (None: never an error); also the
    counts of points and rows outside."""
    df = table.df
    known = df["image"].map(lambda n: n in table.sizes).to_numpy(bool)
    if not known.any():
        return [], [], 0, 0
    xy = keypoints_array(df)[known]
    wh = np.array([table.sizes[n] for n in df["image"][known]], np.float64)[:, None, :]
    outside = ((xy < 0) | (xy > wh)).any(axis=2)
    lines = np.asarray(table.lines)[known]
    images = df["image"][known].tolist()
    errors: List[Problem] = []
    far = np.zeros_like(xy, dtype=bool)
    if far_margin is not None:
        margin = far_margin * wh
        far = (xy < -margin) | (xy > wh + margin)
        for r, k, a in zip(*np.nonzero(far)):
            w, h = table.sizes[images[r]]
            axis = "xy"[a]
            limit = margin[r, 0, a]
            errors.append(Problem(
                table.path, int(lines[r]), f"{KEYPOINT_NAMES[k]}_{axis}",
                f"{axis} = {xy[r, k, a]:g} is implausibly far outside the {w}x{h} image "
                f"{images[r]!r} (allowed: {-limit:g} to {(w, h)[a] + limit:g}, i.e. "
                f"{far_margin:g} x the image size outside): fix the label (label_overrides.csv) "
                "or allow such points explicitly (check_data.py --allow-far-points; "
                "DATA.ALLOW_FAR_POINTS True)"))
    near = outside & ~far.any(axis=2)
    warnings = []
    for r in np.flatnonzero(near.any(axis=1)):
        pts = ", ".join(f"{KEYPOINT_NAMES[k]} ({xy[r, k, 0]:g}, {xy[r, k, 1]:g})"
                        for k in np.flatnonzero(near[r]))
        w, h = table.sizes[images[r]]
        warnings.append(Problem(table.path, int(lines[r]), None, f"keypoints outside the {w}x{h} "
                                f"image {images[r]!r}: {pts} (they get visibility 0 in training)"))
    rows = int(outside.any(axis=1).sum())
    return warnings, errors, int(outside.sum()), rows


def train_labels(root: PathLike) -> Tuple[pd.DataFrame, Optional[pd.DataFrame]]:
    """``(labels, overrides)`` of a data root: ``train_df.csv`` read strictly with
    ``label_overrides.csv`` applied, and the overrides applied (None without the file)."""
    paths = DataPaths.from_root(root)
    df = read_keypoint_csv(paths.train_csv)
    if not paths.overrides.is_file():
        return df, None
    fixes = read_overrides(paths.overrides, df["image"].tolist(), paths.train_csv.name)
    logger.info("applied %d label overrides (%d images) from %s", len(fixes),
                fixes["image"].nunique(), paths.overrides)
    return apply_overrides(df, fixes), fixes


def load_train_df(root: PathLike, overrides: bool = True) -> pd.DataFrame:
    """The training labels of a data root: ``train_df.csv`` read strictly, with
    ``label_overrides.csv`` applied when it exists (and ``overrides`` is true)."""
    if not overrides:
        return read_keypoint_csv(DataPaths.from_root(root).train_csv)
    return train_labels(root)[0]


def validate_data_root(root: PathLike, check_images: Union[bool, str] = True,
                       splits: Sequence[str] = DATA_SPLITS, allow_far_points: bool = False,
                       far_margin: float = FAR_MARGIN) -> DataReport:
    """Check a data root before long work: the CSVs (strictly), ``label_overrides.csv`` when
    present, that every listed image is in its folder and readable (``check_images``:
    False/``"exists"``, ``"header"``, True/``"decode"``), and, where image sizes are known, which
    keypoints (overrides applied) lie outside their image (warnings), or further than
    ``far_margin`` x the image size outside (errors, unless ``allow_far_points``: then warnings).
    Raises :class:`DataError` listing every problem found."""
    level = image_level(check_images)
    unknown = [s for s in splits if s not in DATA_SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}: choose from {DATA_SPLITS}")
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
        table = parse_csv(csv_path, CSV_COLUMNS, problems)
        if split != "test_labels" or image_dir.is_dir():
            check_table_images(table, image_dir, level, problems, warnings, cache)
        if table.df is None:
            continue
        tables[split] = table
        info = {"csv": str(csv_path), "rows": len(table.df), "image_dir": str(image_dir)}
        if split == "train" and paths.overrides.is_file():
            fixes = parse_overrides(paths.overrides, table.images, csv_path.name, problems)
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
            outside, far, n_points, n_rows = _outside_warnings(
                table, None if allow_far_points else far_margin)
            warnings.extend(outside)
            problems.extend(far)
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
