"""Training hooks both model families share (detectron2 hooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from detectron2.engine import hooks

from ..io.runs import read_best_checkpoint, write_best_checkpoint


class BestCheckpointer(hooks.BestCheckpointer):
    """detectron2's BestCheckpointer that survives ``--resume`` and records the best model in
    ``best_checkpoint.json`` (path, iteration, metric)."""

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
            "path": str(self._output_dir / f"{self._file_prefix}.pth"),
            "iteration": iteration,
            "metric": self._val_metric,
            "val_rmse": val,
        }
        write_best_checkpoint(self._output_dir, rec)
        self.best_record = rec
        return True
