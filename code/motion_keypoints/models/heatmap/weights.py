"""Pretrained weights for the heatmap model: timm ImageNet HRNet or official pose_hrnet checkpoints.

Key layouts (checked against ``timm/models/hrnet.py`` and deep-high-resolution-net's
``lib/models/pose_hrnet.py``): both name the backbone identically — ``conv1``, ``bn1``, ``conv2``,
``bn2``, ``layer1.*``, ``transition{1,2,3}.*``, ``stage{2,3,4}.<module>.branches.*`` /
``.fuse_layers.<i>.<j>.*`` (timm's ``nn.Identity`` and the official ``None`` both hold no keys).
Our model holds the backbone under ``backbone.`` and the head as ``final_conv``. Differences:

- timm ImageNet checkpoints add the classification head (``incre_modules``, ``downsamp_modules``,
  ``final_layer.0/1`` [2048, …], ``classifier``) and the fuse rows 1–3 of the last stage-4 module;
  our model has neither (see ``model.py``), so they are reported *unexpected*, and the head stays
  freshly initialised (reported *missing*).
- official pose checkpoints (``pose_hrnet_w48_384x288.pth``) are the backbone plus
  ``final_layer.weight`` [17, C, 1, 1] / ``final_layer.bias`` [17], sometimes with a ``module.``
  prefix (DataParallel). The 17 COCO channels are transferred to our head by
  :func:`transfer_keypoint_channels`. MMPose's ``(keypoint_)head.final_layer`` is accepted too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ...engine.transfer import (
    COCO_KEYPOINT_NAMES,
    NEIGHBOUR_INIT,
    transfer_keypoint_channels,
)

logger = logging.getLogger(__name__)

#: Checkpoint keys of a 17-keypoint heatmap head (official pose_hrnet, MMPose 1.x, MMPose 0.x).
_HEAD_PREFIXES = ("final_layer.", "head.final_layer.", "keypoint_head.final_layer.")
_WRAPPER_PREFIXES = ("module.",)


@dataclass
class LoadSummary:
    """What :func:`load_pretrained` did (key names after stripping ``module.``)."""

    source: str
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)  # same name, other shape: not loaded
    head_copied: List[str] = field(default_factory=list)
    head_from_neighbours: List[str] = field(default_factory=list)
    head_kept: List[str] = field(default_factory=list)
    head_source: Optional[str] = None  # the checkpoint key of the transferred head, if any

    @property
    def line(self) -> str:
        """The one log line."""
        counts = (
            f"loaded {len(self.matched)} matched, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected keys"
        )
        if self.mismatched:
            counts += f", {len(self.mismatched)} shape-mismatched"
        if self.head_source is None:
            head = "head: not in checkpoint, freshly initialised"
        else:
            head = (
                f"head: {len(self.head_copied)} COCO channels copied, "
                f"{len(self.head_from_neighbours)} initialised from neighbours"
            )
            if self.head_kept:
                head += f", {len(self.head_kept)} freshly initialised"
        return f"{counts} from {self.source} ({head})"


def _read_state_dict(path_or_state_dict) -> Tuple[Dict[str, torch.Tensor], str]:
    if isinstance(path_or_state_dict, (str, Path)):
        source = str(path_or_state_dict)
        ckpt = torch.load(source, map_location="cpu", weights_only=True)
    else:
        source, ckpt = "<state_dict>", path_or_state_dict
    if not isinstance(ckpt, Mapping):
        raise TypeError(f"{source}: expected a state dict, got {type(ckpt).__name__}")
    for wrapper in ("state_dict", "model"):  # training checkpoints wrap the weights
        if wrapper in ckpt and isinstance(ckpt[wrapper], Mapping):
            ckpt = ckpt[wrapper]
            break
    out = {}
    for key, value in ckpt.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if isinstance(value, torch.Tensor):
            out[key] = value
    return out, source


def load_pretrained(
    model: nn.Module,
    path_or_state_dict: Union[str, Path, Mapping[str, torch.Tensor]],
    keypoint_names: Sequence[str],
    coco_names: Sequence[str] = COCO_KEYPOINT_NAMES,
    neighbour_map: Mapping[str, Sequence[str]] = NEIGHBOUR_INIT,
) -> LoadSummary:
    """Load a timm ImageNet HRNet, an official pose_hrnet (or MMPose) checkpoint, or one of ours.

    Backbone keys ``k`` go to ``backbone.k`` (keys already under ``backbone.``/``final_conv.``/
    ``head_convs.`` are ours and go as they are); a tensor is loaded only where name and shape
    match. A 17-channel ``final_layer`` becomes our ``final_conv`` through
    :func:`transfer_keypoint_channels` (copy the COCO channels, neighbours for the others). Logs one
    line (:attr:`LoadSummary.line`) and returns the summary. ``num_batches_tracked`` buffers are
    never reported missing.
    """
    state, source = _read_state_dict(path_or_state_dict)
    target = model.state_dict()
    summary = LoadSummary(source=source)
    new_state = dict(target)
    loaded = set()

    head_keys = {}
    for key, value in state.items():
        prefix = next((p for p in _HEAD_PREFIXES if key.startswith(p)), None)
        if prefix is not None and key[len(prefix) :] in ("weight", "bias"):
            head_keys[key[len(prefix) :]] = (key, value)
            continue
        if key.startswith(("backbone.", "final_conv.", "head_convs.")):
            name = key
        else:
            name = "backbone." + key
        if name not in target:
            summary.unexpected.append(key)
        elif tuple(target[name].shape) != tuple(value.shape):
            summary.mismatched.append(key)
        else:
            new_state[name] = value.to(target[name].dtype)
            loaded.add(name)
            summary.matched.append(key)

    if "weight" in head_keys and "final_conv.weight" not in loaded:
        w_key, w = head_keys["weight"]
        b = head_keys.get("bias", (None, None))[1]
        tw, tb = target["final_conv.weight"], target["final_conv.bias"]
        if w.ndim != 4 or w.shape[1:] != tw.shape[1:] or w.shape[0] != len(coco_names):
            summary.mismatched.append(w_key)
            if "bias" in head_keys:
                summary.mismatched.append(head_keys["bias"][0])
        else:
            new_w, copied, neigh, kept = transfer_keypoint_channels(
                w, keypoint_names, coco_names, neighbour_map, axis=0, init=tw
            )
            new_state["final_conv.weight"] = new_w
            loaded.add("final_conv.weight")
            summary.matched.append(w_key)
            if b is not None:
                new_b, *_ = transfer_keypoint_channels(
                    b, keypoint_names, coco_names, neighbour_map, axis=0, init=tb
                )
                new_state["final_conv.bias"] = new_b
                loaded.add("final_conv.bias")
                summary.matched.append(head_keys["bias"][0])
            summary.head_source = w_key
            summary.head_copied, summary.head_from_neighbours, summary.head_kept = (
                copied,
                neigh,
                kept,
            )
    else:
        for key, _ in head_keys.values():
            summary.unexpected.append(key)

    summary.missing = [
        k for k in target if k not in loaded and not k.endswith("num_batches_tracked")
    ]
    model.load_state_dict(new_state, strict=True)
    logger.info(summary.line)
    return summary


__all__ = [
    "COCO_KEYPOINT_NAMES",
    "NEIGHBOUR_INIT",
    "LoadSummary",
    "load_pretrained",
    "transfer_keypoint_channels",
]
