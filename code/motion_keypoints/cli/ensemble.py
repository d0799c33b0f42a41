"""``python code/ensemble.py``: fuse the predictions of several runs (R-CNN and heatmap runs
alike) into a submission (test) or evaluate the fusion on the validation images (val); members
are aligned on the same person first, and the fusion can be smoothed over time in the same go."""

from __future__ import annotations

import argparse
from typing import Sequence

from . import options
from ._run import run_command


def _add_fusion_options(parser: argparse.ArgumentParser) -> None:
    """How the members are fused: method, weights, same-person alignment."""
    from ..ensemble.driver import DEFAULT_MIN_IOU, METHOD_CHOICES, WEIGHT_BY
    from ..ensemble.fuse import ALIGN_REFERENCES

    parser.add_argument("--method", default="auto", choices=METHOD_CHOICES,
                        help="fusion of the members' keypoints; auto = the method and member "
                        "weights (mean, median, robust, weighted by RMSE or per keypoint) with the "
                        "lowest RMSE on the members' validation predictions, printed with the "
                        "RMSE of each (mean when not every run has predictions_val.csv) "
                        "(default: %(default)s)")
    parser.add_argument("--weight-by", default="rmse", choices=WEIGHT_BY,
                        help="weighted: rmse = run_info val_rmse, one weight per member ∝ "
                        "1/rmse²; score = keypoint scores (rescaled per member when families "
                        "are mixed); keypoint = per member and keypoint ∝ 1/rmse_k² of the "
                        "member's predictions_val.csv. A member trained without validation is "
                        "an error for rmse and keypoint, never an equal weight "
                        "(default: %(default)s)")
    parser.add_argument("--k", type=float, default=2.0,
                        help="robust: drop members beyond k·σ (default: %(default)s)")
    parser.add_argument("--no-align", dest="align", action="store_false",
                        help="do not align members on the same person: by default, with three "
                        "or more members, a member whose box overlaps the consensus person box "
                        "by less than --min-iou on an image is left out there, filled from the "
                        "others and counted (default: aligned)")
    parser.add_argument("--min-iou", type=float, default=DEFAULT_MIN_IOU,
                        help="same person: least box IoU with the consensus box "
                        "(default: %(default)s)")
    parser.add_argument("--align-reference", default="median", choices=ALIGN_REFERENCES,
                        help="same person: the consensus box is the coordinate-wise median of "
                        "the members' boxes, or the medoid (the member box that overlaps the "
                        "others most) (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from ..ensemble.driver import SMOOTH_MODES, SWITCH_CHOICES
    from ..io.predictions import PREDICTION_SPLITS
    from ..motion.smooth import DEFAULT_MAX_GAP

    parser = options.command_parser(
        "ensemble", allow_abbrev=False,
        description="Fuse the predictions of several runs of any model family (rcnn, heatmap) "
        "into a submission (test) or evaluate the fusion on the validation images (val).",
    )
    parser.add_argument("--runs", nargs="+", required=True,
                        help="run folders (outputs/<run>) with predictions_<split>.csv (required)")
    options.add_data_root(parser, purpose="the one the members predicted")
    parser.add_argument("--split", default="test", choices=PREDICTION_SPLITS,
                        help="test: write the submission; val: fuse and score the validation "
                        "predictions (default: %(default)s)")
    _add_fusion_options(parser)
    parser.add_argument("--smooth", default=None, choices=SMOOTH_MODES,
                        help="temporal smoothing of the fused predictions (clip/camera/frame "
                        "from the image names; never across gaps or person switches): auto = "
                        "chosen on the members' fused validation predictions and applied only "
                        "if it lowers the validation RMSE (before/after printed); default = the "
                        f"conservative default (only frames at most {DEFAULT_MAX_GAP} apart: "
                        "sparse test frames come out unchanged); off = none (default: auto when "
                        "every run has predictions_val.csv, else off)")
    parser.add_argument("--flip", default="auto", choices=SWITCH_CHOICES,
                        help="flip TTA per member: auto = its predictions with or without flip "
                        "TTA (predictions_<split>_noflip.csv), whichever has the lower RMSE on "
                        "its validation predictions (the choice is printed); on/off = forced "
                        "(default: %(default)s)")
    parser.add_argument("--lr-align", default="auto", choices=SWITCH_CHOICES,
                        help="left/right-consistent fusion: before fusing, a member whose pose is "
                        "clearly closer to the consensus with left and right exchanged is "
                        "exchanged (counted); auto = on only if it lowers the validation RMSE "
                        "(default: %(default)s)")
    parser.add_argument("--no-picture", dest="picture", action="store_false",
                        help="do not write the error picture <out stem>_errors.png next to --out "
                        "(per-keypoint and per-camera RMSE bars of each member, the fusion and "
                        "the mean pose; the worst images with truth and prediction) "
                        "(default: written when labels exist)")
    parser.add_argument("--html", action="store_true",
                        help="also write <out stem>_errors.html, one self-contained page with "
                        "the same picture and numbers (default: off)")
    options.add_out(parser, "output CSV", folder=False,
                    default_text="submissions/submission.csv for test, "
                    "outputs/ensemble/predictions_val.csv for val")
    parser.add_argument("--samples", type=int, default=8,
                        help="images per sample grid, 0: none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the sample images (default: %(default)s)")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from ..ensemble.driver import run_ensemble

    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.min_iou <= 1:
        parser.error(f"--min-iou must be in (0, 1], got {args.min_iou}")
    out = args.out or (
        "submissions/submission.csv" if args.split == "test" else "outputs/ensemble/predictions_val.csv"
    )
    summary = run_ensemble(
        args.runs, args.data_root, args.split, args.method, out,
        weight_by=args.weight_by, k=args.k, align=args.align, min_iou=args.min_iou,
        align_reference=args.align_reference, smooth=args.smooth, flip=args.flip,
        lr_align=args.lr_align, samples=args.samples, picture=args.picture, html=args.html,
        seed=args.seed,
    )
    for line in summary.lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
