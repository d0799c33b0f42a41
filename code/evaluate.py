"""RMSE of predictions against labels: python code/evaluate.py --pred FILE --truth FILE (motion_keypoints.cli.evaluate)."""

from motion_keypoints.cli.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
