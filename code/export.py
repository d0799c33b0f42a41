"""Export a trained run to ONNX: python code/export.py --run RUN --format onnx [--out DIR] (motion_keypoints.cli.export)."""

from motion_keypoints.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())
