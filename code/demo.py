#!/usr/bin/env python
"""One command, the whole pipeline on the kit's synthetic data (what `make demo` runs)."""

import sys

from motion_keypoints.pipeline import main

if __name__ == "__main__":
    sys.exit(main())
