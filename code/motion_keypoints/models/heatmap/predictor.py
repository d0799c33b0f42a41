"""Prediction with a heatmap run: person boxes (from a Keypoint R-CNN run's predictions, or the
ground truth on the validation split), crops, HRNet, decoding, flip test; writes the same
``<run>/predictions_<split>.csv`` as the R-CNN family (:mod:`motion_keypoints.io.predictions`),
so the ensemble takes it unchanged.

Boxes: ``--boxes-from RCNN_RUN`` reads ``RCNN_RUN/predictions_<split>.csv`` (``box_x1..box_y2``,
continuous coordinates). An image the R-CNN found nobody in (``detected`` 0) gets the **fallback
box**: the box (``DATA.BBOX_MARGIN``) around the kit's mean training pose scaled to the image
(:func:`~motion_keypoints.evaluation.evaluate.training_mean_pose`); such images are counted,
printed, and their ``box_score`` is 0. A missing boxes run, a missing predictions file, or an
image of the split that is not in that file is a one-line error.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ...data.layout import DataPaths, load_train_df
from ...engine.checkpoint import build_eval_model
from ...engine.inference import (
    check_prediction_data,
    images_of_split,
    load_run_config,
    predictions_file,
)
from ...evaluation.metrics import rmse, scale_pose
from ...geometry import box_from_points, to_continuous
from ...io.predictions import predict_command, prediction_paths, read_predictions
from ...io.runs import RUN_INFO_FILE, RunError, family_of_info, split_val_images
from ...io.tables import keypoints_array
from ..registry import box_families
from .data import HeatmapTestMapper

logger = logging.getLogger("motion_keypoints")


def check_boxes_run(boxes_run) -> None:
    """A ``--boxes-from`` run must be a finished Keypoint R-CNN run (its ``run_info.json``
    family): a heatmap run's boxes are themselves borrowed (or ground truth), and a heatmap run
    as its own box source would feed its predictions back as boxes. One-line RunError."""
    import json

    info_file = Path(boxes_run) / RUN_INFO_FILE
    if not info_file.is_file():
        raise RunError(f"--boxes-from {boxes_run}: {info_file.name} is missing, so it is not a "
                       "finished training run; give a trained Keypoint R-CNN run folder")
    try:
        family = family_of_info(json.loads(info_file.read_text()))
    except (ValueError, AttributeError):
        raise RunError(f"--boxes-from {boxes_run}: {info_file} is not valid JSON; give a trained "
                       "Keypoint R-CNN run folder") from None
    if family not in box_families():  # Keypoint R-CNN runs
        raise RunError(f"--boxes-from {boxes_run} is a {family} run ({info_file}): person boxes "
                       "come from a Keypoint R-CNN run; give one (e.g. outputs/tiny-cpu), "
                       "predicted on the same split")


def load_boxes(boxes_run, split: str, names: Sequence[str], data_root) -> Dict[str, np.ndarray]:
    """Per image of ``names``: the R-CNN run's box (continuous; NaN where nobody was detected),
    its score and ``detected``. Errors (one line) for a missing run, file or image."""
    boxes_run = Path(boxes_run)
    if not boxes_run.is_dir():
        raise RunError(f"--boxes-from {boxes_run}: no such run folder; give a Keypoint R-CNN run "
                       "folder (outputs/<run>) that has predicted this split")
    check_boxes_run(boxes_run)
    file = prediction_paths(boxes_run, split)[0]  # the CSV that run predicted (no tag)
    if not file.is_file():
        raise RunError(f"--boxes-from {boxes_run}: {file.name} is missing; predict the {split} "
                       f"split first: {predict_command(boxes_run, data_root, split)}")
    pred = read_predictions(file)
    pos = {img: i for i, img in enumerate(pred["images"])}
    absent = [n for n in names if n not in pos]
    if absent:
        raise RunError(
            f"{file}: {len(absent)} of {len(names)} {split} images have no row (first: "
            f"{absent[0]}); predict the same split of the same data with that run"
        )
    idx = np.array([pos[n] for n in names], dtype=int)
    return {"boxes": pred["boxes"][idx], "scores": _box_scores(file)[idx],
            "detected": pred["detected"][idx]}


def _box_scores(file: Path) -> np.ndarray:
    import pandas as pd

    return pd.read_csv(file, usecols=["box_score"])["box_score"].to_numpy(dtype=np.float64)


def fallback_boxes(run: Path, data_root, sizes: np.ndarray, margin: float) -> np.ndarray:
    """Continuous boxes around the mean training pose of the run's split, per image size."""
    from ...evaluation.evaluate import training_mean_pose

    try:
        exclude = split_val_images(run)
    except FileNotFoundError:
        exclude = []
    pose = training_mean_pose(data_root, exclude=exclude)
    poses = scale_pose(pose, np.asarray(sizes, dtype=np.float64))
    return np.array([to_continuous(box_from_points(p, margin).reshape(2, 2)).reshape(-1)
                     for p in poses])


