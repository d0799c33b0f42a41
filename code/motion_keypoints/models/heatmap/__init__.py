"""Top-down heatmap family (issue 12): an HRNet on a person crop, decoded from Gaussian heatmaps.

- :mod:`.codec` — pure numpy: crop affine, Gaussian targets, argmax / DARK decoding, UDP, flip test;
- :mod:`.model` — ``HRNetHeatmapModel`` (timm HRNet stride-4 branch + 1×1 head) and its loss;
- :mod:`.weights` — ``load_pretrained`` for timm ImageNet and official pose_hrnet checkpoints.

Importing this package is cheap (numpy only); ``model`` and ``weights`` import torch and timm.
"""
