"""Training one Keypoint R-CNN: datasets of a run, the Trainer and its hooks, the run folder.

A run folder (``cfg.OUTPUT_DIR``) holds: config.yaml, split.json, metrics.json, TensorBoard
events, model_final.pth, model_best.pth + best_checkpoint.json, run_info.json.
"""

from __future__ import annotations

import motion_keypoints.compat  # noqa: F401

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

from . import data as D
from .evaluation import PIXEL_OFFSET, KeypointRMSEEvaluator, dicts_keypoints
from .keypoints import FLIP_PAIRS, KEYPOINT_NAMES
from .split import filter_training_rows, split_images
from .utils import atomic_write_text

logger = logging.getLogger("motion_keypoints")

SCRATCH_HINT = (
    "Training from scratch (MODEL.WEIGHTS '') needs GroupNorm and no frozen stages: "
    "MODEL.RESNETS.NORM GN MODEL.FPN.NORM GN MODEL.BACKBONE.FREEZE_AT 0 (see configs/tiny-cpu.yaml), "
    "and a lower SOLVER.BASE_LR helps."
)


class SetupError(RuntimeError):
    """A run cannot start: missing augmentation set, weights that cannot be loaded, ..."""


@dataclass
class RunData:
    train_name: str
    val_name: Optional[str]
    n_train: int
    n_val: int
    n_dropped_leaks: int


def _offset(dicts: List[dict]) -> List[dict]:
    """Labels are pixel indices; detectron2 works in continuous coordinates (+0.5)."""
    for d in dicts:
        for ann in d["annotations"]:
            kps = ann["keypoints"]
            for j in range(0, len(kps), 3):
                kps[j] += PIXEL_OFFSET
                kps[j + 1] += PIXEL_OFFSET
    return dicts


def augmented_set_dir(cfg) -> Path:
    return Path(cfg.DATA.AUGMENTED_DIR) / cfg.DATA.AUG_SET


def register_run_datasets(cfg) -> RunData:
    """Validate the data folder, split it leak-free and register the run's train/val datasets.

    The split is written to ``OUTPUT_DIR/split.json``. Validation images are original frames;
    augmented copies of validation frames (through ``source_image``) never reach training.
    """
    paths = D.DataPaths.from_root(cfg.DATA.ROOT)
    D.validate_data_root(paths.root, check_images=cfg.DATA.CHECK_IMAGES, splits=("train",))
    train_df = D.load_train_df(paths.root)  # label_overrides.csv applied
    split = split_images(list(train_df["image"]), cfg.DATA.VAL_FRACTION, cfg.DATA.SPLIT_SEED)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    split.to_json(os.path.join(cfg.OUTPUT_DIR, "split.json"))

    val_set = set(split.val)
    n_dropped = 0
    if cfg.DATA.AUG_SET:
        set_dir = augmented_set_dir(cfg)
        ann = set_dir / "annotations.csv"
        if not ann.is_file():
            raise SetupError(
                f"augmentation set {cfg.DATA.AUG_SET!r} not found ({ann} missing). Build it with:\n"
                f"  python code/augmentation.py --data-root {cfg.DATA.ROOT} "
                f"--out {cfg.DATA.AUGMENTED_DIR} --sets {cfg.DATA.AUG_SET}"
            )
        aug_df = D.read_keypoint_csv(
            ann, image_dir=set_dir / "images", extra_columns=("source_image", "transform")
        )
        train_rows, n_dropped = filter_training_rows(aug_df, split.val)
        train_dicts = D.make_dataset_dicts(train_rows, set_dir / "images", cfg.DATA.BBOX_MARGIN)
    else:
        train_rows = train_df[~train_df["image"].isin(val_set)]
        train_dicts = D.make_dataset_dicts(train_rows, paths.train_images, cfg.DATA.BBOX_MARGIN)
    if not train_dicts:
        raise SetupError(f"no training images left in {cfg.DATA.ROOT} after the validation split")
    train_dicts = _offset(train_dicts)
    train_name = cfg.DATASETS.TRAIN[0]
    D.register_dataset(train_name, lambda: train_dicts, sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS))

    val_name = None
    val_dicts: List[dict] = []
    if split.val and cfg.DATASETS.TEST:
        val_rows = train_df[train_df["image"].isin(val_set)]
        val_dicts = _offset(D.make_dataset_dicts(val_rows, paths.train_images, cfg.DATA.BBOX_MARGIN))
        val_name = cfg.DATASETS.TEST[0]
        D.register_dataset(val_name, lambda: val_dicts, sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS))
    logger.info(
        "data: %d training images%s, %d validation frames (%d augmented copies of validation "
        "frames left out)",
        len(train_dicts), f" from set {cfg.DATA.AUG_SET!r}" if cfg.DATA.AUG_SET else "",
        len(val_dicts), n_dropped,
    )
    return RunData(train_name, val_name, len(train_dicts), len(val_dicts), n_dropped)


