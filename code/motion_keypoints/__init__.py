"""motion-keypoints: an ensemble of keypoint models (Detectron2 Keypoint R-CNN and top-down
HRNet heatmap models) for the body keypoints of ``meta.KEYPOINT_NAMES``.

Importing this package is cheap: detectron2 and torch are imported by the modules that need them
(``models/``, ``engine/``), never at package import.
"""

__version__ = "0.1.0"
