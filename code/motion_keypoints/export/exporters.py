"""Export a trained run of either family to ONNX (``python code/export.py --run RUN --format onnx``).

What goes into the ``.onnx`` file, and what stays in the kit:

- **heatmap family** (``TopDownHeatmap``): :meth:`TopDownHeatmap.heatmaps`, i.e. uint8 RGB
  crops ``(N, 3, h, w)`` at the crop size (``MODEL.HEATMAP.INPUT_SIZE``), cast, normalised, the
  timm HRNet and the head → heatmaps ``(N, K, h/4, w/4)``, with a dynamic batch. The crops (the
  kit's crop affine), decoding (``models/heatmap/codec.py``: DARK/argmax/UDP) and the flip test
  (the mirrored crops go through the same file, in the same batch) stay in the kit.
- **Keypoint R-CNN** (``GeneralizedRCNN``): one resized image ``(3, H, W)`` uint8 in
  ``cfg.INPUT.FORMAT`` with dynamic H and W → the network up to the keypoint head's logits: boxes
  ``(R, 4)`` in the resized image, scores ``(R,)``, classes ``(R,)`` and keypoint logits
  ``(R, K, S, S)``, R dynamic (score threshold, NMS and ``TEST.DETECTIONS_PER_IMAGE`` are in the
  graph). The resize, logits → keypoints (detectron2's ``heatmaps_to_keypoints``) and the
  rescaling to the original image (``detector_postprocess``) stay in the kit
  (:mod:`motion_keypoints.export.runtime`), exactly the functions the torch model calls.

How the R-CNN is exported: **detectron2's** :class:`~detectron2.export.TracingAdapter` **and
torch's TorchScript-based ONNX exporter** (``torch.onnx.export(..., dynamo=False)``). detectron2
v0.6 is written for tracing: the adapter flattens the inputs and outputs and patches ``len()`` so
that the number of boxes stays dynamic, and the traced graph keeps H, W and R dynamic (checked on
another size than the traced one). ``torch.export`` (the dynamo exporter) fails on this model: it
cannot guard on data-dependent sizes in detectron2's Python control flow (e.g.
``x.numel() == 0`` in ``layers/wrappers.Conv2d`` after the data-dependent padding:
``GuardOnDataDependentSymNode``), so it would need source changes in detectron2. The heatmap
model has no data-dependent shapes and is exported with the same exporter, for one path.

Every export is checked before it is written: onnxruntime runs the file on an example input and
its outputs must match the torch model's (the differences are recorded in ``export.json``).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

from .. import __version__
from ..meta import FLIP_PAIRS, KEYPOINT_NAMES
from ..utils import PathLike, file_sha256
from .manifest import (
    EXPORT_FILE,
    ExportError,
    export_dir_of,
    run_family,
    run_fingerprint,
)

logger = logging.getLogger("motion_keypoints")

#: ONNX opset of the exports (16+ has ROIAlign with half-pixel coordinates, ``aligned=True``).
OPSET = 17
#: The exporter, as written in ``export.json``.
EXPORTER = "torch.onnx.export (TorchScript tracing, dynamo=False)"
#: The file of each family in an export folder.
ONNX_FILES = {"heatmap": "heatmap.onnx", "rcnn": "keypoint_rcnn.onnx"}
#: Largest accepted difference between onnxruntime and torch on the example input
#: (pixels for boxes, logit units for heatmaps): float32 rounding is ~1e-5 here.
TOLERANCE = 1e-2
#: The output kind of the export's files (the output policy's ledger).
KIND = "onnx export"


# ------------------------------------------------------------------ what can be exported
#: R-CNN config keys the export supports (key, supported values, why).
RCNN_SUPPORTED = (
    ("MODEL.META_ARCHITECTURE", ("GeneralizedRCNN",), "the Keypoint R-CNN graph"),
    ("MODEL.KEYPOINT_ON", (True,), "the keypoint head is what is exported"),
    ("MODEL.MASK_ON", (False,), "mask heads are not part of the keypoint export"),
    ("MODEL.PROPOSAL_GENERATOR.NAME", ("RPN",), "the traced proposal generator"),
    ("MODEL.ROI_HEADS.NAME", ("StandardROIHeads",), "the traced ROI heads"),
    ("MODEL.ROI_KEYPOINT_HEAD.NAME", ("KRCNNConvDeconvUpsampleHead",), "the traced keypoint head"),
)


def _cfg_value(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_exportable(cfg, family: str, run: PathLike) -> None:
    """One :class:`ExportError` line for a config the ONNX export does not support."""
    if family == "heatmap":
        return
    for key, values, why in RCNN_SUPPORTED:
        value = _cfg_value(cfg, key)
        if value not in values:
            raise ExportError(f"{run}: {key} {value!r} cannot be exported to ONNX (supported: "
                              f"{', '.join(map(repr, values))}; {why})")
    deform = list(cfg.MODEL.RESNETS.DEFORM_ON_PER_STAGE)
    if any(deform):
        raise ExportError(f"{run}: MODEL.RESNETS.DEFORM_ON_PER_STAGE {deform} cannot be exported "
                          "to ONNX (deformable convolution has no ONNX operator)")


# ------------------------------------------------------------------ the graphs
class HeatmapGraph(torch.nn.Module):
    """What ``heatmap.onnx`` computes: :meth:`TopDownHeatmap.heatmaps` (uint8 RGB crops →
    heatmaps)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.model.heatmaps(crops)