def mean_relative_pose(dataset_name: str) -> np.ndarray:
    """Mean pose of a dataset in image-relative units (K, 2): the no-detection fallback."""
    dicts = DatasetCatalog.get(dataset_name)
    kps = dicts_keypoints(dicts)
    sizes = np.array([[d["width"], d["height"]] for d in dicts], float)[:, None, :]
    return (kps / sizes).mean(axis=0)


class BestCheckpointer(hooks.BestCheckpointer):
    """detectron2's BestCheckpointer that survives ``--resume`` and records the best model in
    ``best_checkpoint.json`` (path, iteration, metric)."""

    def __init__(self, eval_period, checkpointer, val_metric, output_dir):
        super().__init__(eval_period, checkpointer, val_metric, mode="min")
        self._record = Path(output_dir) / "best_checkpoint.json"

    def before_train(self):
        if self.trainer.start_iter > 0 and self._record.is_file():
            rec = json.loads(self._record.read_text())
            self.best_metric, self.best_iter = rec["val_rmse"], rec["iteration"]

    def _best_checking(self):
        # Saving model_best would also re-tag it as the last checkpoint, and --resume would then
        # restart from the best iteration instead of the latest: keep the periodic tag.
        tag = Path(self._checkpointer.save_dir) / "last_checkpoint"
        previous = tag.read_text().strip() if tag.is_file() else None
        super()._best_checking()
        if previous:
            self._checkpointer.tag_last_checkpoint(previous)

    def _update_best(self, val, iteration):
        if not super()._update_best(val, iteration):
            return False
        rec = {
            "path": str(self._record.parent / f"{self._file_prefix}.pth"),
            "iteration": iteration,
            "metric": self._val_metric,
            "val_rmse": val,
        }
        atomic_write_text(self._record, json.dumps(rec, indent=1))
        return True


def prune_metrics_json(output_dir: str, start_iter: int) -> int:
    """Drop metrics.json lines at or after ``start_iter`` so a resumed run does not duplicate
    them. Returns the number of dropped lines."""
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            it = json.loads(line).get("iteration", -1)
        except json.JSONDecodeError:
            dropped += 1  # a line cut by the interruption
            continue
        if it >= start_iter:
            dropped += 1
        else:
            kept.append(line)
    # In place, not by rename: detectron2's JSONWriter already holds the file open for appending.
    with open(path, "r+") as f:
        f.write("".join(f"{x}\n" for x in kept))
        f.truncate()
    return dropped


