"""Training progress on the console: one bar over the iterations and a line per evaluation.

detectron2's per-iteration log (CommonMetricPrinter) still goes to ``<run>/log.txt``; the console
shows this bar (loss, lr, ETA) and, after each evaluation, one summary line.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

from detectron2.engine import HookBase

logger = logging.getLogger("motion_keypoints")


def _fmt(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def evaluation_summary(iteration: Optional[int], results: dict) -> str:
    """One line from the evaluators' results: RMSE in px beside the mean pose's RMSE on the same
    images and the ratio to it, PCK@0.1, detection rate, RMSE per camera. detectron2's COCO
    keypoint AP is left off the console (it is in metrics.json and log.txt): with the OKS sigmas of
    1.0 the kit uses it is near 100 at any useful RMSE and says nothing. ``iteration`` None for an
    evaluation outside training."""
    head = "evaluation" if iteration is None else f"evaluation at iteration {iteration}"
    parts = []
    rmse = results.get("keypoints_rmse", {}) or {}
    if "rmse" in rmse:
        text = f"validation RMSE {_fmt(rmse['rmse'])} px"
        if "mean_pose_rmse" in rmse:
            text += (f" (mean pose {_fmt(rmse['mean_pose_rmse'])} px, ratio "
                     f"{_fmt(rmse.get('rmse_ratio'))})")
        parts.append(text)
    if "pck10" in rmse:
        parts.append(f"PCK@0.1 {_fmt(100 * rmse['pck10'], 1)} %")
    if "detection_rate" in rmse:
        parts.append(f"detected {_fmt(100 * rmse['detection_rate'], 1)} %")
    cams = {k.split("/", 1)[1]: v for k, v in rmse.items() if k.startswith("rmse_camera/")}
    if len(cams) > 1:
        parts.append("per camera " + ", ".join(f"{c} {_fmt(v)}" for c, v in sorted(cams.items())))
    return f"{head}: " + (", ".join(parts) if parts else "no results")


class ProgressHook(HookBase):
    """A tqdm bar over the iterations with the smoothed loss and the learning rate."""

    def __init__(self, max_iter: int, enabled: bool = True, window: int = 20):
        self._max_iter = max_iter
        self._enabled = enabled
        self._window = window
        self._bar = None
        self._last_eval = None

    def before_train(self):
        # Evaluation results from before this training (none in a new trainer) are not news.
        self._last_eval = getattr(self.trainer, "_last_eval_results", None)
        if not self._enabled:
            return
        from tqdm import tqdm

        self._bar = tqdm(
            total=self._max_iter,
            initial=self.trainer.start_iter,
            desc="train",
            unit="it",
            dynamic_ncols=True,
            leave=True,
            mininterval=0.5,
        )

    def after_step(self):
        storage = self.trainer.storage
        if self._bar is not None:
            post = {}
            hist = storage.histories()
            if "total_loss" in hist:
                post["loss"] = f"{hist['total_loss'].median(self._window):.3f}"
            if "lr" in hist:
                post["lr"] = f"{hist['lr'].latest():.3g}"
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        self._report_evaluation(self.trainer.iter + 1)

    def _report_evaluation(self, iteration: int):
        results = getattr(self.trainer, "_last_eval_results", None)
        if results and results is not self._last_eval:
            self._last_eval = results
            logger.info(evaluation_summary(iteration, results))

    def after_train(self):
        # detectron2's EvalHook validates the last iteration in after_train, before this hook.
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        # the loop leaves trainer.iter at max_iter
        self._report_evaluation(min(self.trainer.iter, self._max_iter))