def _truth(data_root, names: Sequence[str]) -> np.ndarray:
    df = load_train_df(DataPaths.from_root(data_root).root).set_index("image", drop=False)
    return keypoints_array(df.loc[list(names)])


def predict_crops(cfg, model, records: List[dict], batch_size: int, num_workers: int,
                  flip: bool, progress: bool) -> Dict[str, list]:
    """Run the model on the crops of ``records`` (``file_name``, ``index``, ``person_box``...)."""
    mapper = HeatmapTestMapper(cfg)
    loader = torch.utils.data.DataLoader(
        records, batch_size=batch_size, num_workers=num_workers, collate_fn=_MapBatch(mapper),
    )
    n = len(records)
    plain: List[Optional[dict]] = [None] * n
    fused: List[Optional[dict]] = [None] * n
    sizes = [(0, 0)] * n
    with torch.inference_mode():
        for batch in tqdm(loader, desc="predict", unit="batch", disable=not progress):
            crops = torch.stack([b["image"] for b in batch])
            inv = np.stack([b["crop_inverse"] for b in batch])
            out = model.predict_crops(crops, inv, flip=flip)
            for j, b in enumerate(batch):
                i = b["index"]
                sizes[i] = (b["width"], b["height"])
                for key, dest in (("plain", plain), ("flip", fused)):
                    if out[key] is None:
                        continue
                    dest[i] = {
                        "keypoints": out[key][j, :, :2], "keypoint_scores": out[key][j, :, 2],
                        "box": np.asarray(b["box"], dtype=np.float64),
                        "score": float(b["box_score"]),
                    }
    return {"plain": plain, "flip": fused if flip else None, "sizes": sizes}


class _MapBatch:
    """Collate = map each record (a picklable callable, for worker processes)."""

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, batch):
        return [self.mapper(r) for r in batch]


def _records(image_dir: Path, names: Sequence[str], boxes: np.ndarray, scores: np.ndarray):
    return [
        {"file_name": str(image_dir / n), "index": i, "image_id": i,
         "person_box": boxes[i], "box_score": float(scores[i])}
        for i, n in enumerate(names)
    ]


def _rmse_of(persons: Sequence[dict], truth: np.ndarray) -> float:
    return rmse(np.array([p["keypoints"] for p in persons]), truth)


def _person_boxes(run: Path, data_root: Path, split: str, names: Sequence[str],
                  img_sizes: np.ndarray, margin: float, boxes_from, gt_boxes) -> dict:
    """Each image's person box: the ``boxes_from`` run's (fallback boxes where it found nobody),
    else the ground truth (validation), else a one-line RunError."""
    if boxes_from is not None:
        b = load_boxes(boxes_from, split, names, data_root)
        boxes, scores = b["boxes"].copy(), b["scores"].copy()
        missing = ~b["detected"] | ~np.isfinite(boxes).all(axis=1)
        if missing.any():
            boxes[missing] = fallback_boxes(run, data_root, img_sizes[missing], margin)
            scores[missing] = 0.0
        return {"boxes": boxes, "scores": scores, "fallback": int(missing.sum()),
                "source": f"boxes of {Path(boxes_from).name}"}
    if gt_boxes is not None:
        return {"boxes": gt_boxes, "scores": np.ones(len(names)), "fallback": 0,
                "source": "ground-truth boxes"}
    raise RunError(
        f"{run} is a heatmap run: it needs person boxes for the {split} split; pass "
        f"--boxes-from outputs/<Keypoint R-CNN run> (predicted with: "
        f"{predict_command('outputs/<rcnn run>', data_root, split)})"
    )


