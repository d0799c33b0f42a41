"""Predictions against labels: the competition RMSE of a predictions or submission CSV, and the
text tables the commands print. The command line is :mod:`motion_keypoints.cli.evaluate`."""

from __future__ import annotations

import math
from pathlib import Path
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


def image_sizes(data_root: PathLike, images: Sequence[str]) -> np.ndarray | None:
    """``(N, 2)`` (width, height) of ``images`` found in the data root's train or test images;
    None when one is not there."""
    paths = DataPaths.from_root(data_root)
    out = []
    for img in images:
        for folder in (paths.train_images, paths.test_images):
            if (folder / img).is_file():
                out.append(image_size(folder / img))
                break
        else:
            return None
    return np.asarray(out, dtype=float)


def mean_pose_for(data_root: PathLike, images: Sequence[str], sizes,
                  exclude: Sequence[str] | None = None) -> np.ndarray:
    """The mean-pose baseline ``(N, K, 2)`` on ``images`` of ``sizes``: the kit's one mean pose
    (:func:`training_mean_pose`) of the training rows other than ``exclude`` (default:
    ``images``), scaled into each image. On a run's validation frames that is its split's
    training rows."""
    rel = training_mean_pose(data_root, exclude=images if exclude is None else exclude)
    return metrics.scale_pose(rel, sizes)


def score_arrays(pred, truth, baseline, images: Sequence[str]) -> dict:
    """Everything the kit reports of predictions ``(N, K, 2)`` against ``truth``: RMSE overall,
    per keypoint and per camera, PCK@0.05 and PCK@0.1 per keypoint, and the same RMSEs of the
    mean-pose ``baseline`` (None: not available) with the ratio to it."""
    from ..data.split import camera_of

    cams = [camera_of(i) for i in images]
    res = {
        "images": len(images),
        "rmse": metrics.rmse(pred, truth),
        "per_keypoint": metrics.per_keypoint_rmse(pred, truth),
        "per_camera": metrics.group_rmse(pred, truth, cams),
        "pck05": metrics.pck(pred, truth, 0.05),
        "pck10": metrics.pck(pred, truth, 0.1),
        "mean_pose_rmse": None, "mean_pose_per_keypoint": None, "mean_pose_per_camera": None,
    }
    if baseline is not None:
        res["mean_pose_rmse"] = metrics.rmse(baseline, truth)
        res["mean_pose_per_keypoint"] = metrics.per_keypoint_rmse(baseline, truth)
        res["mean_pose_per_camera"] = metrics.group_rmse(baseline, truth, cams)
    res["ratio"] = metrics.ratio_to(res["rmse"], res["mean_pose_rmse"])
    return res


def baseline_line(rmse: float, mean_pose_rmse: float | None, what: str = "RMSE") -> str:
    """``RMSE 12.300 px; mean pose 40.100 px on the same images (ratio 0.31)``."""
    if mean_pose_rmse is None:
        return f"{what} {rmse:.3f} px; mean pose: not computed"
    ratio = metrics.ratio_to(rmse, mean_pose_rmse)
    verdict = "" if ratio < 1 else ": no better than predicting the mean pose"
    return (f"{what} {rmse:.3f} px; mean pose (average training pose) {mean_pose_rmse:.3f} px "
            f"on the same images (ratio {ratio:.2f}{verdict})")


def keypoint_table(res: dict) -> str:
    """Per keypoint: PCK@0.05, PCK@0.1 (%), mean-pose RMSE and RMSE; then the overall RMSE."""
    base = res.get("mean_pose_per_keypoint") or {}
    rows = [(n, 100 * res["pck05"][n], 100 * res["pck10"][n], base.get(n), v)
            for n, v in res["per_keypoint"].items()]
    rows.append(("overall", "", "", "", res["rmse"]))
    return format_table(("keypoint", "PCK@0.05 %", "PCK@0.1 %", "mean pose", "RMSE (px)"), rows)


def camera_table(res: dict) -> str:
    """Per camera: images' RMSE, the mean pose's and the ratio."""
    base = res.get("mean_pose_per_camera") or {}
    rows = [(f"camera {c}", base.get(c), metrics.ratio_to(v, base.get(c)), v)
            for c, v in res["per_camera"].items()]
    return format_table(("camera", "mean pose", "ratio", "RMSE (px)"), rows)


