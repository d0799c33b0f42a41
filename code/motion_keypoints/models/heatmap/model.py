"""Top-down heatmap model: timm's HRNet, its stride-4 branch, a 1×1 conv to one heatmap per keypoint.

Backbone choice (read in ``timm/models/hrnet.py``, timm 1.0.x): ``features_only=True`` builds
``HighResolutionNetFeatures`` with ``feature_location='incre'`` by default, which passes every
branch through the classification head's "incre" Bottleneck modules (stride-4 output 128 channels
for W32, layers that pose checkpoints do not have). We pass ``feature_location=''``: the features
are then the raw stage-4 branch outputs, and ``out_indices=(1,)`` picks the first branch
(``feature_info``: reduction 4, ``w`` channels, 32 for W32) — exactly the tensor that the official
``pose_hrnet`` feeds its ``final_layer`` (``y_list[0]``), so official pose checkpoints map onto it
key for key (``weights.py``). Index 0 is the stride-2 stem, 2–4 the 8/16/32 branches.

timm builds the last stage-4 module with ``multi_scale_output=True`` (fuse rows for all four
branches); official pose HRNet builds it with ``multi_scale_output=False`` (only the row fusing
into the high-resolution branch). With ``prune_unused=True`` (default) we drop the other rows:
same outputs, less compute, no unused parameters (DDP needs no ``find_unused_parameters``), and the
parameter set is the official pose layout.

Input: images ``(N, 3, H, W)``, RGB, normalised with timm's ImageNet mean/std
(:attr:`HRNetHeatmapModel.pixel_mean` / ``pixel_std``, for 0–1 pixel values). Output: heatmaps
``(N, K, H/4, W/4)``; decode them with :mod:`.codec`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import timm
import torch
from torch import nn

#: Stride of the heatmaps w.r.t. the input (the HRNet high-resolution branch).
OUTPUT_STRIDE = 4

#: A small CPU HRNet for the demo and tests: timm's ``hrnet_w18_small`` (1 module per stage,
#: 16-channel high-resolution branch) with a 32-wide first stem conv and a 1-block BASIC stage 1
#: of 32 channels instead of a 128-channel Bottleneck, overriding timm's arch cfg via kwargs.
TINY_BACKBONE_KWARGS: Dict[str, Any] = {
    "stem_width": 32,
    "stage1": dict(
        num_modules=1,
        num_branches=1,
        block_type="BASIC",
        num_blocks=(1,),
        num_channels=(32,),
        fuse_method="SUM",
    ),
}

#: Named presets: (timm backbone name, backbone kwargs, input size (w, h)).
PRESETS: Dict[str, Tuple[str, Dict[str, Any], Tuple[int, int]]] = {
    "tiny_hrnet": ("hrnet_w18_small", TINY_BACKBONE_KWARGS, (96, 128)),
    "hrnet_w32_256x192": ("hrnet_w32", {}, (192, 256)),
    "hrnet_w32_384x288": ("hrnet_w32", {}, (288, 384)),
    "hrnet_w48_256x192": ("hrnet_w48", {}, (192, 256)),
    "hrnet_w48_384x288": ("hrnet_w48", {}, (288, 384)),
}


def prune_to_high_resolution(backbone: nn.Module) -> int:
    """Keep only the fuse row into branch 0 in timm HRNet's last stage-4 module (the official
    pose layout); returns the number of parameters removed. The module then returns one output."""
    last = backbone.stage4[-1]
    fuse = last.fuse_layers
    if not isinstance(fuse, nn.ModuleList) or len(fuse) <= 1:
        return 0
    removed = sum(p.numel() for row in fuse[1:] for p in row.parameters())
    last.fuse_layers = nn.ModuleList([fuse[0]])
    last.multi_scale_output = False
    return removed


class HRNetHeatmapModel(nn.Module):
    """timm HRNet (stride-4 branch) + heatmap head.

    Args:
        num_keypoints: K, the number of heatmaps (from the keypoint metadata, never a literal).
        backbone: a timm HRNet name (``timm.list_models('hrnet*')``).
        backbone_kwargs: overrides of timm's arch cfg (e.g. :data:`TINY_BACKBONE_KWARGS`).
        head_convs: number of 3×3 conv + BN + ReLU blocks before the final 1×1 conv (0, as the
            official pose_hrnet).
        head_channels: their width (default: the backbone's high-resolution channels).
        prune_unused: drop the fuse layers that only feed the unused low-resolution outputs.
    """

    def __init__(
        self,
        num_keypoints: int,
        backbone: str = "hrnet_w32",
        backbone_kwargs: Optional[Dict[str, Any]] = None,
        head_convs: int = 0,
        head_channels: Optional[int] = None,
        prune_unused: bool = True,
        in_chans: int = 3,
    ):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be positive, got {num_keypoints}")
        self.num_keypoints = int(num_keypoints)
        self.backbone_name = backbone
        self.backbone = timm.create_model(
            backbone,
            pretrained=False,
            features_only=True,
            feature_location="",
            out_indices=(1,),
            in_chans=in_chans,
            **(backbone_kwargs or {}),
        )
        info = self.backbone.feature_info
        if list(info.reduction()) != [OUTPUT_STRIDE]:
            raise ValueError(f"{backbone}: expected one stride-{OUTPUT_STRIDE} feature map, "
                             f"got reductions {info.reduction()}")
        channels = int(info.channels()[0])
        if prune_unused:
            prune_to_high_resolution(self.backbone)
        layers = []
        width = channels
        for _ in range(int(head_convs)):
            out = int(head_channels or channels)
            layers += [
                nn.Conv2d(width, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            width = out
        self.head_convs = nn.Sequential(*layers)
        self.final_conv = nn.Conv2d(width, self.num_keypoints, kernel_size=1)
        for m in self.head_convs.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final_conv.weight, std=0.001)  # as official pose_hrnet
        nn.init.zeros_(self.final_conv.bias)
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    @property
    def feature_channels(self) -> int:
        """Channels of the stride-4 feature map (the input of the head)."""
        return int(self.backbone.feature_info.channels()[0])

    @staticmethod
    def heatmap_size(input_size: Tuple[int, int]) -> Tuple[int, int]:
        """``(w, h)`` of the heatmaps for an input ``(w, h)`` (both must be multiples of 32)."""
        w, h = input_size
        if w % 32 or h % 32:
            raise ValueError(f"input size {input_size} must be a multiple of 32 (HRNet's stride)")
        return w // OUTPUT_STRIDE, h // OUTPUT_STRIDE

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images with values in [0, 1] → the normalised input of :meth:`forward`."""
        return (images - self.pixel_mean) / self.pixel_std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised images ``(N, 3, H, W)`` → heatmaps ``(N, K, H/4, W/4)``."""
        (features,) = self.backbone(images)
        return self.final_conv(self.head_convs(features))


def build_preset(name: str, num_keypoints: int, **kwargs) -> Tuple[HRNetHeatmapModel, Tuple[int, int]]:
    """A model from :data:`PRESETS` and its input size ``(w, h)``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    backbone, bkw, input_size = PRESETS[name]
    return HRNetHeatmapModel(num_keypoints, backbone, backbone_kwargs=dict(bkw), **kwargs), input_size


def heatmap_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_weight: Optional[torch.Tensor] = None,
    ohkm_topk: Optional[int] = None,
) -> torch.Tensor:
    """MSE between heatmaps ``(N, K, h, w)`` with per-keypoint weights ``(N, K)``.

    As HRNet's ``JointsMSELoss``: ``0.5 · mean((w · (pred - target))²)``, i.e. each keypoint's
    loss is the mean over its pixels, weighted by ``target_weight`` (0 for unlabelled keypoints),
    averaged over keypoints and images. With ``ohkm_topk = k`` (online hard keypoint mining, as
    HRNet's ``JointsOHKMMSELoss``) only the ``k`` largest keypoint losses of each image count.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    n, k = pred.shape[:2]
    diff = (pred - target).reshape(n, k, -1)
    if target_weight is not None:
        diff = diff * target_weight.reshape(n, k, 1).to(diff.dtype)
    per_kpt = 0.5 * diff.pow(2).mean(dim=-1)  # (N, K)
    if ohkm_topk:
        per_kpt = per_kpt.topk(min(int(ohkm_topk), k), dim=1).values
    return per_kpt.mean()


class HeatmapLoss(nn.Module):
    """:func:`heatmap_loss` as a module (``ohkm_topk=None`` for plain weighted MSE)."""

    def __init__(self, ohkm_topk: Optional[int] = None):
        super().__init__()
        self.ohkm_topk = ohkm_topk

    def forward(self, pred, target, target_weight=None):
        return heatmap_loss(pred, target, target_weight, self.ohkm_topk)


__all__ = [
    "OUTPUT_STRIDE",
    "PRESETS",
    "TINY_BACKBONE_KWARGS",
    "HRNetHeatmapModel",
    "HeatmapLoss",
    "build_preset",
    "heatmap_loss",
    "prune_to_high_resolution",
]
