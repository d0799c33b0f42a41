"""Temporal smoothing of a predictions or submission CSV: python code/smooth.py --pred FILE --out FILE (motion_keypoints.cli.smooth)."""

from motion_keypoints.cli.smooth import main

if __name__ == "__main__":
    raise SystemExit(main())
