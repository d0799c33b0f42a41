"""Run an ONNX export with onnxruntime, behind the same interface as the torch models, so the
kit's predictors (batching, flip TTA, person rules, decoding, CSVs) run unchanged on either
backend (``predict.py --backend onnxruntime``):

- :class:`OnnxKeypointRCNN` stands in for detectron2's ``GeneralizedRCNN`` in eval mode:
  ``model(batched_inputs)`` → ``[{"instances": Instances}]`` in the original image's
  coordinates. The file gives boxes, scores, classes and keypoint logits of the resized image;
  the kit then calls detectron2's own ``heatmaps_to_keypoints`` and ``detector_postprocess``,
  as ``GeneralizedRCNN.inference`` does.
- :class:`OnnxTopDownHeatmap` is :class:`~motion_keypoints.models.heatmap.meta_arch.TopDownHeatmap`
  with :meth:`heatmaps` computed by the file: crops, decoding and the flip test (mirrored crops
  through the same file) are the torch model's own code.

Sessions run on the CPU (or CUDA where onnxruntime has it) with as many threads as torch has
when the model is loaded (the predictor sets them by core count), so both backends get the same
cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..models.heatmap.meta_arch import TopDownHeatmap
from ..utils import PathLike
from .manifest import ExportError

#: onnxruntime execution providers the kit uses, in order of preference (those installed).
PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def ort_session(path: PathLike, threads: int = 0):
    """An onnxruntime session of ``path`` (``threads`` 0: torch's current thread count)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("onnxruntime is not installed: pip install -e '.[export]' (or pip "
                          "install onnxruntime)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads) or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only (no shape-inference chatter)
    providers = [p for p in PROVIDERS if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), options, providers=providers)


class OnnxKeypointRCNN:
    """``keypoint_rcnn.onnx`` behind ``GeneralizedRCNN``'s inference call (see the module)."""

    def __init__(self, path: PathLike, threads: int = 0):
        self.session = ort_session(path, threads)
        self.training = False

    def eval(self) -> OnnxKeypointRCNN:
        return self

    def __call__(self, batched_inputs: List[Dict]) -> List[Dict]:
        from detectron2.modeling.postprocessing import detector_postprocess
        from detectron2.structures import Boxes, Instances, heatmaps_to_keypoints

        results = []
        for d in batched_inputs:
            image = d["image"]
            boxes, scores, classes, logits = (
                torch.from_numpy(np.asarray(a)) for a in self.session.run(
                    None, {"image": np.ascontiguousarray(image.cpu().numpy())}))
            h, w = int(image.shape[-2]), int(image.shape[-1])
            inst = Instances((h, w))
            inst.pred_boxes = Boxes(boxes)
            inst.scores = scores
            inst.pred_classes = classes
            inst.pred_keypoints = heatmaps_to_keypoints(logits, boxes)[:, :, [0, 1, 3]]
            out = detector_postprocess(inst, d.get("height", h), d.get("width", w))
            results.append({"instances": out})
        return results


class OnnxTopDownHeatmap(TopDownHeatmap):
    """``heatmap.onnx`` as :meth:`TopDownHeatmap.heatmaps` (see the module)."""

    def __init__(self, cfg, path: PathLike, threads: int = 0):
        super().__init__(cfg)
        self.session = ort_session(path, threads)

    def build_network(self, cfg):
        return None  # the network is the ONNX file

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def heatmaps(self, crops: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(crops.cpu().numpy().astype(np.uint8, copy=False))
        return torch.from_numpy(self.session.run(None, {"crops": x})[0])


def load_onnx_model(cfg, manifest: dict, threads: int = 0):
    """The onnxruntime stand-in of a run's model from its checked export
    (:func:`motion_keypoints.export.manifest.check_export`)."""
    path = Path(manifest["dir"]) / manifest["files"]["model"]["path"]
    if manifest["family"] == "heatmap":
        return OnnxTopDownHeatmap(cfg, path, threads)
    if manifest["family"] == "rcnn":
        return OnnxKeypointRCNN(path, threads)
    raise ExportError(f"{path}: unknown family {manifest['family']!r} in its export.json")


class OnnxLoader:
    """``load_model(cfg)`` for the predictors: the export of ``manifest`` (picklable)."""

    def __init__(self, manifest: dict):
        self.manifest = manifest

    def __call__(self, cfg):
        return load_onnx_model(cfg, self.manifest)


__all__ = ["OnnxKeypointRCNN", "OnnxLoader", "OnnxTopDownHeatmap", "load_onnx_model", "ort_session"]