def _validation(summary: dict, predict, res: dict, truth: np.ndarray, gt_boxes: np.ndarray,
                flip_tta: bool, borrowed: bool) -> None:
    """The validation RMSEs into ``summary`` (on the boxes used; without flip test; on the
    ground-truth boxes when the boxes were borrowed), logged as one line."""
    summary["val_rmse"] = _rmse_of(res["flip"] if flip_tta else res["plain"], truth)
    line = f"validation RMSE on {summary['boxes']}: {summary['val_rmse']:.3f}"
    if flip_tta:
        summary["val_rmse_noflip"] = _rmse_of(res["plain"], truth)
        line += f" (without flip test {summary['val_rmse_noflip']:.3f})"
    if borrowed:
        gt = predict(gt_boxes, np.ones(len(gt_boxes)))
        summary["val_rmse_gt_boxes"] = _rmse_of(gt["flip"] if flip_tta else gt["plain"], truth)
        line += f"; on ground-truth boxes {summary['val_rmse_gt_boxes']:.3f}"
    logger.info("%s", line)


def predict_run(
    run, data_root, split: str = "test", checkpoint: str = "best", flip_tta: bool = False,
    batch_size: int = 16, num_workers: int = 0, boxes_from=None, opts: Sequence[str] = (),
    progress: bool = True, out=None, tag=None, load_model=None,
) -> dict:
    """Predict a split with a heatmap run and write its predictions CSV(s) (``out``, else
    ``<run>/predictions_<split>[_<tag>].csv``, through the engine's
    :func:`~motion_keypoints.engine.inference.predictions_file`). Returns a summary
    (with ``val_rmse`` and ``val_rmse_gt_boxes`` on the validation split). ``load_model``:
    ``cfg -> model`` of another backend (the ONNX export:
    :class:`motion_keypoints.export.runtime.OnnxLoader`); default the run's torch checkpoint."""
    from ...io.images import image_size
    from . import meta_arch  # noqa: F401  (registers TopDownHeatmap)

    run, data_root = Path(run), Path(data_root)
    check_prediction_data(data_root)
    files = predictions_file(run, split, out, tag, flip_tta, data_root)  # checked before any work
    cfg = load_run_config(run, checkpoint, opts)
    names, image_dir = images_of_split(run, data_root, split)
    img_sizes = np.array([image_size(image_dir / n) for n in names], dtype=np.float64)
    truth = _truth(data_root, names) if split == "val" else None
    gt_boxes = None if truth is None else np.array(
        [to_continuous(box_from_points(p, cfg.DATA.BBOX_MARGIN).reshape(2, 2)).reshape(-1)
         for p in truth])
    boxes = _person_boxes(run, data_root, split, names, img_sizes, cfg.DATA.BBOX_MARGIN,
                          boxes_from, gt_boxes)
    model = build_eval_model(cfg, load_model)  # load_model: another backend (export.runtime)

    def predict(b, scores, show=False):
        return predict_crops(cfg, model, _records(image_dir, names, b, scores), batch_size,
                             num_workers, flip_tta, show)

    t0 = time.perf_counter()
    res = predict(boxes["boxes"], boxes["scores"], progress)
    seconds = time.perf_counter() - t0
    files.write(names, res["plain"], res["flip"], res["sizes"])
    summary = {
        "run": str(run), "split": split, "images": len(names), "fallback_boxes": boxes["fallback"],
        "flip_tta": flip_tta, "seconds": seconds, "out": str(files.out), "boxes": boxes["source"],
        "no_peak_keypoints": int(model.no_peak_count),
    }
    logger.info("predicted %d %s images with %s (%s%s, %s) in %.1fs: %d fallback boxes (mean "
                "training pose; nobody detected) -> %s", len(names), split, run.name, checkpoint,
                ", flip TTA" if flip_tta else "", boxes["source"], seconds, boxes["fallback"],
                files.out)
    if truth is not None:
        _validation(summary, predict, res, truth, gt_boxes, flip_tta, boxes_from is not None)
    return summary