class Trainer(DefaultTrainer):
    """DefaultTrainer with the competition evaluator, a best-checkpoint hook and tracking."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        pose = mean_relative_pose(cfg.DATASETS.TRAIN[0])
        return DatasetEvaluators(
            [
                KeypointRMSEEvaluator(dataset_name, pose, output_dir=output_folder),
                COCOEvaluator(
                    dataset_name,
                    tasks=("keypoints",),
                    distributed=True,
                    output_dir=output_folder,
                    use_fast_impl=False,  # the fast evaluator is C++; this detectron2 has none
                    kpt_oks_sigmas=list(cfg.TEST.KEYPOINT_OKS_SIGMAS),
                ),
            ]
        )

    def build_hooks(self):
        ret = super().build_hooks()
        if self.cfg.DATASETS.TEST and self.cfg.TEST.EVAL_PERIOD > 0:
            at = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook)) + 1
            ret.insert(
                at,
                BestCheckpointer(
                    self.cfg.TEST.EVAL_PERIOD, self.checkpointer, self.cfg.TEST.BEST_METRIC,
                    self.cfg.OUTPUT_DIR,
                ),
            )
        from .tracking import build_tracking_hook

        tracker = build_tracking_hook(self.cfg)
        if tracker is not None:
            ret.insert(len(ret) - 1, tracker)  # before the writers, after evaluation
        return ret

    def resume_or_load(self, resume=True):
        super().resume_or_load(resume=resume)
        if 0 < self.start_iter < self.max_iter:  # a finished run keeps its metrics as they are
            n = prune_metrics_json(self.cfg.OUTPUT_DIR, self.start_iter)
            logger.info("resuming at iteration %d (%d metrics.json lines dropped)", self.start_iter, n)


def write_run_info(cfg, run_data: RunData, results: Optional[dict] = None) -> dict:
    """``run_info.json``: what the predictor and the ensembler need to know about a run."""
    out = Path(cfg.OUTPUT_DIR)
    best = out / "best_checkpoint.json"
    best_rec = json.loads(best.read_text()) if best.is_file() else None
    final_rmse = None
    if results and "keypoints_rmse" in results:
        final_rmse = results["keypoints_rmse"]["rmse"]
    info = {
        "name": out.name,
        "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS],
        "data_root": str(Path(cfg.DATA.ROOT).resolve()),
        "aug_set": cfg.DATA.AUG_SET,
        "config": str(out / "config.yaml"),
        "val_rmse": best_rec["val_rmse"] if best_rec else final_rmse,
        "final_val_rmse": final_rmse,
        "best_iteration": best_rec["iteration"] if best_rec else None,
        "n_train": run_data.n_train,
        "n_val": run_data.n_val,
        "split": str(out / "split.json"),
        "max_iter": cfg.SOLVER.MAX_ITER,
    }
    atomic_write_text(out / "run_info.json", json.dumps(info, indent=1))
    return info


def check_weights(cfg) -> None:
    """Resolve ``MODEL.WEIGHTS`` before any long work; offline, say how to proceed."""
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        return
    if "://" not in weights:
        if not Path(weights).is_file():
            raise SetupError(
                f"MODEL.WEIGHTS {weights} does not exist. Pass an existing checkpoint file, or "
                f"MODEL.WEIGHTS '' to train from scratch. {SCRATCH_HINT}"
            )
        return
    from detectron2.utils.file_io import PathManager

    try:
        PathManager.get_local_path(weights)
    except Exception as exc:  # network errors come in many types
        raise SetupError(
            f"could not download MODEL.WEIGHTS {weights} ({type(exc).__name__}: {exc}).\n"
            "Offline? Download the checkpoint on a machine with internet and pass the local file: "
            "MODEL.WEIGHTS /path/to/model_final_a6e10b.pkl — or train from scratch with "
            f"MODEL.WEIGHTS ''. {SCRATCH_HINT}"
        ) from exc


def train(cfg, resume: bool = False, eval_only: bool = False) -> dict:
    """Train (or only evaluate) one run; returns the final validation results."""
    from detectron2.checkpoint import DetectionCheckpointer

    run_data = register_run_datasets(cfg)
    if eval_only:
        model = Trainer.build_model(cfg)
        weights = cfg.MODEL.WEIGHTS
        best = Path(cfg.OUTPUT_DIR) / "model_best.pth"
        if not weights and best.is_file():
            weights = str(best)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(weights, resume=resume)
        return Trainer.test(cfg, model)
    if not resume or not (Path(cfg.OUTPUT_DIR) / "last_checkpoint").is_file():
        check_weights(cfg)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=resume)
    if trainer.start_iter >= trainer.max_iter:
        logger.info(
            "%s is already trained to %d iterations: nothing to do (raise SOLVER.MAX_ITER to go on)",
            cfg.OUTPUT_DIR, trainer.max_iter,
        )
        return {}
    try:
        trainer.train()
    except FloatingPointError as exc:
        raise FloatingPointError(f"{exc}\nThe loss diverged. {SCRATCH_HINT}") from exc
    # DefaultTrainer.train() returns results only with TEST.EXPECTED_RESULTS; the eval hook keeps them.
    results = getattr(trainer, "_last_eval_results", None)
    info = write_run_info(cfg, run_data, results)
    logger.info(
        "run %s done: best validation RMSE %s at iteration %s (%s)",
        info["name"], info["val_rmse"], info["best_iteration"], cfg.OUTPUT_DIR,
    )
    return results or {}
