"""Motion: the right person in a sequence, and temporal smoothing that never hurts.

* :mod:`motion_keypoints.motion.smooth` — time-aware smoothing of keypoints within runs of nearby
  frames of one clip and camera (Gaussian kernel regression, local quadratic fit over time,
  One-Euro), person-switch detection, parameter choice on validation clips, jitter metric.
* :mod:`motion_keypoints.motion.select` — which detected person to keep (score, area, centre,
  track) and aligning ensemble members on the same person.
* :mod:`motion_keypoints.motion.video` — ``predict_video``: a video or frames folder to a
  keypoints CSV and an overlay video (members, flip TTA, track, smoothing).
* ``benchmarks/motion.py`` (not a module) — the figures of issues 13 and 20 on synthetic clips (smoothing
  on dense and sparse clips, wrong-person rate per rule, video throughput).

Importing them does not import torch or detectron2 (``video`` loads them with a run).
"""
