"""Predict with a trained run: python code/predict.py --run RUN --data-root DIR [--flip-tta] (motion_keypoints.cli.predict)."""

from motion_keypoints.cli.predict import main

if __name__ == "__main__":
    raise SystemExit(main())
