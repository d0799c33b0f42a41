"""``python code/evaluate.py --pred FILE --truth FILE``: RMSE of a predictions or submission CSV
against labels, overall and per keypoint."""

from __future__ import annotations

import argparse
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..evaluation.evaluate import (
        baseline_line,
        camera_table,
        evaluate_files,
        keypoint_table,
        short_list,
    )

    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="evaluate.py", description="RMSE of predictions against labels, overall and per keypoint."
    )
    parser.add_argument("--pred", required=True, metavar="FILE",
                        help="predictions or submission CSV (required)")
    parser.add_argument("--truth", required=True, metavar="FILE",
                        help="labels CSV, e.g. train_df.csv or test_labels.csv (required)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out images without a prediction (counted) instead of failing "
                        "(default: off)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="data folder for the mean-pose baseline (its training rows other "
                        "than the evaluated images) and the image sizes (default: the folder of "
                        "--truth)")
    args = parser.parse_args(argv)
    res = evaluate_files(args.pred, args.truth, args.skip_missing, args.data_root)
    print(f"{args.pred} vs {args.truth}: {res['images']} images")
    if res["skipped"]:
        print(f"skipped {len(res['skipped'])} images without prediction: {short_list(res['skipped'])}")
    print(keypoint_table(res))
    print(baseline_line(res["rmse"], res["mean_pose_rmse"])
          + (f" ({res['baseline_note']})" if res["baseline_note"] else ""))
    print("PCK@a: share of images with the keypoint within a x the person's box size (the longer "
          "side of the box around the true keypoints)")
    print(camera_table(res))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
