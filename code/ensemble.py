"""Fuse the predictions of several runs into a submission (see motion_keypoints.ensemble).

    python code/ensemble.py --runs outputs/A outputs/B --data-root DIR \
        [--split test|val] [--method mean|median|weighted|robust] --out submissions/submission.csv
"""

from motion_keypoints.ensemble import main

if __name__ == "__main__":
    raise SystemExit(main())
