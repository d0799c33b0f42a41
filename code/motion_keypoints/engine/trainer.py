"""Training that every model family shares: :class:`Trainer` (competition evaluator,
best-checkpoint and tracking hooks, progress, ``--resume`` with ``metrics.json`` pruning), the
start and summary of a run (:func:`train`, :func:`log_done`). A family subclasses
:class:`Trainer` (its data loaders, checkpointer, optimizer) and passes it to :func:`train`.

A run folder (``cfg.OUTPUT_DIR``) holds: config.yaml, split.json, metrics.json, TensorBoard
events, model_final.pth, model_best.pth + best_checkpoint.json, run_info.json (see
:mod:`motion_keypoints.io.runs`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from pathlib import Path

from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

from ..errors import SetupError
from ..evaluation.evaluate import training_mean_pose
from ..io.runs import read_run_record, run_identity, split_val_images, write_run_info
from .checkpoint import RunCheckpointer
from .datasets import register_run_datasets
from .evaluator import KeypointRMSEEvaluator
from .hooks import BestCheckpointer
from .metrics_log import prune_metrics_json
from .progress import ProgressHook
from .record import run_fingerprint
from .tracking import build_tracking_hook
from .weights_check import SCRATCH_HINT, check_weights, eval_weights

logger = logging.getLogger("motion_keypoints")

__all__ = ["Trainer", "log_done", "train", "without_validation"]


class _LogStream(io.TextIOBase):
    """A text stream whose lines go to a logger (pycocotools prints its tables)."""

    def __init__(self, name: str = "detectron2.evaluation"):
        self._log = logging.getLogger(name)
        self._buf = ""

    def write(self, text):
        self._buf += text
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            if line.strip():
                self._log.info(line)
        return len(text)



class Trainer(DefaultTrainer):
    """DefaultTrainer with the competition evaluator, a best-checkpoint hook, tracking and the
    console progress bar: what every family's trainer shares.

    A family subclasses it and sets :attr:`FAMILY`; extension points: :attr:`CHECKPOINTER`
    (the run checkpointer class), :meth:`load_for_eval`, :meth:`build_train_loader` /
    :meth:`build_test_loader` (or only :meth:`build_mapper`), :meth:`build_evaluator`,
    :meth:`validated` (whether the run validates) and :meth:`extra_hooks`.
    """

    #: ``run_info.json``'s "family" of the runs this trainer writes (set by each family).
    FAMILY = ""
    #: Appended to the error when the loss diverges.
    DIVERGED_HINT = SCRATCH_HINT
    #: The checkpointer of the run (atomic saves, the run's identity, verified resume).
    CHECKPOINTER = RunCheckpointer

    def build_checkpointer(self):
        """The checkpointer of the run (:attr:`CHECKPOINTER`): atomic saves that record the run
        (``run.json``'s id) and a verified ``--resume`` with a fallback to the previous good
        checkpoint."""
        import weakref

        record = read_run_record(self.cfg.OUTPUT_DIR)
        run = run_identity(self.cfg.OUTPUT_DIR, record) if record else None
        return self.CHECKPOINTER(
            self.model, self.cfg.OUTPUT_DIR, run=run, trainer=weakref.proxy(self)
        )

    @classmethod
    def load_for_eval(cls, cfg, model, weights: str, resume: bool = False) -> None:
        """Weights of ``--eval-only`` into ``model`` (detectron2's checkpointer by default)."""
        from detectron2.checkpoint import DetectionCheckpointer

        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(weights, resume=resume)

    @classmethod
    def validated(cls, cfg) -> bool:
        """Whether this run validates: a validation set and evaluations (see
        :func:`without_validation`)."""
        return bool(cfg.DATASETS.TEST)

    @classmethod
    def inference_dir(cls, cfg) -> str:
        """Where evaluators write, caches included: ``<run>/inference/<fingerprint[:12]>``, so a
        cache (COCOEvaluator's ``<dataset>_coco_format.json``) never outlives its data."""
        return os.path.join(cfg.OUTPUT_DIR, "inference", run_fingerprint(cfg, cls.FAMILY)[:12])

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or cls.inference_dir(cfg)
        # The one mean pose of the kit: the training rows of the run's split (original frames).
        pose = training_mean_pose(cfg.DATA.ROOT, exclude=split_val_images(cfg.OUTPUT_DIR))
        from detectron2.utils import comm

        # Multi-process: rank 0 writes COCOEvaluator's COCO-format cache, the others read it.
        if not comm.is_main_process():
            comm.synchronize()
            from detectron2.data import MetadataCatalog

            meta = MetadataCatalog.get(dataset_name)
            cache = os.path.join(output_folder, f"{dataset_name}_coco_format.json")
            if not hasattr(meta, "json_file") and os.path.isfile(cache):
                meta.json_file = cache  # COCOEvaluator then converts (writes) nothing
        evaluators = DatasetEvaluators(
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
        if comm.is_main_process():
            comm.synchronize()
        return evaluators

    @classmethod
    def build_mapper(cls, cfg, is_train: bool):
        """The family's dataset mapper (used by the default loaders below)."""
        raise NotImplementedError(f"{cls.__name__}: a family's trainer builds its own mapper")

    @classmethod
    def build_train_loader(cls, cfg):
        from detectron2.data import build_detection_train_loader

        mapper = cls.build_mapper(cfg, True)
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from detectron2.data import build_detection_test_loader

        mapper = cls.build_mapper(cfg, False)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        from detectron2.utils import comm

        if comm.get_world_size() > 1:
            # DDP runs with broadcast_buffers=False: each process has its own BatchNorm running
            # statistics. Every process validates with rank 0's, the model that rank 0 saves
            # (model_best.pth), so the gathered RMSE is that checkpoint's.
            import torch.distributed as dist

            for buf in model.buffers():
                dist.broadcast(buf.data, src=0)
        # pycocotools prints its progress and AP table: into log.txt, not onto the console.
        with contextlib.redirect_stdout(_LogStream()):
            return super().test(cfg, model, evaluators)

    def extra_hooks(self):
        """Hooks after evaluation and before the writers: best checkpoint, tracking, progress."""
        out = []
        if self.validated(self.cfg) and self.cfg.TEST.EVAL_PERIOD > 0:
            out.append(
                BestCheckpointer(
                    self.cfg.TEST.EVAL_PERIOD, self.checkpointer, self.cfg.TEST.BEST_METRIC,
                    self.cfg.OUTPUT_DIR,
                )
            )
        tracker = build_tracking_hook(self.cfg)
        if tracker is not None:
            out.append(tracker)
        from detectron2.utils import comm

        if comm.is_main_process():
            out.append(ProgressHook(self.max_iter))
        return out

    def build_hooks(self):
        # DefaultTrainer made a plain DetectionCheckpointer just before; the hooks built below
        # (periodic and best checkpoints) take this one.
        self.checkpointer = self.build_checkpointer()
        ret = super().build_hooks()
        if not self.validated(self.cfg):  # no validation set: no evaluation at all
            ret = [h for h in ret if not isinstance(h, hooks.EvalHook)]
        at = next((i for i, h in enumerate(ret) if isinstance(h, hooks.PeriodicWriter)), len(ret))
        ret[at:at] = self.extra_hooks()  # after evaluation, before the writers
        return ret

    def resume_or_load(self, resume=True):
        super().resume_or_load(resume=resume)
        from detectron2.utils import comm

        # a finished run keeps its metrics as they are; in a multi-process run, rank 0 writes
        if self.start_iter < self.max_iter and comm.is_main_process():
            n = prune_metrics_json(self.cfg.OUTPUT_DIR, self.start_iter)
            if self.start_iter > 0:
                logger.info("resuming at iteration %d (%d metrics.json lines dropped)",
                            self.start_iter, n)


def without_validation(cfg):
    """A copy of ``cfg`` for a run without validation frames (``DATA.VAL_FRACTION 0``): no test
    dataset and no periodic evaluation."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.DATASETS.TEST = ()
    cfg.TEST.EVAL_PERIOD = 0
    cfg.freeze()
    return cfg


def train(cfg, trainer_cls, resume: bool = False, eval_only: bool = False) -> dict:
    """Train (or only evaluate) one run with ``trainer_cls`` (a family's :class:`Trainer`);
    returns the final validation results (empty without validation). Expects
    :func:`motion_keypoints.engine.run.start_run` to have run."""
    run_data = register_run_datasets(cfg)
    if run_data.val_name is None:
        cfg = without_validation(cfg)
    if eval_only:
        if run_data.val_name is None:
            raise SetupError(f"--eval-only: {cfg.OUTPUT_DIR} has no validation frames "
                             f"(DATA.VAL_FRACTION {cfg.DATA.VAL_FRACTION}): nothing to evaluate")
        weights = eval_weights(cfg, resume=resume)  # a trained model, never random weights
        logger.info("--eval-only: validating %s", weights)
        model = trainer_cls.build_model(cfg)
        trainer_cls.load_for_eval(cfg, model, weights, resume=False)
        results = trainer_cls.test(cfg, model)
        from .progress import evaluation_summary

        logger.info(evaluation_summary(None, results))
        return results
    if not resume or not (Path(cfg.OUTPUT_DIR) / "last_checkpoint").is_file():
        check_weights(cfg)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=resume)
    if trainer.start_iter >= trainer.max_iter:
        logger.info(
            "%s is already trained to %d iterations: nothing to do (raise SOLVER.MAX_ITER to go on)",
            cfg.OUTPUT_DIR, trainer.max_iter,
        )
        return {}
    logger.info("training %s to iteration %d on %s; detectron2's log: %s",
                Path(cfg.OUTPUT_DIR).name, trainer.max_iter, cfg.MODEL.DEVICE,
                Path(cfg.OUTPUT_DIR) / "log.txt")
    t0 = time.perf_counter()
    try:
        trainer.train()
    except FloatingPointError as exc:
        raise FloatingPointError(f"{exc}\nThe loss diverged. {trainer_cls.DIVERGED_HINT}") from exc
    # DefaultTrainer.train() returns results only with TEST.EXPECTED_RESULTS; the eval hook keeps them.
    results = getattr(trainer, "_last_eval_results", None)
    final_rmse = results["keypoints_rmse"]["rmse"] if results and "keypoints_rmse" in results else None
    from detectron2.utils import comm

    if not comm.is_main_process():  # a multi-process run: rank 0 writes the run's record
        return results or {}
    info = write_run_info(
        cfg.OUTPUT_DIR, data_root=cfg.DATA.ROOT, aug_set=cfg.DATA.AUG_SET, n_train=run_data.n_train,
        n_val=run_data.n_val, max_iter=cfg.SOLVER.MAX_ITER, final_val_rmse=final_rmse,
        fingerprint=run_fingerprint(cfg, trainer_cls.FAMILY), family=trainer_cls.FAMILY,
    )
    log_done(info, cfg, trainer.start_iter, time.perf_counter() - t0)
    return results or {}


def log_done(info: dict, cfg, start_iter: int, seconds: float) -> None:
    """The final one-line summary of a training run."""
    iters = f"{cfg.SOLVER.MAX_ITER - start_iter} iterations in {seconds:.0f}s"
    model = Path(cfg.OUTPUT_DIR) / info["checkpoint"]
    if not info.get("validated"):
        logger.info("run %s done: %s, no validation (DATA.VAL_FRACTION 0); model: %s",
                    info["name"], iters, model)
        return
    rmse, at = info["val_rmse"], info.get("best_iteration")
    if rmse is None or at is None:
        logger.info("run %s done: %s, no validation RMSE (no evaluation finished); model: %s",
                    info["name"], iters, model)
        return
    # best_iteration is detectron2's 0-based index; the evaluation lines count iterations done.
    logger.info("run %s done: %s, best validation RMSE %.2f px at iteration %d; model: %s",
                info["name"], iters, rmse, at + 1, model)
