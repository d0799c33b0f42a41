"""The predictions CSV of a run, model-agnostic: any model family joins the ensemble by writing
``<run>/predictions_<split>.csv`` in these columns (and ``run_info.json``, see :mod:`.runs`).

Per image: the top-scoring person's keypoints (pixel-index coordinates, like train_df.csv), the
keypoint scores, the box (continuous coordinates), its score, ``detected`` (0: nobody found,
coordinates NaN) and the image size. With flip TTA the un-augmented predictions are kept in
``predictions_<split>_noflip.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..meta import COORD_COLUMNS, KEYPOINT_NAMES
from ..utils import PathLike, atomic_path
from .problems import DataError, Problem
from .runs import load_run_info
from .schema import TableSchema, read_table

#: The splits a run predicts: the test images (sample_submission.csv order) and its validation
#: frames (split.json).
PREDICTION_SPLITS: Tuple[str, ...] = ("test", "val")

SCORE_COLUMNS: Tuple[str, ...] = tuple(f"score_{n}" for n in KEYPOINT_NAMES)
BOX_COLUMNS: Tuple[str, ...] = ("box_x1", "box_y1", "box_x2", "box_y2", "box_score")
#: Columns of a run's ``predictions_<split>.csv``, in order.
PREDICTION_COLUMNS: Tuple[str, ...] = (
    ("image",) + COORD_COLUMNS + SCORE_COLUMNS + BOX_COLUMNS + ("detected", "width", "height")
)
#: What :func:`read_predictions` checks with the kit's one table checker: every column of
#: :data:`PREDICTION_COLUMNS` (others are ignored), numbers finite or empty/``nan`` (no
#: prediction), unique plain image names.
PREDICTION_SCHEMA = TableSchema(PREDICTION_COLUMNS, source="PREDICTION_COLUMNS", ordered=False,
                                exact_names=False, missing_values=True, need_rows=False)

@dataclass
class RunPredictions:
    """One run's ``predictions_<split>[_noflip].csv``; ``coords`` are NaN where ``detected`` is 0."""

    run_dir: Path
    info: dict
    file: Path
    images: List[str]
    coords: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    sizes: np.ndarray

    @property
    def label(self) -> str:
        return self.run_dir.name

    def aligned(self, images: Sequence[str]) -> RunPredictions:
        """The same predictions with rows in the order of ``images`` (same set)."""
        pos = {img: i for i, img in enumerate(self.images)}
        idx = np.array([pos[i] for i in images], dtype=int)
        return RunPredictions(
            self.run_dir, self.info, self.file, list(images), self.coords[idx],
            self.scores[idx], self.boxes[idx], self.detected[idx], self.sizes[idx],
        )



def predict_command(run_dir: PathLike, data_root: PathLike, split: str) -> str:
    return f"python code/predict.py --run {run_dir} --data-root {data_root} --split {split}"


def prediction_paths(run_dir: PathLike, split: str, out: Optional[PathLike] = None,
                     tag: Optional[str] = None) -> Tuple[Path, Path]:
    """Where ``predict`` writes: ``out`` (a CSV file), else ``<run>/predictions_<split>[_<tag>]
    .csv`` (the untagged default is what the ensemble reads); and the plain-model CSV beside it
    for flip TTA (``..._noflip.csv``)."""
    if out is not None and tag is not None:
        raise ValueError("give --out or --tag, not both")
    if tag is not None and (not tag or not tag.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"--tag {tag!r}: use letters, digits, - and _ only")
    path = Path(out) if out is not None else (
        Path(run_dir) / f"predictions_{split}{'_' + tag if tag else ''}.csv")
    return path, path.with_name(f"{path.stem}_noflip{path.suffix or '.csv'}")



