"""``python code/evaluate.py --pred FILE --truth FILE``: RMSE of a predictions or submission CSV
against labels, overall and per keypoint."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from . import options
from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..evaluation.evaluate import (
        baseline_line,
        camera_table,
        error_picture,
        evaluate_files,
        keypoint_table,
        short_list,
    )

    parser = options.command_parser(
        "evaluate", allow_abbrev=False, description="RMSE of predictions against labels, overall and per keypoint."
    )
    parser.add_argument("--pred", required=True, metavar="FILE",
                        help="predictions or submission CSV (required)")
    parser.add_argument("--truth", required=True, metavar="FILE",
                        help="labels CSV, e.g. train_df.csv or test_labels.csv (required)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out images without a prediction (counted) instead of failing "
                        "(default: off)")
    options.add_data_root(parser, required=False,
                          purpose="the mean-pose baseline (its training rows other than the "
                          "evaluated images) and the image sizes",
                          default_text="the folder of --truth")
    parser.add_argument("--picture", default=None, metavar="FILE",
                        help="error picture (PNG): per-keypoint and per-camera RMSE bars of the "
                        "predictions and the mean pose, the worst images with truth and "
                        "prediction drawn (default: <pred stem>_evaluate_errors.png next to --pred; the ensemble writes <out stem>_errors.png)")
    parser.add_argument("--no-picture", dest="no_picture", action="store_true",
                        help="write no picture (default: written)")
    parser.add_argument("--html", action="store_true",
                        help="also write the same content as one self-contained HTML page next "
                        "to the picture (<picture stem>.html) (default: off)")
    args = parser.parse_args(argv)
    picture = None if args.no_picture else Path(args.picture) if args.picture else (
        Path(args.pred).with_name(f"{Path(args.pred).stem}_evaluate_errors.png"))
    if picture is not None:
        from ..io.outputs import check_output_file, register_inputs

        register_inputs(args.pred, args.truth)
        check_output_file(picture, "picture", "--picture")
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
    if picture is not None:
        written = error_picture(res, args.pred, picture, args.html, args.data_root or
                                Path(args.truth).parent)
        print("error picture: " + ", ".join(str(p) for p in written))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
