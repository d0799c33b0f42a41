"""Motion: the right person in a sequence, and temporal smoothing that never hurts.

* :mod:`motion_keypoints.motion.smooth` — time-aware smoothing of keypoints within runs of nearby
  frames of one clip and camera (Gaussian kernel regression, local quadratic fit over time,
  One-Euro), person-switch detection, parameter choice on validation clips, jitter metric.
* :mod:`motion_keypoints.motion.select` — which detected person to keep (score, area, centre,
  track) and aligning ensemble members on the same person.

Both are pure numpy/pandas: importing them does not import torch or detectron2.
"""
