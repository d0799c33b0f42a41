"""``TopDownHeatmap``: the heatmap family as a detectron2 meta-architecture (``META_ARCH_REGISTRY``),
so detectron2's engine (trainer, checkpointer, evaluation, launch, AMP) runs it unchanged.

- Training: a list of mapped crops (:class:`.data.HeatmapTrainMapper`: ``image`` uint8 RGB crop,
  ``heatmaps`` (K, h, w), ``target_weight`` (K,)) → ``{"loss_heatmap": ...}``
  (:func:`.model.heatmap_loss` × ``MODEL.HEATMAP.LOSS_WEIGHT``, OHKM optional).
- Inference: a list of either
  - crops (:class:`.data.HeatmapTestMapper`: ``image`` crop + ``crop_inverse``, ``box``,
    ``box_score``, ``height``, ``width``), one person each; or
  - whole images (``image`` (3, H, W) uint8 in ``INPUT.FORMAT``) with ``boxes`` (N, 4) person
    boxes in continuous coordinates (optional ``box_scores``), N persons each;

  → one ``{"instances": Instances}`` per input with ``pred_boxes``, ``scores``, ``pred_classes``
  (0) and ``pred_keypoints`` (N, K, 3): x, y in the image's **continuous** coordinates (like
  detectron2's Keypoint R-CNN), and the heatmap maximum as the score. So the kit's RMSE evaluator
  and the predictor's postprocessing take either family unchanged.

Decoding: ``MODEL.HEATMAP.DECODE`` (DARK by default); ``MODEL.HEATMAP.FLIP_TEST`` averages with
the mirrored crop's heatmaps (``codec.flip_heatmaps``, 1-px shift unless UDP). A map without a
positive value (DARK's NaN) falls back to its integer argmax (counted in
:attr:`TopDownHeatmap.no_peak_count`), never a silent zero.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, Instances
from torch import nn

from ...geometry import to_continuous
from ...meta import FLIP_INDEX, KEYPOINT_NAMES
from . import codec
from .config import META_ARCHITECTURE
from .data import crop_person, input_size_of
from .model import PRESETS, TINY_BACKBONE_KWARGS, HRNetHeatmapModel, heatmap_loss


def build_heatmap_network(cfg) -> HRNetHeatmapModel:
    """The HRNet of ``MODEL.HEATMAP`` (``BACKBONE`` a timm name or ``tiny_hrnet``)."""
    name = str(cfg.MODEL.HEATMAP.BACKBONE)
    kwargs = {}
    if name == "tiny_hrnet":
        name, kwargs = PRESETS["tiny_hrnet"][0], dict(TINY_BACKBONE_KWARGS)
    return HRNetHeatmapModel(
        len(KEYPOINT_NAMES), name, backbone_kwargs=kwargs,
        head_convs=int(cfg.MODEL.HEATMAP.HEAD_CONVS),
    )


@META_ARCH_REGISTRY.register()
class TopDownHeatmap(nn.Module):
    """Top-down heatmap model (see the module doc)."""

    def __init__(self, cfg):
        super().__init__()
        h = cfg.MODEL.HEATMAP
        self.net = self.build_network(cfg)
        self.input_size = input_size_of(cfg)
        HRNetHeatmapModel.heatmap_size(self.input_size)  # checks multiples of 32
        self.input_format = cfg.INPUT.FORMAT
        self.udp = bool(h.UDP)
        self.decode_method = str(h.DECODE)
        self.dark_kernel = int(h.DARK_KERNEL)
        self.flip_test = bool(h.FLIP_TEST)
        self.crop_margin = float(h.BOX_MARGIN)
        self.ohkm_topk = int(h.OHKM_TOPK) or None
        self.loss_weight = float(h.LOSS_WEIGHT)
        self.no_peak_count = 0

    def build_network(self, cfg) -> Optional[nn.Module]:
        """The network (:func:`build_heatmap_network`). A subclass that computes
        :meth:`heatmaps` elsewhere (the ONNX runtime, :mod:`motion_keypoints.export.runtime`)
        returns None and keeps the crops, decoding and flip test of this class."""
        return build_heatmap_network(cfg)

    @property
    def device(self) -> torch.device:
        return self.net.final_conv.weight.device

    # ------------------------------------------------------------------------------- network
    def _normalised(self, crops: torch.Tensor) -> torch.Tensor:
        x = crops.to(self.device, non_blocking=True).float() / 255.0
        return self.net.normalize(x)

    def heatmaps(self, crops: torch.Tensor) -> torch.Tensor:
        """uint8 RGB crops (N, 3, h_in, w_in) → heatmaps (N, K, h, w)."""
        return self.net(self._normalised(crops))

    def forward(self, batched_inputs: List[Dict]):
        if self.training:
            return self.losses(batched_inputs)
        return self.inference(batched_inputs)

    def losses(self, batched_inputs: List[Dict]) -> Dict[str, torch.Tensor]:
        crops = torch.stack([d["image"] for d in batched_inputs])
        target = torch.stack([d["heatmaps"] for d in batched_inputs]).to(self.device)
        weight = torch.stack([d["target_weight"] for d in batched_inputs]).to(self.device)
        pred = self.heatmaps(crops)
        loss = heatmap_loss(pred.float(), target, weight, self.ohkm_topk)
        return {"loss_heatmap": loss * self.loss_weight}

    # ----------------------------------------------------------------------------- inference
    def predict_crops(self, crops: torch.Tensor, inverses: np.ndarray,
                      flip: Optional[bool] = None) -> Dict[str, np.ndarray]:
        """uint8 RGB crops (N, 3, h, w) and their ``M_inv`` (N, 2, 3) → image keypoints.

        Returns ``{"plain": (N, K, 3), "flip": (N, K, 3) or None}``: x, y in the image's
        pixel-index coordinates and the heatmap maximum. ``flip`` defaults to FLIP_TEST.
        """
        flip = self.flip_test if flip is None else flip
        if len(crops) == 0:
            empty = np.zeros((0, len(KEYPOINT_NAMES), 3))
            return {"plain": empty, "flip": empty if flip else None}
        with torch.no_grad():
            batch = torch.cat([crops, torch.flip(crops, dims=[3])]) if flip else crops
            hm = self.heatmaps(batch).float().cpu().numpy()
        n = len(crops)
        plain = self._decode(hm[:n], inverses)
        fused = None
        if flip:
            back = codec.flip_heatmaps(hm[n:], FLIP_INDEX, shift=not self.udp)
            fused = self._decode(codec.fuse_flip(hm[:n], back), inverses)
        return {"plain": plain, "flip": fused}

    def _decode(self, hm: np.ndarray, inverses: np.ndarray) -> np.ndarray:
        coords, maxvals = codec.decode(hm, self.decode_method, self.udp, self.dark_kernel)
        bad = ~np.isfinite(coords).all(axis=-1)
        if bad.any():  # no positive value: the integer argmax (still the best guess), counted
            self.no_peak_count += int(bad.sum())
            n, k, h, w = hm.shape
            idx = hm.reshape(n, k, -1).argmax(axis=-1)
            coords = np.where(bad[..., None], np.stack([idx % w, idx // w], -1), coords)
        hm_size = (hm.shape[-1], hm.shape[-2])
        out = np.empty(coords.shape[:-1] + (3,))
        for i in range(len(coords)):
            out[i, :, :2] = codec.heatmap_to_image(
                coords[i], hm_size, self.input_size, inverses[i], self.udp
            )
        out[..., 2] = maxvals
        return out

    def _crops_of(self, d: Dict):
        """(crops, inverses, boxes, scores) of one inference input (crop or image + boxes)."""
        if "crop_inverse" in d:
            inv = np.asarray(d["crop_inverse"], dtype=np.float64).reshape(1, 2, 3)
            box = np.asarray(d["box"], dtype=np.float64).reshape(1, 4)
            return d["image"][None], inv, box, np.array([float(d.get("box_score", 1.0))])
        boxes = d.get("boxes")
        if boxes is None:
            raise ValueError("TopDownHeatmap needs person boxes: inputs with 'boxes' (N, 4) "
                             "or crops from HeatmapTestMapper")
        boxes = np.asarray(torch.as_tensor(boxes).cpu(), dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(d.get("box_scores", np.ones(len(boxes))), dtype=np.float64)
        image = d["image"].permute(1, 2, 0).cpu().numpy()
        if self.input_format == "RGB":
            image = image[:, :, ::-1]
        image = np.ascontiguousarray(image)
        crops, invs = [], []
        for b in boxes:
            c, m_inv = crop_person(image, b, self.input_size, self.crop_margin, self.udp)
            crops.append(torch.as_tensor(np.ascontiguousarray(c.transpose(2, 0, 1))))
            invs.append(m_inv)
        size = (len(boxes), 3, self.input_size[1], self.input_size[0])
        crops_t = torch.stack(crops) if crops else torch.zeros(size, dtype=torch.uint8)
        return crops_t, np.array(invs).reshape(-1, 2, 3), boxes, scores

    def inference(self, batched_inputs: List[Dict]) -> List[Dict]:
        parts = [self._crops_of(d) for d in batched_inputs]
        crops = torch.cat([p[0] for p in parts])
        inverses = np.concatenate([p[1] for p in parts])
        kps = self.predict_crops(crops, inverses)
        kps = kps["flip"] if kps["flip"] is not None else kps["plain"]
        results, start = [], 0
        for d, (_, _, boxes, scores) in zip(batched_inputs, parts):
            n = len(boxes)
            inst = Instances((int(d["height"]), int(d["width"])))
            inst.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32))
            inst.scores = torch.as_tensor(scores, dtype=torch.float32)
            inst.pred_classes = torch.zeros(n, dtype=torch.int64)
            k = kps[start : start + n].copy()
            k[..., :2] = to_continuous(k[..., :2])
            inst.pred_keypoints = torch.as_tensor(k, dtype=torch.float32)
            results.append({"instances": inst})
            start += n
        return results


assert TopDownHeatmap.__name__ == META_ARCHITECTURE

__all__ = ["TopDownHeatmap", "build_heatmap_network"]
