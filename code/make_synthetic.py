"""Synthetic data: python code/make_synthetic.py --out DIR --train N --test M (motion_keypoints.cli.make_synthetic)."""

from motion_keypoints.cli.make_synthetic import main

if __name__ == "__main__":
    raise SystemExit(main())
