"""Fusing the predictions of several runs, and evaluating predictions against labels.

Fusion is a pure function over arrays ``(M, N, K, 2)`` (members, images, keypoints, xy) with NaN
where a member has no prediction:

- ``mean`` / ``median``: coordinate-wise over the members present;
- ``weighted``: weighted mean, weights per member (:func:`rmse_weights`: ∝ 1/val_rmse²) and/or
  per-keypoint scores ``(M, N, K)``;
- ``robust``: for each keypoint, members farther than ``k·σ`` from the members' median are
  dropped, then the rest are averaged (the 3rd-place trick). σ estimates the root-mean-square
  distance of members from the median for that keypoint over all images, robustly:
  median distance / √ln 2 (exact for isotropic Gaussian scatter). Positions with fewer than three
  members are not screened; a position never loses all its members. With purely Gaussian scatter
  ``k=2`` drops about 11% / 7% / 4% of the predictions of 3 / 4 / 8 members, ``k=3`` about 1%.

A member that detected nobody on an image is left out there and filled from the others (counted
per member). When no member has a prediction (:func:`fuse_with_fallback`), the **fallback** is the
mean training pose: the mean of the training keypoints in image-relative units (x/width,
y/height), scaled into the image (:func:`metrics.mean_pose_baseline`); such images are counted and
named. Missing values are never written as zeros.

``python code/ensemble.py`` and ``python code/evaluate.py`` run :func:`main` and
:func:`main_evaluate`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from . import metrics
from .data import (
    DataError,
    DataPaths,
    Problem,
    image_size,
    keypoints_array,
    keypoints_frame,
    load_train_df,
    read_keypoint_csv,
    write_keypoint_csv,
)
from .keypoints import COORD_COLUMNS, FLIP_PAIRS, KEYPOINT_NAMES
from .submission import read_raw_csv, write_submission
from .utils import PathLike

METHODS: Tuple[str, ...] = ("mean", "median", "weighted", "robust")
WEIGHT_BY: Tuple[str, ...] = ("rmse", "score")
SPLITS: Tuple[str, ...] = ("test", "val")
SCORE_COLUMNS: Tuple[str, ...] = tuple(f"score_{n}" for n in KEYPOINT_NAMES)
BOX_COLUMNS: Tuple[str, ...] = ("box_x1", "box_y1", "box_x2", "box_y2", "box_score")
#: Columns of a run's ``predictions_<split>.csv``, in order.
PREDICTION_COLUMNS: Tuple[str, ...] = (
    ("image",) + COORD_COLUMNS + SCORE_COLUMNS + BOX_COLUMNS + ("detected", "width", "height")
)
FALLBACK_RULE = "mean training pose (image-relative) scaled into the image"
_SQRT_LN2 = math.sqrt(math.log(2.0))


class EnsembleError(ValueError):
    """Runs that cannot be ensembled, or a bad option; the message says what differs."""


# ---------------------------------------------------------------------------------------------
# Fusion: pure functions on arrays


@dataclass
class FusionResult:
    """Fused ``coords`` (N, K, 2) and how they were obtained."""

    coords: np.ndarray
    #: Per member: images where it detected nobody and the others filled in.
    fills_per_model: np.ndarray
    #: Images where no member predicted a keypoint and the fallback was used.
    fallback_count: int
    fallback_images: List[int] = field(default_factory=list)
    #: Per member: keypoint predictions dropped as outliers (``robust`` only).
    dropped_per_model: np.ndarray | None = None


def _check_coords(coords) -> np.ndarray:
    c = np.asarray(coords, dtype=float)
    if c.ndim != 4 or c.shape[-1] != 2 or c.shape[0] < 1:
        raise ValueError(f"coords must have shape (members, images, keypoints, 2); got {c.shape}")
    return c


def rmse_weights(rmses: Sequence[float]) -> np.ndarray:
    """Member weights ∝ 1/rmse², normalised to sum to 1."""
    r = np.asarray(rmses, dtype=float)
    if r.ndim != 1 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"validation RMSEs must be positive finite numbers; got {list(r)}")
    w = 1.0 / r**2
    return w / w.sum()


def _robust_keep(c: np.ndarray, present: np.ndarray, k: float) -> np.ndarray:
    """Mask (M, N, K) of the member predictions that ``robust`` keeps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nanmedian(c, axis=0)
    dist = np.linalg.norm(c - center[None], axis=-1)
    screened = present & (present.sum(axis=0) >= 3)[None]
    sigma = np.full(c.shape[2], np.nan)
    for j in range(c.shape[2]):
        d = dist[..., j][screened[..., j]]
        if d.size:
            sigma[j] = np.median(d) / _SQRT_LN2
    with np.errstate(invalid="ignore"):
        outlier = screened & (dist > k * sigma[None, None, :])
    keep = present & ~outlier
    emptied = present.any(axis=0) & ~keep.any(axis=0)
    return np.where(emptied[None], present, keep)


