"""Training hooks both model families share (detectron2 hooks)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from detectron2.engine import hooks

from ..io.runs import read_best_checkpoint, write_best_checkpoint


class BestCheckpointer(hooks.BestCheckpointer):
    """detectron2's BestCheckpointer that survives ``--resume`` and a kill: ``model_best.pth``
    is saved completely (atomically, :class:`~motion_keypoints.engine.checkpoint.RunCheckpointer`)
    before ``best_checkpoint.json`` (path, iteration, metric) names it, and saving it does not
    move the ``last_checkpoint`` tag (``--resume`` continues from the latest periodic
    checkpoint, not from the best iteration)."""

    def __init__(self, eval_period, checkpointer, val_metric, output_dir):
        super().__init__(eval_period, checkpointer, val_metric, mode="min")
        self._output_dir = Path(output_dir)
        #: The best checkpoint so far (``best_checkpoint.json``'s record), None before one.
        self.best_record: Optional[dict] = None

    def before_train(self):
        rec = read_best_checkpoint(self._output_dir)
        if self.trainer.start_iter > 0 and rec is not None:
            self.best_metric, self.best_iter = rec["val_rmse"], rec["iteration"]
            self.best_record = rec

    def _best_checking(self):
        metric = self.trainer.storage.latest().get(self._val_metric)
        if metric is None:
            self._logger.warning(f"Given val metric {self._val_metric} does not seem to be "
                                 "computed/stored. Will not be checkpointing based on it.")
            return
        value, iteration = metric
        if math.isnan(value) or math.isinf(value):
            return
        # 0-based like the periodic evaluations: the final (after-train) one is stored one step
        # past the last iteration, which would print as max_iter + 1 in the summary.
        max_iter = getattr(self.trainer, "max_iter", None)
        if max_iter is not None:
            iteration = min(int(iteration), max_iter - 1)
        if self.best_metric is not None and not self._compare(value, self.best_metric):
            self._logger.info(
                f"Not saving as latest eval score for {self._val_metric} is {value:0.5f}, "
                f"not better than best score {self.best_metric:0.5f} @ iteration {self.best_iter}."
            )
            return
        # The file first, complete and renamed into place; only then the record that names it.
        self._save_untagged(self._file_prefix, iteration=iteration)
        rec = {
            "path": str(self._output_dir / f"{self._file_prefix}.pth"),
            "iteration": iteration,
            "metric": self._val_metric,
            "val_rmse": value,
        }
        write_best_checkpoint(self._output_dir, rec)
        self.best_metric, self.best_iter, self.best_record = value, iteration, rec
        self._logger.info(f"Saved best model at {value:0.5f} @ {iteration} steps")

    def _save_untagged(self, name: str, **extra) -> None:
        from .checkpoint import RunCheckpointer

        if isinstance(self._checkpointer, RunCheckpointer):
            self._checkpointer.save(name, tag=False, **extra)
            return
        # Another checkpointer re-tags its file as the last one: put the tag back.
        tag = Path(self._checkpointer.save_dir) / "last_checkpoint"
        previous = tag.read_text().strip() if tag.is_file() else None
        self._checkpointer.save(name, **extra)
        if previous:
            self._checkpointer.tag_last_checkpoint(previous)
