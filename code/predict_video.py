"""Video to keypoints: python code/predict_video.py VIDEO --runs R1 [R2 ...] --out DIR (motion_keypoints.cli.predict_video)."""

from motion_keypoints.cli.predict_video import main

if __name__ == "__main__":
    raise SystemExit(main())