def evaluate_files(pred: PathLike, truth: PathLike, skip_missing: bool = False,
                   data_root: PathLike | None = None) -> dict:
    """RMSE overall and per keypoint of a predictions/submission CSV against a labels CSV, with
    PCK and per-camera RMSE and the mean-pose baseline (:func:`score_arrays`).

    The prediction file needs ``image`` and the coordinate columns (others are ignored). Rows
    without a prediction (NaN) raise DataError unless ``skip_missing``, which leaves them out and
    counts them. The baseline needs ``data_root`` (default: the folder of ``truth`` when it holds
    ``train_df.csv``) and the images' sizes (its image folders); without them ``mean_pose_rmse``
    is None and ``baseline_note`` says why.
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
    root = Path(data_root) if data_root is not None else Path(truth).parent
    baseline, note = None, None
    if not DataPaths.from_root(root).train_csv.is_file():
        note = f"no {DataPaths.from_root(root).train_csv} to take the mean pose from (pass --data-root)"
    else:
        sizes = image_sizes(root, kept)
        if sizes is None:
            note = f"the images are not under {root}/images (pass --data-root)"
        else:
            baseline = mean_pose_for(root, kept, sizes, exclude=images)
    res = score_arrays(coords[ok], true, baseline, kept)
    res.update(skipped=[img for img, good in zip(images, ok) if not good], baseline_note=note,
               images_list=kept, pred=coords[ok], truth=true, baseline=baseline)
    return res


def error_picture(res: dict, pred: PathLike, png: PathLike, html: bool = False,
                  data_root: PathLike | None = None, worst: int = 4) -> list:
    """The error picture of an :func:`evaluate_files` result (and with ``html`` its page
    ``<png stem>.html``): per-keypoint and per-camera RMSE of the predictions and the mean pose,
    the worst images (when the data root holds them) with truth and prediction drawn."""
    from ..visualize import ErrorReport, save_error_report

    preds = {Path(pred).name: res["pred"]}
    if res["baseline"] is not None:
        preds["mean pose (baseline)"] = res["baseline"]
    image_dir = None
    if data_root is not None:
        paths = DataPaths.from_root(data_root)
        for folder in (paths.train_images, paths.test_images):
            if all((folder / i).is_file() for i in res["images_list"]):
                image_dir = folder
                break
    report = ErrorReport.from_arrays(f"{Path(pred).name} ({res['images']} images)",
                                     res["images_list"], res["truth"], preds, fused=res["pred"],
                                     image_dir=image_dir, worst=worst)
    png = Path(png)
    return save_error_report(report, png, png.with_suffix(".html") if html else None)


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


def validation_report(pred: PathLike, data_root: PathLike, picture: PathLike | None = None) -> list:
    """The lines ``predict --split val`` prints: the predictions' RMSE beside the mean pose's on
    the same images, PCK per keypoint and RMSE per camera (images without a prediction left out
    and counted)."""
    images, _, values = read_numeric_csv(pred, COORD_COLUMNS)
    if not np.isfinite(values).all(axis=1).any():  # a model that found nobody: nothing to score
        return [f"validation ({len(images)} images): no image has a detection, so there is no "
                "RMSE to report; train longer, or check the person boxes"]
    res = evaluate_files(pred, DataPaths.from_root(data_root).train_csv, skip_missing=True,
                         data_root=data_root)
    lines = [keypoint_table(res)]
    head = f"validation ({res['images']} images"
    if res["skipped"]:
        head += f"; {len(res['skipped'])} without a detection left out"
    lines.append(baseline_line(res["rmse"], res["mean_pose_rmse"], head + "): RMSE")
                 + (f" ({res['baseline_note']})" if res["baseline_note"] else ""))
    lines.append(camera_table(res))
    if picture is not None:  # the same table as a picture (bars and the worst images)
        lines.append(f"error picture: {error_picture(res, pred, picture, data_root=data_root)[0]}")
    return lines
