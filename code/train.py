"""Train one Keypoint R-CNN: python code/train.py --config-file CONFIG [KEY VALUE ...] (motion_keypoints.cli.train)."""

from motion_keypoints.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
