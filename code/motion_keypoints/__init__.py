"""motion-keypoints: an ensemble of Detectron2 Keypoint R-CNN models for body keypoints.

Importing this package is cheap: detectron2 and torch are imported by the modules that need them,
always through :mod:`motion_keypoints.compat`.
"""

__version__ = "0.1.0"
