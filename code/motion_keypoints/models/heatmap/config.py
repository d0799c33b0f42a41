"""Config keys of the heatmap family (PointRend style: :func:`add_heatmap_config` is declared in
the model registry and always called by ``engine.config.setup_cfg``, so every config file of any
family loads, and the keys are ignored by the other families). Select the family with
``MODEL.META_ARCHITECTURE: "TopDownHeatmap"`` (see ``configs/Base-HRNet.yaml``)."""

from __future__ import annotations

from typing import List

from ...meta import KEYPOINT_NAMES
from ..config_check import flag, integer, number, one_of, sequence

#: The heatmap family's detectron2 meta-architecture (registered in :mod:`.meta_arch`).
META_ARCHITECTURE = "TopDownHeatmap"


def add_heatmap_config(cfg) -> None:
    """Add the heatmap family's keys, each with a default."""
    node = type(cfg)
    _C = cfg

    _C.MODEL.HEATMAP = node()
    # Backbone: a timm HRNet name (hrnet_w18_small, hrnet_w32, hrnet_w48, ...) or "tiny_hrnet"
    # (hrnet_w18_small with a slim stage 1, models/heatmap/model.py TINY_BACKBONE_KWARGS).
    _C.MODEL.HEATMAP.BACKBONE = "hrnet_w32"
    # Network input (crop) size as (width, height); both multiples of 32. Heatmaps are 1/4 of it.
    _C.MODEL.HEATMAP.INPUT_SIZE = (192, 256)
    # 3x3 conv + BN + ReLU blocks before the final 1x1 conv (0 = official pose_hrnet head).
    _C.MODEL.HEATMAP.HEAD_CONVS = 0
    # Gaussian target sigma, in heatmap pixels.
    _C.MODEL.HEATMAP.SIGMA = 2.0
    # Unbiased data processing (UDP) encoding instead of the original HRNet's x_in / stride.
    _C.MODEL.HEATMAP.UDP = False
    # Decoding: "dark" (Taylor refinement on the blurred log heatmap) or "argmax" (quarter step).
    _C.MODEL.HEATMAP.DECODE = "dark"
    # Blur kernel of DARK decoding (odd; 11 for sigma 2 as in MMPose).
    _C.MODEL.HEATMAP.DARK_KERNEL = 11
    # Crop = person box grown to the input aspect ratio, times this margin.
    _C.MODEL.HEATMAP.BOX_MARGIN = 1.25
    # Flip test at inference: average with the mirrored crop's heatmaps (1-px shift unless UDP).
    _C.MODEL.HEATMAP.FLIP_TEST = False
    # Online hard keypoint mining: only the k largest keypoint losses per crop count (0 = off).
    _C.MODEL.HEATMAP.OHKM_TOPK = 0
    # Multiplier of the heatmap MSE loss (its raw value is small; 1000 keeps SGD learning rates
    # in the usual range and is harmless with Adam).
    _C.MODEL.HEATMAP.LOSS_WEIGHT = 1000.0

    _C.INPUT.HEATMAP = node()
    # Crop jitter in training: the box centre moves by up to this fraction of the box size.
    _C.INPUT.HEATMAP.CENTER_JITTER = 0.05
    # Random scale of the crop region in training: factor in [1 - s, 1 + s].
    _C.INPUT.HEATMAP.SCALE_JITTER = 0.25
    # Random rotation in training: up to this many degrees, with probability ROTATION_PROB.
    _C.INPUT.HEATMAP.ROTATION = 30.0
    _C.INPUT.HEATMAP.ROTATION_PROB = 0.6
    # Horizontal flip in training (left/right keypoints swapped via meta.FLIP_INDEX).
    _C.INPUT.HEATMAP.FLIP_PROB = 0.5
    # Half-body augmentation: crop the upper or the lower body with this probability ...
    _C.INPUT.HEATMAP.HALF_BODY_PROB = 0.3
    # ... when at least this many keypoints are visible.
    _C.INPUT.HEATMAP.HALF_BODY_MIN_KEYPOINTS = 8

    # Optimizer of the heatmap family: "SGD" (detectron2's default builder) or "ADAM"
    # (torch.optim.Adam with SOLVER.BASE_LR and SOLVER.WEIGHT_DECAY; the HRNet recipe).
    _C.SOLVER.OPTIMIZER = "SGD"


def backbone_names() -> List[str]:
    """The names ``MODEL.HEATMAP.BACKBONE`` takes: ``tiny_hrnet`` and timm's HRNets."""
    import timm

    return ["tiny_hrnet", *timm.list_models("hrnet*")]


def decode_methods() -> tuple:
    from .codec import DECODE_METHODS

    return DECODE_METHODS


_K = len(KEYPOINT_NAMES)
#: The rule of each key above (models/config_check.py checks them in setup_cfg, before any work).
HEATMAP_KEY_RULES = {
    "MODEL.HEATMAP.BACKBONE": one_of(backbone_names, what="heatmap backbone (timm HRNet)"),
    "MODEL.HEATMAP.INPUT_SIZE": sequence(integer(32, multiple_of=32), length=2),
    "MODEL.HEATMAP.HEAD_CONVS": integer(0, 8),
    "MODEL.HEATMAP.SIGMA": number(0, lo_open=True),
    "MODEL.HEATMAP.UDP": flag(),
    "MODEL.HEATMAP.DECODE": one_of(decode_methods, what="decode method"),
    "MODEL.HEATMAP.DARK_KERNEL": integer(1, odd=True),
    "MODEL.HEATMAP.BOX_MARGIN": number(0, lo_open=True),
    "MODEL.HEATMAP.FLIP_TEST": flag(),
    "MODEL.HEATMAP.OHKM_TOPK": integer(0, _K),
    "MODEL.HEATMAP.LOSS_WEIGHT": number(0, lo_open=True),
    "INPUT.HEATMAP.CENTER_JITTER": number(0, 1),
    "INPUT.HEATMAP.SCALE_JITTER": number(0, 1, hi_open=True),
    "INPUT.HEATMAP.ROTATION": number(0, 180),
    "INPUT.HEATMAP.ROTATION_PROB": number(0, 1),
    "INPUT.HEATMAP.FLIP_PROB": number(0, 1),
    "INPUT.HEATMAP.HALF_BODY_PROB": number(0, 1),
    "INPUT.HEATMAP.HALF_BODY_MIN_KEYPOINTS": integer(0, _K),
    "SOLVER.OPTIMIZER": one_of(("SGD", "ADAM"), ignore_case=True, what="heatmap optimizer"),
}


__all__ = ["HEATMAP_KEY_RULES", "META_ARCHITECTURE", "add_heatmap_config", "backbone_names"]
