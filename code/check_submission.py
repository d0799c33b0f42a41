"""Validate a submission: python code/check_submission.py --data-root DIR FILE (motion_keypoints.cli.check_submission)."""

from motion_keypoints.cli.check_submission import main

if __name__ == "__main__":
    raise SystemExit(main())
