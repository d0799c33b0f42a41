#!/usr/bin/env python
"""Predict the test (or validation) images with a trained run.

  python code/predict.py --run outputs/tiny-cpu --data-root outputs/synthetic --flip-tta
"""

import motion_keypoints.compat  # noqa: F401

import argparse
import sys

from motion_keypoints.predict import CHECKPOINTS, SPLITS, predict_run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (outputs/<run>)")
    p.add_argument("--data-root", required=True, help="data folder in the competition layout")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="best")
    p.add_argument("--flip-tta", action="store_true", help="average with the mirrored image")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    predict_run(
        a.run, a.data_root, a.split, a.checkpoint, a.flip_tta, a.batch_size, a.workers, a.opts
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
