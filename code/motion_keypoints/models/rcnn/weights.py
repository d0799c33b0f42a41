"""COCO Keypoint R-CNN checkpoints for the kit's keypoints: the 17 → K keypoint-predictor transfer.

detectron2 silently drops a COCO checkpoint's keypoint predictor
(``roi_heads.keypoint_head.score_lowres``, a ``ConvTranspose2d`` weight ``[512, 17, 4, 4]`` and
bias ``[17]``) because its shape differs from ours (``[512, K, 4, 4]``). The first 17 keypoints of
the kit are the COCO 17 in COCO order, so :func:`transfer_rcnn_keypoint_head` copies them and
initialises the others (neck, palms, spine, insteps) from their anatomical neighbours — the same
rule as the heatmap family (:data:`motion_keypoints.meta.NEIGHBOUR_INIT`, applied by
:mod:`motion_keypoints.engine.transfer`; keypoint axis 1 here).

Use :class:`KeypointTransferCheckpointer` instead of ``DetectionCheckpointer`` in the trainer: it
rewrites the predictor before detectron2 compares shapes, and logs one line.
"""

from __future__ import annotations

import logging
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer

from ...engine.transfer import COCO_KEYPOINT_NAMES, transfer_keypoint_channels
from ...meta import KEYPOINT_NAMES

logger = logging.getLogger("motion_keypoints")

#: The keypoint predictor of detectron2's ``KRCNNConvDeconvUpsampleHead``.
PREDICTOR_PREFIX = "roi_heads.keypoint_head.score_lowres."


def transfer_rcnn_keypoint_head(
    state: Dict[str, object], keypoint_names: Sequence[str] = KEYPOINT_NAMES,
    init: Optional[Dict[str, torch.Tensor]] = None,
) -> Tuple[Dict[str, object], Optional[str]]:
    """Rewrite a 17-keypoint predictor of ``state`` (a model state dict; numpy or torch values)
    to ``len(keypoint_names)`` channels. ``init``: the model's current predictor tensors (kept
    for keypoints without neighbours; zeros otherwise). Returns ``(state, summary line)``; the
    line is None when there was nothing to transfer (already K channels, or no predictor)."""
    w_key, b_key = PREDICTOR_PREFIX + "weight", PREDICTOR_PREFIX + "bias"
    if w_key not in state:
        return state, None
    w = torch.as_tensor(np.asarray(state[w_key])) if not isinstance(state[w_key], torch.Tensor) \
        else state[w_key]
    if w.ndim != 4 or w.shape[1] != len(COCO_KEYPOINT_NAMES) or \
            w.shape[1] == len(keypoint_names):
        return state, None
    init = init or {}
    out = dict(state)
    new_w, copied, neigh, kept = transfer_keypoint_channels(
        w, keypoint_names, COCO_KEYPOINT_NAMES, axis=1, init=init.get("weight"),
    )
    out[w_key] = new_w
    if b_key in state:
        b = state[b_key]
        b = b if isinstance(b, torch.Tensor) else torch.as_tensor(np.asarray(b))
        out[b_key], *_ = transfer_keypoint_channels(
            b, keypoint_names, COCO_KEYPOINT_NAMES, axis=0, init=init.get("bias"),
        )
    line = (f"keypoint predictor {PREDICTOR_PREFIX[:-1]} {tuple(w.shape)} -> {tuple(new_w.shape)}: "
            f"{len(copied)} COCO channels copied, {len(neigh)} from neighbours"
            + (f", {len(kept)} freshly initialised" if kept else ""))
    return out, line


class KeypointTransferCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that transfers a COCO 17-keypoint predictor to the kit's K
    keypoints instead of dropping it (kit checkpoints with K channels load unchanged)."""

    def _load_model(self, checkpoint):
        model_state = self.model.state_dict()
        init = {
            k[len(PREDICTOR_PREFIX):]: v for k, v in model_state.items()
            if k.startswith(PREDICTOR_PREFIX)
        }
        if init:
            n = int(init["weight"].shape[1])
            names = list(KEYPOINT_NAMES)[:n] if n <= len(KEYPOINT_NAMES) else list(KEYPOINT_NAMES)
            checkpoint["model"], line = transfer_rcnn_keypoint_head(
                checkpoint["model"], names, init=init
            )
            if line:
                logger.info(line)
        return super()._load_model(checkpoint)


__all__ = ["KeypointTransferCheckpointer", "PREDICTOR_PREFIX", "transfer_rcnn_keypoint_head"]
