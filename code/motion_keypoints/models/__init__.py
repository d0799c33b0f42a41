"""Model families. Each family lives in ``models/<family>/``, registers its meta-architecture in
detectron2's ``META_ARCH_REGISTRY`` and writes the same run folder and predictions CSV
(:mod:`motion_keypoints.io.runs`, :mod:`motion_keypoints.io.predictions`), so the ensemble fuses
any of them."""

from __future__ import annotations

FAMILIES = ("rcnn", "heatmap")

#: detectron2 meta-architectures of the heatmap family (registered in models/heatmap/meta_arch.py).
HEATMAP_META_ARCHS = ("TopDownHeatmap",)

__all__ = ["FAMILIES", "HEATMAP_META_ARCHS", "family_of", "train_family"]


def family_of(cfg) -> str:
    """``"heatmap"`` for a top-down heatmap config (``MODEL.META_ARCHITECTURE`` TopDownHeatmap),
    ``"rcnn"`` for everything else (detectron2's GeneralizedRCNN and friends)."""
    arch = str(cfg.MODEL.META_ARCHITECTURE)
    return "heatmap" if arch in HEATMAP_META_ARCHS else "rcnn"


def train_family(cfg, resume: bool = False, eval_only: bool = False) -> dict:
    """Train (or only evaluate) one run with its family's trainer; returns the validation results."""
    if family_of(cfg) == "heatmap":
        from .heatmap.trainer import train
    else:
        from .rcnn.trainer import train
    return train(cfg, resume=resume, eval_only=eval_only)
