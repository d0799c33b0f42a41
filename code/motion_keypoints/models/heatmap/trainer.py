"""Training the heatmap family through the kit's one engine: :class:`HeatmapTrainer` is the
R-CNN side's :class:`~motion_keypoints.models.rcnn.trainer.Trainer` (competition RMSE evaluator,
``model_best.pth``, tracking, ``--resume``, launch, AMP, TensorBoard) with crop data loaders,
an optional Adam optimizer and ``MODEL.WEIGHTS`` loaded by :func:`.weights.load_pretrained`
(timm ImageNet HRNet, official pose_hrnet with the 17 → K head transfer, or a kit checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader

from ...errors import UserError
from ...io.runs import write_run_info
from ...meta import KEYPOINT_NAMES
from ..rcnn.datasets import SetupError, register_run_datasets
from ..rcnn.trainer import Trainer
from . import meta_arch  # noqa: F401  (registers TopDownHeatmap)
from .data import HeatmapTestMapper, HeatmapTrainMapper

logger = logging.getLogger("motion_keypoints")

FAMILY = "heatmap"


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def is_kit_checkpoint(path: str) -> bool:
    """A checkpoint written by this family's training (keys under ``net.``)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else {}
    return any(str(k).startswith("net.") for k in state)


def load_weights(model, weights: str) -> None:
    """``MODEL.WEIGHTS`` into a ``TopDownHeatmap``: a kit checkpoint through detectron2's
    checkpointer, anything else (timm ImageNet, pose_hrnet, MMPose) through ``load_pretrained``,
    which logs one line of matched / missing / unexpected keys."""
    if not weights:
        return
    if "://" in weights:
        from detectron2.utils.file_io import PathManager

        weights = PathManager.get_local_path(weights)
    if not Path(weights).is_file():
        raise SetupError(
            f"MODEL.WEIGHTS {weights} does not exist: pass a timm HRNet or pose_hrnet checkpoint "
            "file, or MODEL.WEIGHTS '' to train from scratch"
        )
    if is_kit_checkpoint(weights):
        from detectron2.checkpoint import DetectionCheckpointer

        DetectionCheckpointer(_unwrap(model)).load(weights)
        return
    from .weights import load_pretrained

    load_pretrained(_unwrap(model).net, weights, KEYPOINT_NAMES)


class HeatmapTrainer(Trainer):
    """The kit's Trainer with crop loaders, Adam (``SOLVER.OPTIMIZER ADAM``) and pose weights."""

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=HeatmapTrainMapper(cfg))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=HeatmapTestMapper(cfg))

    @classmethod
    def build_optimizer(cls, cfg, model):
        kind = str(cfg.SOLVER.OPTIMIZER).upper()
        if kind == "SGD":
            return super().build_optimizer(cfg, model)
        if kind != "ADAM":
            raise UserError(f"SOLVER.OPTIMIZER {cfg.SOLVER.OPTIMIZER!r}: use SGD or ADAM")
        from detectron2.solver.build import maybe_add_gradient_clipping

        params = [p for p in model.parameters() if p.requires_grad]
        opt = maybe_add_gradient_clipping(cfg, torch.optim.Adam)
        return opt(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)

    def resume_or_load(self, resume=True):
        if resume and self.checkpointer.has_checkpoint():
            super().resume_or_load(resume=True)
            return
        load_weights(self.model, self.cfg.MODEL.WEIGHTS)
        self.start_iter = 0


def train(cfg, resume: bool = False, eval_only: bool = False) -> dict:
    """Train (or only evaluate) one heatmap run; returns the final validation results."""
    run_data = register_run_datasets(cfg)
    if eval_only:
        model = HeatmapTrainer.build_model(cfg)
        weights = cfg.MODEL.WEIGHTS
        best = Path(cfg.OUTPUT_DIR) / "model_best.pth"
        if not weights and best.is_file():
            weights = str(best)
        load_weights(model, weights)
        return HeatmapTrainer.test(cfg, model)
    trainer = HeatmapTrainer(cfg)
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
        raise FloatingPointError(
            f"{exc}\nThe heatmap loss diverged: lower SOLVER.BASE_LR (Adam: 1e-3 or less)."
        ) from exc
    results = getattr(trainer, "_last_eval_results", None)
    final_rmse = results["keypoints_rmse"]["rmse"] if results and "keypoints_rmse" in results else None
    info = write_run_info(
        cfg.OUTPUT_DIR, data_root=cfg.DATA.ROOT, aug_set=cfg.DATA.AUG_SET, n_train=run_data.n_train,
        n_val=run_data.n_val, max_iter=cfg.SOLVER.MAX_ITER, final_val_rmse=final_rmse,
        family=FAMILY,
    )
    logger.info(
        "run %s done: best validation RMSE %s at iteration %s (%s)",
        info["name"], info["val_rmse"], info["best_iteration"], cfg.OUTPUT_DIR,
    )
    return results or {}


__all__ = ["FAMILY", "HeatmapTrainer", "is_kit_checkpoint", "load_weights", "train"]