def read_predictions(path: PathLike) -> dict:
    """Arrays of a ``predictions_<split>.csv`` (see :data:`PREDICTION_COLUMNS`), validated."""
    name = str(path)
    table = read_table(path, PREDICTION_SCHEMA)  # registers it as an input of the command
    images, lines, v = table.images, table.lines, table.values
    ncoord, nkp = len(COORD_COLUMNS), len(KEYPOINT_NAMES)
    coords = v[:, :ncoord].reshape(len(images), nkp, 2)
    scores = v[:, ncoord : ncoord + nkp]
    boxes = v[:, ncoord + nkp : ncoord + nkp + 4]
    detected, sizes = v[:, -3], v[:, -2:]
    problems: List[Problem] = []
    for r, line in enumerate(lines):
        if detected[r] not in (0.0, 1.0):
            problems.append(Problem(name, line, "detected", f"must be 0 or 1, not {detected[r]}"))
            continue
        for j, c in enumerate(("width", "height")):
            if not (np.isfinite(sizes[r, j]) and sizes[r, j] > 0):
                problems.append(Problem(name, line, c, f"image size must be positive, not {sizes[r, j]}"))
        flat = coords[r].reshape(-1)
        if detected[r] == 1:
            bad = np.nonzero(~np.isfinite(flat))[0]
            if bad.size:
                problems.append(Problem(name, line, COORD_COLUMNS[bad[0]],
                                        f"no finite value although detected=1 ({bad.size} such cells)"))
            bad = np.nonzero(~np.isfinite(scores[r]))[0]
            if bad.size:
                problems.append(Problem(name, line, SCORE_COLUMNS[bad[0]],
                                        "no finite score although detected=1"))
        elif np.isfinite(flat).any():
            j = int(np.nonzero(np.isfinite(flat))[0][0])
            problems.append(Problem(name, line, COORD_COLUMNS[j],
                                    "coordinates given although detected=0 (must be NaN)"))
    if problems:
        raise DataError(problems)
    return {"images": images, "coords": coords, "scores": scores, "boxes": boxes,
            "detected": detected == 1, "sizes": sizes}


def load_member_predictions(
    run_dir: PathLike, split: str, data_root: PathLike, noflip: bool = False
) -> RunPredictions | None:
    """A run's predictions for ``split``; ``noflip=True`` reads the optional no-TTA file (None
    when absent). A missing main file raises FileNotFoundError with the predict command."""
    run_dir = Path(run_dir)
    info = load_run_info(run_dir)
    file = run_dir / f"predictions_{split}{'_noflip' if noflip else ''}.csv"
    if not file.is_file():
        if noflip:
            return None
        raise FileNotFoundError(
            f"{file} is missing; predict it with: {predict_command(run_dir, data_root, split)}"
        )
    arrays = read_predictions(file)
    return RunPredictions(run_dir=run_dir, info=info, file=file, **arrays)




def prediction_frame(names: Sequence[str], persons: Sequence[Optional[dict]], sizes) -> pd.DataFrame:
    """The rows of a predictions CSV: per image its top person (a dict with ``keypoints`` (K, 2),
    ``keypoint_scores`` (K,), ``box`` (4,) and ``score``; None: nobody detected) and its
    (width, height)."""
    rows = []
    k = len(KEYPOINT_NAMES)
    for name, p, (w, h) in zip(names, persons, sizes):
        if p is None:
            vals = [np.nan] * (2 * k) + [0.0] * k + [np.nan] * 4 + [0.0, 0, w, h]
        else:
            vals = (
                list(p["keypoints"].reshape(-1)) + list(p["keypoint_scores"]) + list(p["box"])
                + [p["score"], 1, w, h]
            )
        rows.append([name, *vals])
    df = pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))
    return df.astype({"detected": int, "width": int, "height": int})


def write_predictions(df: pd.DataFrame, path: PathLike, option: str = "--out") -> None:
    """Write a predictions frame atomically (3 decimals), through the output policy."""
    with atomic_path(path, kind="predictions", option=option) as tmp:
        df.to_csv(tmp, index=False, float_format="%.3f")
