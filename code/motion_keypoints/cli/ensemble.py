"""``python code/ensemble.py``: fuse the predictions of several runs into a submission (test) or
evaluate the fusion on the validation images (val)."""

from __future__ import annotations

import argparse
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..ensemble.driver import WEIGHT_BY, run_ensemble
    from ..ensemble.fuse import METHODS
    from ..io.predictions import PREDICTION_SPLITS

    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="ensemble.py",
        description="Fuse the predictions of several runs into a submission (test) or evaluate "
        "the fusion on the validation images (val).",
    )
    parser.add_argument("--runs", nargs="+", required=True,
                        help="run folders (outputs/<run>) with predictions_<split>.csv (required)")
    parser.add_argument("--data-root", required=True,
                        help="data folder of the predictions (required)")
    parser.add_argument("--split", default="test", choices=PREDICTION_SPLITS,
                        help="test: write the submission; val: fuse and score the validation "
                        "predictions (default: %(default)s)")
    parser.add_argument("--method", default="mean", choices=METHODS,
                        help="fusion of the members' keypoints (default: %(default)s)")
    parser.add_argument("--weight-by", default="rmse", choices=WEIGHT_BY,
                        help="weighted: run_info val_rmse (weights ∝ 1/rmse²) or keypoint scores "
                        "(default: %(default)s)")
    parser.add_argument("--k", type=float, default=2.0,
                        help="robust: drop members beyond k·σ (default: %(default)s)")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="output CSV (a file; default: submissions/submission.csv for test, "
                        "outputs/ensemble/predictions_val.csv for val); never an input")
    parser.add_argument("--samples", type=int, default=8,
                        help="images per sample grid, 0: none (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the sample images (default: %(default)s)")
    args = parser.parse_args(argv)
    out = args.out or (
        "submissions/submission.csv" if args.split == "test" else "outputs/ensemble/predictions_val.csv"
    )
    run_ensemble(
        args.runs, args.data_root, args.split, args.method, out,
        weight_by=args.weight_by, k=args.k, samples=args.samples, seed=args.seed,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
