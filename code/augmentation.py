"""Render augmentation sets: python code/augmentation.py --data-root DIR --sets NAME[,NAME...] (motion_keypoints.cli.augmentation)."""

from motion_keypoints.cli.augmentation import main

if __name__ == "__main__":
    raise SystemExit(main())
