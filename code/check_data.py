"""Check a data root before training: ``python code/check_data.py --data-root DIR``.

Prints a summary (rows, images, image sizes) and warnings (keypoints outside their image); exits 1
with one line per problem, naming file, line and column, when the data cannot be used.

``--audit`` also ranks suspicious labels (left/right swaps, odd bone lengths, stray points) and
draws each flagged image into ``outputs/audit/``; fixes go into ``DATA/label_overrides.csv``
(``image, keypoint, x, y``), which every stage applies, so the original CSV is never edited.
"""

import sys

from motion_keypoints.data import check_data_main

if __name__ == "__main__":
    sys.exit(check_data_main())
