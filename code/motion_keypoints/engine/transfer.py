"""The 17 -> K keypoint transfer of a COCO-trained predictor, shared by both families (Keypoint
R-CNN's ``ConvTranspose2d`` predictor on axis 1, the heatmap head on axis 0). What goes where is
keypoint knowledge and lives with the keypoint metadata (:data:`motion_keypoints.meta.NEIGHBOUR_INIT`,
:func:`motion_keypoints.meta.keypoint_transfer_plan`); this module applies it to torch tensors."""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import torch

from ..meta import COCO_17, NEIGHBOUR_INIT, keypoint_transfer_plan

#: The 17 COCO keypoints, in COCO order (the first 17 of the kit's keypoints are these, in order).
COCO_KEYPOINT_NAMES: Tuple[str, ...] = COCO_17


def transfer_keypoint_channels(
    source: torch.Tensor,
    keypoint_names: Sequence[str],
    source_names: Sequence[str] = COCO_KEYPOINT_NAMES,
    neighbour_map: Mapping[str, Sequence[str]] = NEIGHBOUR_INIT,
    axis: int = 0,
    init: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, List[str], List[str], List[str]]:
    """Per-keypoint tensor over ``source_names`` → the same over ``keypoint_names``.

    ``axis`` is the keypoint axis: 0 for a conv weight ``[K, C, 1, 1]`` or a bias ``[K]``, 1 for
    Keypoint R-CNN's ``ConvTranspose2d`` predictor ``[C, K, 4, 4]``. A keypoint present in
    ``source_names`` is copied; one in ``neighbour_map`` gets the mean of its neighbours; any other
    keeps ``init`` (the target's current values; zeros when not given).

    Returns ``(tensor, copied, from_neighbours, kept)`` with the keypoint names of each kind.
    """
    if source.shape[axis] != len(source_names):
        raise ValueError(
            f"source has {source.shape[axis]} keypoints on axis {axis}, "
            f"{len(source_names)} source names given"
        )
    shape = list(source.shape)
    shape[axis] = len(keypoint_names)
    out = torch.zeros(shape, dtype=source.dtype) if init is None else init.detach().clone()
    if list(out.shape) != shape:
        raise ValueError(f"init has shape {tuple(out.shape)}, expected {tuple(shape)}")
    names = {"copied": [], "neighbours": [], "kept": []}
    plan = keypoint_transfer_plan(list(keypoint_names), source_names, dict(neighbour_map))
    for k, (name, kind, idx) in enumerate(plan):
        names[kind].append(name)
        if kind == "kept":
            continue
        value = source.index_select(axis, torch.tensor(idx)).mean(dim=axis)
        out.select(axis, k).copy_(value.to(out.dtype))
    return out, names["copied"], names["neighbours"], names["kept"]
