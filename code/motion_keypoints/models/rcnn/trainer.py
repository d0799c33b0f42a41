"""Training one Keypoint R-CNN: the Trainer (competition evaluator, best-checkpoint and tracking
hooks), weight checks and :func:`train`.

A run folder (``cfg.OUTPUT_DIR``) holds: config.yaml, split.json, metrics.json, TensorBoard
events, model_final.pth, model_best.pth + best_checkpoint.json, run_info.json (see
:mod:`motion_keypoints.io.runs`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

from ...engine.hooks import BestCheckpointer
from ...engine.run import prune_metrics_json
from ...engine.tracking import build_tracking_hook
from ...evaluation.evaluate import training_mean_pose
from ...io.runs import split_val_images, write_run_info
from .datasets import SetupError, register_run_datasets
from .evaluator import KeypointRMSEEvaluator

logger = logging.getLogger("motion_keypoints")

SCRATCH_HINT = (
    "Training from scratch (MODEL.WEIGHTS '') needs GroupNorm and no frozen stages: "
    "MODEL.RESNETS.NORM GN MODEL.FPN.NORM GN MODEL.BACKBONE.FREEZE_AT 0 (see configs/tiny-cpu.yaml), "
    "and a lower SOLVER.BASE_LR helps."
)

__all__ = ["SCRATCH_HINT", "SetupError", "Trainer", "check_weights", "train"]


class Trainer(DefaultTrainer):
    """DefaultTrainer with the competition evaluator, a best-checkpoint hook and tracking."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        # The one mean pose of the kit: the training rows of the run's split (original frames).
        pose = training_mean_pose(cfg.DATA.ROOT, exclude=split_val_images(cfg.OUTPUT_DIR))
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
        tracker = build_tracking_hook(self.cfg)
        if tracker is not None:
            ret.insert(len(ret) - 1, tracker)  # before the writers, after evaluation
        return ret

    def resume_or_load(self, resume=True):
        super().resume_or_load(resume=resume)
        if 0 < self.start_iter < self.max_iter:  # a finished run keeps its metrics as they are
            n = prune_metrics_json(self.cfg.OUTPUT_DIR, self.start_iter)
            logger.info("resuming at iteration %d (%d metrics.json lines dropped)", self.start_iter, n)


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
    final_rmse = results["keypoints_rmse"]["rmse"] if results and "keypoints_rmse" in results else None
    info = write_run_info(
        cfg.OUTPUT_DIR, data_root=cfg.DATA.ROOT, aug_set=cfg.DATA.AUG_SET, n_train=run_data.n_train,
        n_val=run_data.n_val, max_iter=cfg.SOLVER.MAX_ITER, final_val_rmse=final_rmse,
    )
    logger.info(
        "run %s done: best validation RMSE %s at iteration %s (%s)",
        info["name"], info["val_rmse"], info["best_iteration"], cfg.OUTPUT_DIR,
    )
    return results or {}
