"""Validation with the competition metric, as a detectron2 ``DatasetEvaluator``.

The model's top-scoring person per image is compared with the labels: RMSE over all coordinates
(images where nobody was detected are filled with the mean training pose,
:func:`motion_keypoints.evaluation.evaluate.training_mean_pose`, and counted), RMSE over
detected images only, per-keypoint RMSE and the detection rate; beside them the RMSE of the mean
pose itself on the same images (``mean_pose_rmse``) and the ratio to it, PCK@0.05 and PCK@0.1 of
the box size (overall and per keypoint) and the RMSE per camera (``rmse_camera/<camera>``).
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.split import camera_of
from ..evaluation.metrics import group_rmse, pck, per_keypoint_rmse, ratio_to, rmse, scale_pose
from ..geometry import from_continuous
from ..meta import KEYPOINT_NAMES
from ..utils import atomic_write_text


def top_person(instances) -> Optional[Dict[str, np.ndarray]]:
    """Keypoints (K, 2) in label coordinates, keypoint scores (K,), box and score of the
    top-scoring person, or None when nobody was detected."""
    if instances is None or len(instances) == 0:
        return None
    i = int(instances.scores.argmax())
    kps = instances.pred_keypoints[i].detach().cpu().numpy().astype(np.float64)
    return {
        "keypoints": from_continuous(kps[:, :2]),
        "keypoint_scores": kps[:, 2],
        "box": instances.pred_boxes.tensor[i].detach().cpu().numpy().astype(np.float64),
        "score": float(instances.scores[i]),
    }


def dicts_keypoints(dicts: List[dict]) -> np.ndarray:
    """(N, K, 2) label coordinates (the kit's pixel-index convention) of single-person dataset
    dicts, whose keypoints are detectron2's continuous coordinates."""
    out = np.array(
        [np.asarray(d["annotations"][0]["keypoints"], float).reshape(-1, 3)[:, :2] for d in dicts]
    )
    return from_continuous(out)


def _read_only(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


class KeypointRMSEEvaluator(DatasetEvaluator):
    """Competition RMSE of the top-scoring person per image.

    The ground truth is read once, when the evaluator is built, into its own read-only arrays in
    the kit's pixel-index convention, so nothing another evaluator or a cache does to the
    registered dataset dicts changes the metric.
    """

    def __init__(self, dataset_name: str, mean_rel_pose: np.ndarray, output_dir: Optional[str] = None):
        dicts = sorted(DatasetCatalog.get(dataset_name), key=lambda d: d["image_id"])
        self._ids = tuple(d["image_id"] for d in dicts)
        self._truth = _read_only(dicts_keypoints(dicts)) if dicts else _read_only(np.zeros((0, 0, 2)))
        self._sizes = _read_only(np.array([[d["width"], d["height"]] for d in dicts], float))
        self._cameras = tuple(camera_of(os.path.basename(str(d.get("file_name", "")))) for d in dicts)
        self._mean_rel_pose = _read_only(mean_rel_pose)
        self._output_dir = output_dir
        self._predictions: Dict = {}

    def reset(self):
        self._predictions = {}

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            person = top_person(out.get("instances"))
            self._predictions[inp["image_id"]] = None if person is None else person["keypoints"]

    def evaluate(self):
        all_preds: Dict = {}
        for part in comm.gather(self._predictions, dst=0):
            all_preds.update(part)
        if not comm.is_main_process():
            return {}
        ids = self._ids
        missing = [i for i in ids if all_preds.get(i) is None]
        truth = self._truth
        fallback = scale_pose(self._mean_rel_pose, self._sizes)
        pred = np.array(
            [fallback[k] if all_preds.get(i) is None else all_preds[i] for k, i in enumerate(ids)]
        )
        detected = np.array([all_preds.get(i) is not None for i in ids])
        res: Dict[str, float] = OrderedDict()
        res["rmse"] = rmse(pred, truth)
        res["rmse_detected"] = rmse(pred[detected], truth[detected]) if detected.any() else float("nan")
        res["detection_rate"] = float(detected.mean()) if len(ids) else float("nan")
        res["missed"] = float(len(missing))
        res["mean_pose_rmse"] = rmse(fallback, truth)
        res["rmse_ratio"] = ratio_to(res["rmse"], res["mean_pose_rmse"])
        pck05, pck10 = pck(pred, truth, 0.05, KEYPOINT_NAMES), pck(pred, truth, 0.1, KEYPOINT_NAMES)
        res["pck05"] = float(np.mean(list(pck05.values())))
        res["pck10"] = float(np.mean(list(pck10.values())))
        for name, v in per_keypoint_rmse(pred, truth, KEYPOINT_NAMES).items():
            res[f"rmse/{name}"] = v
        for name in KEYPOINT_NAMES:
            res[f"pck05/{name}"], res[f"pck10/{name}"] = pck05[name], pck10[name]
        for cam, v in group_rmse(pred, truth, self._cameras).items():
            res[f"rmse_camera/{cam}"] = v
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            atomic_write_text(
                os.path.join(self._output_dir, "keypoints_rmse.json"),
                json.dumps({"metrics": res, "missed_images": [str(i) for i in missing]}, indent=1),
            )
        return OrderedDict(keypoints_rmse=res)
