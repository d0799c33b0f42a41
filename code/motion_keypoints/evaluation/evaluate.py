"""Predictions against labels: the competition RMSE of a predictions or submission CSV, and the
text tables the commands print. The command line is :mod:`motion_keypoints.cli.evaluate`."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..data.layout import DataPaths, load_train_df
from ..io.images import image_size
from ..io.problems import DataError, Problem
from ..io.tables import COORD_COLUMNS, keypoints_array, read_keypoint_csv, read_numeric_csv
from ..meta import KEYPOINT_NAMES
from ..utils import PathLike
from . import metrics


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An aligned text table: first column left-aligned, the others right-aligned."""
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.3f}"
        return str(v)

    text = [[str(h) for h in headers]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[j]) for r in text) for j in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
        for r in text
    ]
    return "\n".join(lines)


def truth_for(images: Sequence[str], truth_csv: PathLike, df=None) -> np.ndarray:
    """True keypoints (N, K, 2) of ``images`` from a labels CSV (or its already loaded frame
    ``df``); raises DataError for images without labels."""
    df = read_keypoint_csv(truth_csv) if df is None else df
    pos = {img: i for i, img in enumerate(df["image"])}
    missing = [i for i in images if i not in pos]
    if missing:
        raise DataError(
            [Problem(str(truth_csv), None, "image", f"no labels for image {i!r}") for i in missing]
        )
    return keypoints_array(df)[[pos[i] for i in images]]


def evaluate_files(pred: PathLike, truth: PathLike, skip_missing: bool = False) -> dict:
    """RMSE overall and per keypoint of a predictions/submission CSV against a labels CSV.

    The prediction file needs ``image`` and the coordinate columns (others are ignored). Rows
    without a prediction (NaN) raise DataError unless ``skip_missing``, which leaves them out and
    counts them.
    """
    images, lines, values = read_numeric_csv(pred, COORD_COLUMNS)
    coords = values.reshape(len(images), len(KEYPOINT_NAMES), 2)
    ok = np.isfinite(coords).all(axis=(1, 2))
    if not ok.all() and not skip_missing:
        raise DataError([
            Problem(str(pred), lines[i], None,
                    f"no prediction for image {images[i]!r} (NaN): evaluate a filled file (the "
                    "ensemble's output) or pass --skip-missing")
            for i in np.nonzero(~ok)[0]
        ])
    if not ok.any():
        raise DataError([Problem(str(pred), None, None, "no image with a prediction to evaluate")])
    kept = [img for img, good in zip(images, ok) if good]
    true = truth_for(kept, truth)
    return {
        "images": len(kept),
        "skipped": [img for img, good in zip(images, ok) if not good],
        "rmse": metrics.rmse(coords[ok], true),
        "per_keypoint": metrics.per_keypoint_rmse(coords[ok], true),
    }


def short_list(items: Sequence[str], limit: int = 5) -> str:
    """``a, b, c ... (N in all)``: the first ``limit`` items of a long list."""
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def training_mean_pose(data_root: PathLike, exclude: Sequence[str] = ()) -> np.ndarray:
    """THE mean pose of the kit (K, 2), in image-relative units (x/width, y/height): the mean of
    the training labels of ``data_root`` (``train_df.csv`` with label overrides) minus
    ``exclude``, which is the validation frames of the run's split. So it is computed from the
    training rows of the split, original frames only (never the augmented copies), and the
    trainer's evaluator and the ensemble's fallback get the same pose for the same split."""
    from tqdm import tqdm

    paths = DataPaths.from_root(data_root)
    df = load_train_df(paths.root)
    df = df[~df["image"].isin(list(exclude))]
    if len(df) == 0:
        raise DataError([Problem(str(paths.train_csv), None, None, "no training rows for the mean pose")])
    sizes = [
        image_size(paths.train_images / img)
        for img in tqdm(list(df["image"]), desc="train image sizes", leave=False, disable=len(df) < 500)
    ]
    return metrics.mean_relative_pose(keypoints_array(df), sizes)