__all__ = ["fallback_boxes", "load_boxes", "predict_run"]


# ------------------------------------------------------------------ in-memory frames (video)
def load_heatmap_model(run, checkpoint: str = "best", opts: Sequence[str] = ()):
    """``(cfg, model)`` of a trained heatmap run folder, as :func:`predict_run` loads it
    (:func:`~motion_keypoints.engine.inference.load_run_config`, ``build_model``, eval mode,
    weights loaded). A user's mistake (no run, no checkpoint...) is a one-line ``RunError``."""
    from . import meta_arch  # noqa: F401  (registers TopDownHeatmap)

    cfg = load_run_config(Path(run), checkpoint, opts)
    return cfg, build_eval_model(cfg)


def predict_boxes(
    cfg, model, frames: Sequence[np.ndarray], boxes: Sequence[Optional[Sequence[float]]],
    flip_tta: bool = False, box_scores: Optional[Sequence[float]] = None,
) -> List[Optional[dict]]:
    """One person per in-memory frame (HxWx3 uint8 **BGR**, as the video reader gives), inside
    the given person box (continuous coordinates, e.g. a Keypoint R-CNN detection; None: no
    person, no prediction), all crops in one batch.

    Returns per frame ``None`` (no box) or the person dict of the R-CNN side
    (:func:`motion_keypoints.models.rcnn.predictor.instances_to_dicts`): ``keypoints`` (K, 2) in
    the kit's pixel-index coordinates (the crop's inverse affine maps heatmap peaks to pixel-index
    image coordinates, :meth:`TopDownHeatmap.predict_crops`), ``keypoint_scores`` (K,) heatmap
    maxima, ``box`` (4,) the given box, ``score`` (``box_scores`` or 1). ``flip_tta`` averages
    with the mirrored crop's heatmaps (flipped back with the left/right map, ``codec.flip_heatmaps``)
    exactly as ``MODEL.HEATMAP.FLIP_TEST`` does. ``model``: :func:`load_heatmap_model`."""
    from .data import crop_person, input_size_of

    if len(frames) != len(boxes):
        raise ValueError(f"{len(frames)} frames but {len(boxes)} boxes")
    input_size = input_size_of(cfg)
    udp, margin = bool(cfg.MODEL.HEATMAP.UDP), float(cfg.MODEL.HEATMAP.BOX_MARGIN)
    idx, crops, invs, kept = [], [], [], []
    for i, (img, box) in enumerate(zip(frames, boxes)):
        if box is None:
            continue
        box = np.asarray(box, dtype=np.float64).reshape(-1)
        if box.shape != (4,) or not np.isfinite(box).all():
            continue
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"a frame must be HxWx3 uint8 BGR, got {img.dtype} {img.shape}")
        crop, m_inv = crop_person(img, box, input_size, margin, udp)
        crops.append(torch.as_tensor(np.ascontiguousarray(crop.transpose(2, 0, 1))))
        invs.append(m_inv)
        idx.append(i)
        kept.append(box)
    out: List[Optional[dict]] = [None] * len(frames)
    if not idx:
        return out
    with torch.inference_mode():
        res = model.predict_crops(torch.stack(crops), np.stack(invs), flip=flip_tta)
    kps = res["flip"] if flip_tta else res["plain"]
    for j, i in enumerate(idx):
        out[i] = {
            "keypoints": np.asarray(kps[j, :, :2], dtype=np.float64),
            "keypoint_scores": np.asarray(kps[j, :, 2], dtype=np.float64),
            "box": kept[j],
            "score": 1.0 if box_scores is None else float(box_scores[i]),
        }
    return out


__all__ += ["load_heatmap_model", "predict_boxes"]