def rcnn_network_outputs(model, image: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """What ``keypoint_rcnn.onnx`` computes: detectron2's ``GeneralizedRCNN.inference`` on one
    resized image (3, H, W) up to the keypoint head's logits, without post-processing:
    ``(boxes (R, 4), scores (R,), classes (R,), keypoint logits (R, K, S, S))``."""
    images = model.preprocess_image([{"image": image}])
    features = model.backbone(images.tensor)
    proposals, _ = model.proposal_generator(images, features, None)
    heads = model.roi_heads
    instances = heads._forward_box(features, proposals)
    boxes = [x.pred_boxes for x in instances]
    regions = heads.keypoint_pooler([features[f] for f in heads.keypoint_in_features], boxes)
    logits = heads.keypoint_head.layers(regions)
    inst = instances[0]
    return inst.pred_boxes.tensor, inst.scores, inst.pred_classes, logits


def _dims(shape: Sequence) -> list:
    return [d if isinstance(d, str) else int(d) for d in shape]


# ------------------------------------------------------------------ loading
def load_torch_model(cfg):
    """The run's torch model on the CPU in eval mode, weights loaded."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from ..models.heatmap import meta_arch  # noqa: F401  (registers TopDownHeatmap)

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    model = build_model(cfg)
    model.eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model


def example_image(cfg, run: Path, image: Optional[PathLike] = None) -> Tuple[dict, str]:
    """The R-CNN's example input (traced and checked): ``image``, else the run's first
    validation image, else the first test image of its data folder (``run_info.json``
    data_root), read and resized as prediction does. Returns ``(model input, its file)``."""
    from ..models.rcnn.mapper import read_image_as
    from ..models.rcnn.predictor import _model_input, _test_resize, images_of_split

    if image is None:
        data_root = json.loads((run / "run_info.json").read_text()).get("data_root")
        for split in ("val", "test"):
            try:
                names, folder = images_of_split(run, Path(data_root or ""), split)
            except (OSError, ValueError, KeyError):
                continue
            if names and (Path(folder) / names[0]).is_file():
                image = Path(folder) / names[0]
                break
        if image is None:
            raise ExportError(f"{run}: no example image to trace the Keypoint R-CNN with (its "
                              f"data folder {data_root} is not here); give --image FILE, an "
                              "image with a person")
    resize = _test_resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    return _model_input(read_image_as(image, cfg.INPUT.FORMAT), resize), str(image)


# ------------------------------------------------------------------ exporting
def _onnx_export(module, args: tuple, path: Path, names: Tuple[list, list], dynamic: dict):
    import warnings

    with warnings.catch_warnings():  # tracer warnings about Python control flow: expected
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET,
                          input_names=names[0], output_names=names[1], dynamic_axes=dynamic)


def _max_diff(torch_out: Sequence[torch.Tensor], ort_out: Sequence[np.ndarray],
              what: Sequence[str]) -> list:
    """Largest |onnxruntime - torch| per output; ExportError when a shape differs or a
    difference exceeds :data:`TOLERANCE` (the file would not reproduce the model)."""
    diffs = []
    for name, a, b in zip(what, torch_out, ort_out):
        a = a.detach().cpu().numpy()
        if a.shape != b.shape:
            raise ExportError(f"the exported {name} has shape {b.shape}, torch gives {a.shape} "
                              "on the example input: the export is not faithful (please report)")
        diffs.append(float(np.abs(a.astype(np.float64) - b).max()) if a.size else 0.0)
        if diffs[-1] > TOLERANCE:
            raise ExportError(f"the exported {name} differs from torch by {diffs[-1]:.3g} on the "
                              f"example input (tolerance {TOLERANCE}): the export is not "
                              "faithful (please report)")
    return diffs


def export_heatmap(cfg, model, path: Path) -> dict:
    """Write ``heatmap.onnx`` (see the module) to ``path``; returns its description."""
    from .runtime import ort_session

    w, h = (int(v) for v in cfg.MODEL.HEATMAP.INPUT_SIZE)
    graph = HeatmapGraph(model).eval()
    gen = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (2, 3, h, w), dtype=torch.uint8, generator=gen)
    _onnx_export(graph, (example,), path, (["crops"], ["heatmaps"]),
                 {"crops": {0: "batch"}, "heatmaps": {0: "batch"}})
    check = torch.randint(0, 256, (3, 3, h, w), dtype=torch.uint8, generator=gen)  # other batch
    with torch.no_grad():
        ref = graph(check)
    got = ort_session(path).run(None, {"crops": check.numpy()})
    (diff,) = _max_diff([ref], got, ["heatmaps"])
    k = len(KEYPOINT_NAMES)
    return {
        "inputs": [{"name": "crops", "dtype": "uint8", "shape": ["batch", 3, h, w],
                    "meaning": "RGB person crops at MODEL.HEATMAP.INPUT_SIZE (the kit's crop "
                               "affine, models/heatmap/codec.py), values 0-255"}],
        "outputs": [{"name": "heatmaps", "dtype": "float32",
                     "shape": _dims(["batch", k, h // 4, w // 4]),
                     "meaning": "one heatmap per keypoint (keypoint_names order)"}],
        "postprocess": "in the kit: decoding (models/heatmap/codec.py, MODEL.HEATMAP.DECODE "
                       f"{cfg.MODEL.HEATMAP.DECODE}, UDP {bool(cfg.MODEL.HEATMAP.UDP)}) and the "
                       "crop's inverse affine; flip test = the mirrored crops through this file",
        "check": {"example": "3 random crops (traced with 2)", "max_abs_diff_heatmaps": diff},
    }


def export_rcnn(cfg, model, path: Path, example: dict, example_file: str) -> dict:
    """Write ``keypoint_rcnn.onnx`` (see the module) to ``path``; returns its description."""
    from detectron2.export import TracingAdapter

    from .runtime import ort_session

    image = example["image"]
    adapter = TracingAdapter(model, (image,), inference_func=rcnn_network_outputs).eval()
    with torch.no_grad():
        ref = adapter(image)
    if len(ref[0]) == 0:
        raise ExportError(f"the Keypoint R-CNN finds nobody in the example image {example_file}: "
                          "the keypoint head would not be traced; give --image FILE, an image "
                          "with a person")
    names = ["boxes", "scores", "classes", "keypoint_logits"]
    dynamic = {"image": {1: "height", 2: "width"}, **{n: {0: "detections"} for n in names}}
    _onnx_export(adapter, (image,), path, (["image"], names), dynamic)
    got = ort_session(path).run(None, {"image": image.numpy()})
    diffs = _max_diff(ref, got, names)
    side = int(ref[3].shape[-1])
    k = len(KEYPOINT_NAMES)
    return {
        "inputs": [{"name": "image", "dtype": "uint8", "shape": [3, "height", "width"],
                    "meaning": f"one image in INPUT.FORMAT {cfg.INPUT.FORMAT}, resized as "
                               f"ResizeShortestEdge({cfg.INPUT.MIN_SIZE_TEST}, "
                               f"{cfg.INPUT.MAX_SIZE_TEST}), CHW"}],
        "outputs": [
            {"name": "boxes", "dtype": "float32", "shape": ["detections", 4],
             "meaning": "x1, y1, x2, y2 in the resized image (continuous coordinates)"},
            {"name": "scores", "dtype": "float32", "shape": ["detections"],
             "meaning": "detection scores (ROI_HEADS.SCORE_THRESH_TEST and NMS applied)"},
            {"name": "classes", "dtype": "int64", "shape": ["detections"], "meaning": "class 0"},
            {"name": "keypoint_logits", "dtype": "float32",
             "shape": _dims(["detections", k, side, side]),
             "meaning": "keypoint head logits per box (keypoint_names order)"},
        ],
        "postprocess": "in the kit: detectron2's heatmaps_to_keypoints(logits, boxes) and "
                       "detector_postprocess to the original image size",
        "check": {"example": example_file, "detections": int(len(ref[0])),
                  "max_abs_diff_boxes_px": diffs[0], "max_abs_diff_scores": diffs[1],
                  "max_abs_diff_keypoint_logits": diffs[3]},
    }


def export_run(run: PathLike, out: Optional[PathLike] = None, checkpoint: str = "best",
               opts: Sequence[str] = (), image: Optional[PathLike] = None) -> dict:
    """Export a trained run to ONNX in ``out`` (default ``<run>/export``): the family's ``.onnx``
    file and ``export.json`` (written last, atomically). Returns the description."""
    from ..io.outputs import check_output_file, output_file, register_inputs, write_text
    from ..models.rcnn.predictor import load_run_config

    run = Path(run)
    family = run_family(run)
    cfg = load_run_config(run, checkpoint, opts)
    check_exportable(cfg, family, run)
    folder = export_dir_of(run, out)
    onnx_path, manifest_path = folder / ONNX_FILES[family], folder / EXPORT_FILE
    weights = Path(cfg.MODEL.WEIGHTS)
    register_inputs(weights, run / "config.yaml", run / "run_info.json", image)
    for p in (onnx_path, manifest_path):  # before any work
        check_output_file(p, KIND, "--out")
    _require_onnx()
    example = example_image(cfg, run, image) if family == "rcnn" else None
    model = load_torch_model(cfg)
    t0 = time.perf_counter()
    with ExitStack() as stack:
        tmp = stack.enter_context(output_file(onnx_path, KIND, "--out"))
        try:
            if family == "heatmap":
                spec = export_heatmap(cfg, model, tmp)
            else:
                spec = export_rcnn(cfg, model, tmp, *example)
        except ExportError:
            raise
        except Exception as exc:  # what the exporter cannot do: one line (--debug: traceback)
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise ExportError(f"the {family} model of {run} cannot be exported to ONNX: "
                              f"{type(exc).__name__}: {first}") from exc
    manifest = {
        "format": "onnx", "family": family, "kit_version": __version__,
        "torch": torch.__version__, "opset": OPSET, "exporter": EXPORTER,
        "run": str(run.resolve()), "run_fingerprint": run_fingerprint(run),
        "checkpoint": weights.name, "checkpoint_sha256": file_sha256(weights),
        "opts": [str(o) for o in opts],
        "keypoint_names": list(KEYPOINT_NAMES), "flip_pairs": [list(p) for p in FLIP_PAIRS],
        "files": {"model": {"path": onnx_path.name, "sha256": file_sha256(onnx_path), **spec}},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_text(manifest_path, json.dumps(manifest, indent=1) + "\n", KIND, "--out")
    return {**manifest, "dir": str(folder)}


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401  (torch.onnx.export writes through it)
        import onnxruntime  # noqa: F401  (the export is checked with it)
    except ImportError as exc:
        raise ExportError(f"{exc.name} is not installed: pip install -e '.[export]' (or "
                          "pip install onnx onnxruntime)") from None


__all__ = ["ONNX_FILES", "OPSET", "check_exportable", "export_run", "rcnn_network_outputs"]
