"""Shared by every family: detectron2 dataset dicts of the kit's keypoint frames, their registration, and the datasets of
a training run (leak-free split, augmented set, validation frames)."""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import pandas as pd

from ..data.layout import DataPaths
from ..data.split import filter_training_rows
from ..errors import SetupError
from ..geometry import to_continuous
from ..io.images import image_size
from ..io.tables import keypoints_array, read_keypoint_csv
from ..meta import DEFAULT_OKS_SIGMAS, check_metadata, detectron2_metadata
from ..utils import PathLike
from .aug_set import augmented_set_dir, check_aug_set
from .data_cache import run_split, validated_train_df

logger = logging.getLogger("motion_keypoints")

__all__ = ["RunData", "SetupError", "augmented_set_dir", "frozen_dicts", "make_dataset_dicts",
           "register_dataset", "register_run_datasets"]

# ------------------------------------------------------------------------------------ detectron2


def make_dataset_dicts(df: pd.DataFrame, image_dir: PathLike, bbox_margin: float = 0.1,
                       with_annotations: bool = True) -> List[dict]:
    """detectron2 dataset dicts, one person per image, in detectron2's continuous coordinates.

    The labels (the kit's pixel-index coordinates) go through :func:`geometry.to_continuous`.
    The box is the keypoints' extent grown on each side by ``bbox_margin`` times the extent of
    that axis (at least one pixel), clipped to the image ``[0, W] x [0, H]``. Keypoints are
    ``[x, y, v]`` floats with v = 2 inside the image and 0 outside (detectron2's rule). Width and
    height are read from each image file. ``with_annotations=False`` gives annotation-free dicts
    for inference.
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
            pts = to_continuous(xy[i])
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


def frozen_dicts(dicts: List[dict]) -> Callable[[], List[dict]]:
    """A dataset function that returns a fresh deep copy of ``dicts`` on every call, so no
    consumer (detectron2's COCO conversion subtracts 0.5 px in place) changes what the next one
    reads."""
    frozen = copy.deepcopy(dicts)

    def dataset_dicts() -> List[dict]:
        return copy.deepcopy(frozen)

    return dataset_dicts


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


@dataclass
class RunData:
    train_name: str
    val_name: Optional[str]
    n_train: int
    n_val: int
    n_dropped_leaks: int


def register_run_datasets(cfg) -> RunData:
    """Validate the data folder, split it leak-free and register the run's train/val datasets.

    The split is written to ``OUTPUT_DIR/split.json``. Validation images are original frames;
    augmented copies of validation frames (through ``source_image``) never reach training.
    """
    paths = DataPaths.from_root(cfg.DATA.ROOT)
    train_df = validated_train_df(cfg)  # validated once per process; label_overrides applied
    split = run_split(cfg, train_df)
    from detectron2.utils import comm

    if comm.is_main_process():  # a multi-process run: rank 0 writes the run folder
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        split.to_json(os.path.join(cfg.OUTPUT_DIR, "split.json"))

    val_set = set(split.val)
    n_dropped = 0
    if cfg.DATA.AUG_SET:
        check_aug_set(cfg)
        set_dir = augmented_set_dir(cfg)
        aug_df = read_keypoint_csv(
            set_dir / "annotations.csv", image_dir=set_dir / "images",
            extra_columns=("source_image", "transform"),
        )
        train_rows, n_dropped = filter_training_rows(aug_df, split.val)
        train_dicts = make_dataset_dicts(train_rows, set_dir / "images", cfg.DATA.BBOX_MARGIN)
    else:
        train_rows = train_df[~train_df["image"].isin(val_set)]
        train_dicts = make_dataset_dicts(train_rows, paths.train_images, cfg.DATA.BBOX_MARGIN)
    if not train_dicts:
        raise SetupError(f"no training images left in {cfg.DATA.ROOT} after the validation split")
    train_name = cfg.DATASETS.TRAIN[0]
    register_dataset(train_name, frozen_dicts(train_dicts), sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS))

    val_name = None
    val_dicts: List[dict] = []
    if split.val and cfg.DATASETS.TEST:
        val_rows = train_df[train_df["image"].isin(val_set)]
        val_dicts = make_dataset_dicts(val_rows, paths.train_images, cfg.DATA.BBOX_MARGIN)
        val_name = cfg.DATASETS.TEST[0]
        register_dataset(val_name, frozen_dicts(val_dicts), sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS))
    share = (f"{100 * split.val_share:.1f} % of the original frames, "
             f"{100 * split.val_fraction:.1f} % asked, stratify {split.stratify}; "
             f"{split.cameras_line()}; ") if split.val else ""
    logger.info(
        "data: %d training images%s, %d validation frames (%s%d augmented copies of validation "
        "frames left out)",
        len(train_dicts), f" from set {cfg.DATA.AUG_SET!r}" if cfg.DATA.AUG_SET else "",
        len(val_dicts), share, n_dropped,
    )
    if split.warning():
        logger.warning(split.warning())
    return RunData(train_name, val_name, len(train_dicts), len(val_dicts), n_dropped)
