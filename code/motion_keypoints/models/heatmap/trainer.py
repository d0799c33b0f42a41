"""Training the heatmap family through the kit's one engine: :class:`HeatmapTrainer` is the
engine's :class:`~motion_keypoints.engine.trainer.Trainer` (competition RMSE evaluator,
``model_best.pth``, tracking, ``--resume``, launch, AMP, TensorBoard) with crop data loaders,
an optional Adam optimizer and ``MODEL.WEIGHTS`` loaded by :func:`.weights.load_pretrained`
(timm ImageNet HRNet, official pose_hrnet with the 17 → K head transfer, or a kit checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader

from ...engine.trainer import Trainer
from ...engine.trainer import train as _train
from ...errors import SetupError, UserError
from ...meta import KEYPOINT_NAMES
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

    FAMILY = FAMILY
    DIVERGED_HINT = "Lower SOLVER.BASE_LR (Adam: 1e-3 or less)."

    @classmethod
    def load_for_eval(cls, cfg, model, weights: str, resume: bool = False) -> None:
        load_weights(model, weights)

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
    """Train (or only evaluate) one heatmap run: the engine's
    :func:`~motion_keypoints.engine.trainer.train` (run folder, validation or none,
    ``run_info.json`` with ``"family": "heatmap"``, summary) with :class:`HeatmapTrainer`."""
    return _train(cfg, HeatmapTrainer, resume=resume, eval_only=eval_only)


__all__ = ["FAMILY", "HeatmapTrainer", "is_kit_checkpoint", "load_weights", "train"]
