"""The whole pipeline on synthetic data (make demo): python code/demo.py (motion_keypoints.cli.demo)."""

from motion_keypoints.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
