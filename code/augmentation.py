"""Render augmentation sets: ``python code/augmentation.py --data-root DIR --sets NAME[,NAME...]``.

Writes ``augmented/<set>/images/*.jpg``, ``annotations.csv`` and ``manifest.json`` for each set of
``configs/augmentation.yaml``. Re-runs skip finished images; see ``motion_keypoints.augment``.
"""

import sys

from motion_keypoints.augment import main

if __name__ == "__main__":
    sys.exit(main())
