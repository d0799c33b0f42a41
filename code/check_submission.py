"""Validate a submission file against the data's sample_submission.csv, naming each problem.

    python code/check_submission.py --data-root DIR FILE
"""

from motion_keypoints.submission import main

if __name__ == "__main__":
    raise SystemExit(main())