def _weighted_mean(c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean over axis 0 with weights ``w`` (M, N, K), zero for absent members; NaN where
    no weight at all."""
    total = w.sum(axis=0)
    s = (np.where(w[..., None] > 0, c, 0.0) * w[..., None]).sum(axis=0)
    out = np.full(s.shape, np.nan)
    np.divide(s, total[..., None], out=out, where=total[..., None] > 0)
    return out


def _fuse(c, method, weights, scores, k) -> Tuple[np.ndarray, np.ndarray]:
    """Fused coords and the mask of member predictions used."""
    if method not in METHODS:
        raise EnsembleError(f"unknown fusion method {method!r}; valid: {', '.join(METHODS)}")
    m, n, kk, _ = c.shape
    present = np.isfinite(c).all(axis=-1)
    c = np.where(present[..., None], c, np.nan)
    if method == "median":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(c, axis=0), present
    if method == "robust":
        if not k > 0:
            raise ValueError(f"robust fusion needs k > 0; got {k}")
        keep = _robust_keep(c, present, k)
        return _weighted_mean(c, keep.astype(float)), keep
    w = present.astype(float)
    if method == "weighted":
        if weights is None and scores is None:
            raise ValueError("weighted fusion needs member weights (e.g. rmse_weights) or scores")
        if weights is not None:
            weights = np.asarray(weights, dtype=float)
            if weights.shape != (m,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
                raise ValueError(f"weights must be {m} non-negative numbers; got {weights}")
            w = w * weights[:, None, None]
        if scores is not None:
            scores = np.asarray(scores, dtype=float)
            if scores.shape != (m, n, kk):
                raise ValueError(f"scores must have shape {(m, n, kk)}; got {scores.shape}")
            if np.any(present & ~np.isfinite(scores)):
                raise ValueError("scores must be finite wherever a coordinate is present")
            # Negative scores (raw heatmap logits) count as zero weight.
            w = w * np.clip(np.where(present, scores, 0.0), 0.0, None)
        # Where every present member has zero weight, fall back to the plain mean.
        zero = present.any(axis=0) & (w.sum(axis=0) <= 0)
        w = np.where(zero[None], present.astype(float), w)
    return _weighted_mean(c, w), present


def fuse(coords, method: str = "mean", weights=None, scores=None, k: float = 2.0) -> np.ndarray:
    """Fuse member predictions ``(M, N, K, 2)`` (NaN: missing) into ``(N, K, 2)``.

    Missing members are left out per keypoint; a keypoint no member predicted stays NaN (see
    :func:`fuse_with_fallback`). ``weights`` (M,) and ``scores`` (M, N, K) are used by
    ``weighted`` only (both multiply when given); ``k`` by ``robust`` only.
    """
    return _fuse(_check_coords(coords), method, weights, scores, k)[0]


def fuse_with_fallback(
    coords,
    method: str = "mean",
    weights=None,
    scores=None,
    k: float = 2.0,
    fallback=None,
) -> FusionResult:
    """:func:`fuse`, then fill every keypoint no member predicted from ``fallback`` (N, K, 2).

    Counts, per member, the images it missed that the others filled, and the images that needed
    the fallback. Raises ValueError when the fallback is needed but not given.
    """
    c = _check_coords(coords)
    out, used = _fuse(c, method, weights, scores, k)
    present = np.isfinite(c).all(axis=-1)
    image_missed = ~present.any(axis=2)  # (M, N): member predicted nothing on the image
    others = (~image_missed).sum(axis=0)[None] - (~image_missed)
    fills = (image_missed & (others > 0)).sum(axis=1)
    hole = ~np.isfinite(out).all(axis=-1)
    fallback_images = [int(i) for i in np.nonzero(hole.any(axis=1))[0]]
    if fallback_images:
        if fallback is None:
            raise ValueError(
                f"{len(fallback_images)} images have no prediction from any member and no "
                "fallback was given"
            )
        fb = np.asarray(fallback, dtype=float)
        if fb.shape != out.shape or not np.all(np.isfinite(fb[hole])):
            raise ValueError(f"fallback must be finite with shape {out.shape}; got {fb.shape}")
        out = np.where(hole[..., None], fb, out)
    dropped = (present & ~used).sum(axis=(1, 2)) if method == "robust" else None
    return FusionResult(out, fills, len(fallback_images), fallback_images, dropped)


# ---------------------------------------------------------------------------------------------
# Reading run folders


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


def _parse_number(text: str) -> float:
    t = text.strip()
    return math.nan if t.lower() in ("", "nan") else float(t)


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
                values[r, j] = _parse_number(fields[c])
            except ValueError:
                problems.append(Problem(name, line, numeric[j], f"not a number: {fields[c]!r}"))
    if problems:
        raise DataError(problems)
    return images, lines, values


def predict_command(run_dir: PathLike, data_root: PathLike, split: str) -> str:
    return f"python code/predict.py --run {run_dir} --data-root {data_root} --split {split}"


def load_run_info(run_dir: PathLike) -> dict:
    path = Path(run_dir) / "run_info.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} is not a trained run folder (training writes run_info.json)"
        )
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EnsembleError(f"{path}: not valid JSON ({exc})") from None
    for key in ("keypoint_names", "flip_pairs"):
        if key not in info:
            raise EnsembleError(f"{path}: missing key {key!r}")
    return info


def read_predictions(path: PathLike) -> dict:
    """Arrays of a ``predictions_<split>.csv`` (see :data:`PREDICTION_COLUMNS`), validated."""
    name = str(path)
    numeric = PREDICTION_COLUMNS[1:]
    images, lines, v = read_numeric_csv(path, numeric)
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


def load_run(
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


def _list(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def _names_difference(a: Sequence[str], b: Sequence[str]) -> str | None:
    a, b = list(a), list(b)
    if a == b:
        return None
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if only_a or only_b:
        return (f"{len(a)} vs {len(b)} keypoints; only in the first: {_list(only_a) or '-'}; "
                f"only in the second: {_list(only_b) or '-'}")
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"same keypoints in another order (position {i}: {a[i]!r} vs {b[i]!r})"


def check_compatible(runs: Sequence[RunPredictions], split: str = "test") -> None:
    """Refuse runs with other keypoint definitions, image sets or image sizes, naming the
    difference."""
    ref = runs[0]
    kit_pairs = {tuple(p) for p in FLIP_PAIRS}
    for run in runs:
        names = run.info["keypoint_names"]
        diff = _names_difference(ref.info["keypoint_names"], names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} and {ref.run_dir} have different keypoint definitions: {diff}"
            )
        diff = _names_difference(KEYPOINT_NAMES, names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} uses other keypoints than this kit (keypoints.KEYPOINT_NAMES): {diff}"
            )
        pairs = {tuple(p) for p in run.info["flip_pairs"]}
        if pairs != kit_pairs:
            raise EnsembleError(
                f"{run.run_dir}/run_info.json has other flip pairs than the kit: "
                f"extra {sorted(pairs - kit_pairs)}, missing {sorted(kit_pairs - pairs)}"
            )
        if set(run.images) != set(ref.images):
            lacks = sorted(set(ref.images) - set(run.images))
            extra = sorted(set(run.images) - set(ref.images))
            raise EnsembleError(
                f"{run.file} and {ref.file} predict different image sets: "
                f"{len(lacks)} missing ({_list(lacks) or '-'}), {len(extra)} extra "
                f"({_list(extra) or '-'}); "
                + ("the runs hold out different validation images: train them with the same "
                   "DATA.SPLIT_SEED and DATA.VAL_FRACTION" if split == "val"
                   else "predict all runs on the same data")
            )
        aligned = run.aligned(ref.images)
        bad = np.nonzero(np.any(aligned.sizes != ref.sizes, axis=1))[0]
        if bad.size:
            i = int(bad[0])
            raise EnsembleError(
                f"{run.file} and {ref.file} disagree on the size of {bad.size} images, e.g. "
                f"{ref.images[i]}: {aligned.sizes[i].tolist()} vs {ref.sizes[i].tolist()}"
            )


# ---------------------------------------------------------------------------------------------
# Tables and evaluation


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


def main_evaluate(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="evaluate.py", description="RMSE of predictions against labels, overall and per keypoint."
    )
    parser.add_argument("--pred", required=True, help="predictions or submission CSV")
    parser.add_argument("--truth", required=True, help="labels CSV (train_df.csv, test_labels.csv)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out images without a prediction (counted) instead of failing")
    args = parser.parse_args(argv)
    try:
        res = evaluate_files(args.pred, args.truth, args.skip_missing)
    except (DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = [(n, v) for n, v in res["per_keypoint"].items()] + [("overall", res["rmse"])]
    print(f"{args.pred} vs {args.truth}: {res['images']} images")
    if res["skipped"]:
        print(f"skipped {len(res['skipped'])} images without prediction: {_list(res['skipped'])}")
    print(format_table(("keypoint", "RMSE (px)"), rows))
    return 0


# ---------------------------------------------------------------------------------------------
# The ensemble driver


@dataclass
class EnsembleSummary:
    """What :func:`run_ensemble` did; ``rmse``/``rmse_noflip`` map member labels and
    ``"ensemble"`` to RMSE (None: not available)."""

    split: str
    method: str
    runs: List[str]
    images: List[str]
    coords: np.ndarray
    fills: Dict[str, int]
    fallback_images: List[str]
    dropped: Dict[str, int]
    rmse: Dict[str, float | None]
    rmse_noflip: Dict[str, float | None]
    out: Path | None
    samples: List[Path]
    table: str


def mean_pose_fallback(data_root: PathLike, sizes, exclude: Sequence[str] = ()) -> np.ndarray:
    """The fallback pose (N, K, 2): mean training pose in image-relative units (over
    ``train_df.csv`` minus ``exclude``), scaled to each (width, height) in ``sizes``."""
    from tqdm import tqdm

    paths = DataPaths.from_root(data_root)
    df = load_train_df(paths.root)
    df = df[~df["image"].isin(list(exclude))]
    if len(df) == 0:
        raise DataError([Problem(str(paths.train_csv), None, None, "no training rows for the mean pose")])
    train_sizes = [
        image_size(paths.train_images / img)
        for img in tqdm(list(df["image"]), desc="train image sizes", leave=False, disable=len(df) < 500)
    ]
    return metrics.mean_pose_baseline(keypoints_array(df), train_sizes, sizes)


def _labels(runs: Sequence[PathLike]) -> List[str]:
    names = [Path(r).name for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def _ensemble_table(labels, members, result: FusionResult, method, weights, rmse, rmse_nf,
                    has_noflip: bool) -> str:
    """Members and the ensemble side by side: detections, fills, drops, weights, RMSEs."""
    n = len(members[0].images)
    headers = ["member", "detected", "filled"]
    extra = {
        "outliers dropped": None if result.dropped_per_model is None
        else [int(d) for d in result.dropped_per_model],
        "weight": None if weights is None else [float(w) for w in weights],
        "RMSE": [rmse[lab] for lab in labels] if rmse else None,
        "RMSE no flip": [rmse_nf[lab] for lab in labels] if has_noflip else None,
    }
    extra = {k: v for k, v in extra.items() if v is not None}
    ensemble = {"RMSE": rmse.get("ensemble"), "RMSE no flip": rmse_nf.get("ensemble")}
    rows: List[List[object]] = []
    for i, (lab, m) in enumerate(zip(labels, members)):
        rows.append([lab, f"{int(m.detected.sum())}/{n}", int(result.fills_per_model[i])]
                    + [v[i] for v in extra.values()])
    rows.append([f"ensemble ({method})", f"{n - result.fallback_count}/{n}", None]
                + [ensemble.get(k) for k in extra])
    return format_table(headers + list(extra), rows)


def run_ensemble(
    runs: Sequence[PathLike],
    data_root: PathLike,
    split: str = "test",
    method: str = "mean",
    out: PathLike | None = None,
    *,
    weight_by: str = "rmse",
    k: float = 2.0,
    samples: int = 8,
    samples_dir: PathLike | None = None,
    seed: int = 0,
    echo: Callable[[str], None] = print,
) -> EnsembleSummary:
    """Fuse the runs' ``predictions_<split>.csv`` and write ``out``.

    test: ``out`` is the submission (sample_submission.csv columns and order, validated); val:
    ``out`` is a keypoint CSV of the fused predictions. RMSEs of each member, the ensemble and,
    where ``predictions_<split>_noflip.csv`` exist, without flip TTA, are printed side by side
    when labels exist (val: train_df.csv; test: test_labels.csv). With ``samples`` > 0, sample
    grids go to ``<run>/samples/`` and to ``samples_dir`` (default: ``samples/`` next to ``out``,
    else ``outputs/ensemble/samples``).
    """
    if method not in METHODS:
        raise EnsembleError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if split not in SPLITS:
        raise EnsembleError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if weight_by not in WEIGHT_BY:
        raise EnsembleError(f"unknown --weight-by {weight_by!r}; valid: {', '.join(WEIGHT_BY)}")
    if not runs:
        raise EnsembleError("no runs given")
    resolved = [Path(r).resolve() for r in runs]
    dup = [str(r) for r in runs if resolved.count(Path(r).resolve()) > 1]
    if dup:
        raise EnsembleError(f"run given more than once: {dup[0]}")
    paths = DataPaths.from_root(data_root)
    members = [load_run(r, split, data_root) for r in runs]
    check_compatible(members, split)
    images = members[0].images
    members = [m.aligned(images) for m in members]
    noflip = [load_run(r, split, data_root, noflip=True) for r in runs]
    for main_run, nf in zip(members, noflip):
        if nf is not None:
            check_compatible([main_run, nf], split)
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    labels = _labels(runs)
    sizes = members[0].sizes

    weights = None
    if method == "weighted" and weight_by == "rmse":
        rmses = [m.info.get("val_rmse") for m in members]
        for m, r in zip(members, rmses):
            if not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise EnsembleError(
                    f"--method weighted --weight-by rmse needs a positive val_rmse in every "
                    f"run_info.json; {m.run_dir} has {r!r}: use --weight-by score or another method"
                )
        weights = rmse_weights(rmses)
    use_scores = method == "weighted" and weight_by == "score"

    fallback_cache: List[np.ndarray] = []

    def fallback() -> np.ndarray:
        if not fallback_cache:
            exclude = images if split == "val" else ()
            fallback_cache.append(mean_pose_fallback(data_root, sizes, exclude))
        return fallback_cache[0]

    def fused(group: Sequence[RunPredictions]) -> FusionResult:
        c = np.stack([g.coords for g in group])
        missing = ~np.isfinite(c).all(axis=-1).any(axis=0).all(axis=-1)
        fb = fallback() if missing.any() else None
        s = np.stack([g.scores for g in group]) if use_scores else None
        w = weights if len(group) == len(members) else None
        mth = method if len(group) > 1 else "mean"
        return fuse_with_fallback(c, mth, weights=w, scores=s, k=k, fallback=fb)

    result = fused(members)
    fallback_names = [images[i] for i in result.fallback_images]

    truth = None
    if split == "val":
        truth = truth_for(images, paths.train_csv, load_train_df(paths.root))
    elif paths.test_labels.is_file():
        truth = truth_for(images, paths.test_labels)

    rmse: Dict[str, float | None] = {}
    rmse_nf: Dict[str, float | None] = {}
    if truth is not None:
        for lab, m, nf in zip(labels, members, noflip):
            rmse[lab] = metrics.rmse(fused([m]).coords, truth)
            rmse_nf[lab] = None if nf is None else metrics.rmse(fused([nf]).coords, truth)
        rmse["ensemble"] = metrics.rmse(result.coords, truth)
        all_nf = all(nf is not None for nf in noflip)
        rmse_nf["ensemble"] = metrics.rmse(fused(noflip).coords, truth) if all_nf else None

    n = len(images)
    has_noflip = truth is not None and any(nf is not None for nf in noflip)
    table = _ensemble_table(labels, members, result, method, weights, rmse, rmse_nf, has_noflip)

    detail = f" (k={k})" if method == "robust" else f" (by {weight_by})" if method == "weighted" else ""
    echo(f"ensemble of {len(members)} runs on {split} ({n} images), method {method}{detail}")
    echo(table)
    if truth is None:
        echo(f"no labels for {split} ({paths.test_labels} absent): RMSE not computed")
    elif has_noflip:
        echo(f"RMSE no flip: from predictions_{split}_noflip.csv (the same models without flip TTA)")
    fills = dict(zip(labels, (int(f) for f in result.fills_per_model)))
    echo("filled from the other members: " + ", ".join(f"{lab} {f}" for lab, f in fills.items()) + " images")
    if fallback_names:
        echo(f"fallback ({FALLBACK_RULE}) on {len(fallback_names)} images nobody detected: "
             f"{_list(fallback_names)}")
    else:
        echo("fallback: not needed (every image has a detection)")

    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if split == "test":
            write_submission(images, result.coords, paths.sample_submission, out_path)
            echo(f"wrote {out_path} ({n} rows; checked against {paths.sample_submission})")
        else:
            write_keypoint_csv(keypoints_frame(images, result.coords), out_path)
            echo(f"wrote {out_path} ({n} rows)")

    written: List[Path] = []
    if samples > 0:
        from .visualize import save_samples

        image_dir = paths.test_images if split == "test" else paths.train_images
        for lab, m in zip(labels, members):
            written.append(save_samples(
                image_dir, images, m.coords, m.run_dir / "samples" / f"{split}_samples.jpg",
                n=samples, seed=seed, boxes=m.boxes, title=f"{lab} ({split})",
            ))
        if samples_dir is None:
            samples_dir = out_path.parent / "samples" if out_path else Path("outputs/ensemble/samples")
        written.append(save_samples(
            image_dir, images, result.coords, Path(samples_dir) / f"ensemble_{method}_{split}.jpg",
            n=samples, seed=seed, title=f"ensemble ({method}, {split})",
        ))
        echo("samples: " + ", ".join(str(p) for p in written))

    dropped = result.dropped_per_model
    return EnsembleSummary(
        split=split, method=method, runs=labels, images=list(images), coords=result.coords,
        fills=fills,
        fallback_images=fallback_names,
        dropped={} if dropped is None else dict(zip(labels, (int(d) for d in dropped))),
        rmse=rmse, rmse_noflip=rmse_nf, out=out_path, samples=written, table=table,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ensemble.py",
        description="Fuse the predictions of several runs into a submission (test) or evaluate "
        "the fusion on the validation images (val).",
    )
    parser.add_argument("--runs", nargs="+", required=True, help="run folders (outputs/<run>)")
    parser.add_argument("--data-root", required=True, help="data folder of the predictions")
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--method", default="mean", choices=METHODS)
    parser.add_argument("--weight-by", default="rmse", choices=WEIGHT_BY,
                        help="weighted: run_info val_rmse (weights ∝ 1/rmse²) or keypoint scores")
    parser.add_argument("--k", type=float, default=2.0, help="robust: drop members beyond k·σ")
    parser.add_argument("--out", default=None,
                        help="output CSV (default: submissions/submission.csv for test, "
                        "outputs/ensemble/predictions_val.csv for val)")
    parser.add_argument("--samples", type=int, default=8, help="images per sample grid (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample images")
    args = parser.parse_args(argv)
    out = args.out or (
        "submissions/submission.csv" if args.split == "test" else "outputs/ensemble/predictions_val.csv"
    )
    try:
        run_ensemble(
            args.runs, args.data_root, args.split, args.method, out,
            weight_by=args.weight_by, k=args.k, samples=args.samples, seed=args.seed,
        )
    except (EnsembleError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
