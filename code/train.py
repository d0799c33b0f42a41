"""Train one model (either family): python code/train.py --config-file CONFIG [KEY VALUE ...], the same as motion-keypoints train (motion_keypoints.cli.train)."""

from motion_keypoints.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
