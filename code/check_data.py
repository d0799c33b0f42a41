"""Check a data root before training: ``python code/check_data.py --data-root DIR``.

Prints a summary (rows, images, image sizes) and warnings (keypoints outside their image); exits 1
with one line per problem, naming file, line and column, when the data cannot be used.
"""

import sys

from motion_keypoints.data import check_data_main

if __name__ == "__main__":
    sys.exit(check_data_main())
