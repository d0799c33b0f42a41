"""Training one Keypoint R-CNN: :class:`Trainer` is the engine's
:class:`~motion_keypoints.engine.trainer.Trainer` with the kit's image reader
(:class:`.mapper.KitDatasetMapper`) and a checkpointer that transfers a COCO 17-keypoint
predictor (:class:`RunTrainCheckpointer`); :func:`train` runs it through the engine."""

from __future__ import annotations

from ...engine import trainer as _engine
from ...engine.checkpoint import RunCheckpointer
from ...engine.datasets import register_run_datasets
from ...engine.trainer import without_validation
from ...engine.weights_check import SCRATCH_HINT, check_weights
from ...errors import SetupError
from .weights import KeypointTransferCheckpointer

__all__ = ["SCRATCH_HINT", "RunTrainCheckpointer", "SetupError", "Trainer", "check_weights",
           "register_run_datasets", "train", "without_validation"]


class RunTrainCheckpointer(RunCheckpointer, KeypointTransferCheckpointer):
    """The training checkpointer: :class:`~motion_keypoints.engine.checkpoint.RunCheckpointer`
    (atomic saves, the run's identity, verified resume) over the COCO 17-keypoint predictor
    transfer (:class:`.weights.KeypointTransferCheckpointer`)."""


class Trainer(_engine.Trainer):
    """The engine's Trainer for Keypoint R-CNN runs: the kit's DatasetMapper and COCO keypoint
    checkpoints that keep their 17-keypoint predictor."""

    FAMILY = "rcnn"
    CHECKPOINTER = RunTrainCheckpointer

    @classmethod
    def load_for_eval(cls, cfg, model, weights: str, resume: bool = False) -> None:
        """Weights of ``--eval-only`` into ``model``."""
        KeypointTransferCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            weights, resume=resume
        )

    @classmethod
    def build_mapper(cls, cfg, is_train: bool):
        """The kit's DatasetMapper: images read with the kit's one reader (io/images.py)."""
        from .mapper import KitDatasetMapper

        return KitDatasetMapper(cfg, is_train)


def train(cfg, resume: bool = False, eval_only: bool = False, trainer_cls=Trainer) -> dict:
    """Train (or only evaluate) one Keypoint R-CNN run (:func:`motion_keypoints.engine.trainer.train`)."""
    return _engine.train(cfg, trainer_cls, resume=resume, eval_only=eval_only)
