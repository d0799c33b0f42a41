"""Fuse the predictions of several runs: python code/ensemble.py --runs A B --data-root DIR (motion_keypoints.cli.ensemble)."""

from motion_keypoints.cli.ensemble import main

if __name__ == "__main__":
    raise SystemExit(main())
