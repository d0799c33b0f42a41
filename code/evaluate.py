"""RMSE of a predictions or submission CSV against labels, overall and per keypoint.

    python code/evaluate.py --pred FILE --truth DIR/train_df.csv [--skip-missing]
"""

from motion_keypoints.ensemble import main_evaluate

if __name__ == "__main__":
    raise SystemExit(main_evaluate())
