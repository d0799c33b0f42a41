"""Check a data root before training: python code/check_data.py --data-root DIR [--audit] (motion_keypoints.cli.check_data)."""

from motion_keypoints.cli.check_data import main

if __name__ == "__main__":
    raise SystemExit(main())
