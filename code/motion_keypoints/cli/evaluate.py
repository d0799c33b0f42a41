"""``python code/evaluate.py --pred FILE --truth FILE``: RMSE of a predictions or submission CSV
against labels, overall and per keypoint."""

from __future__ import annotations

import argparse
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..evaluation.evaluate import evaluate_files, format_table, short_list

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
    args = parser.parse_args(argv)
    res = evaluate_files(args.pred, args.truth, args.skip_missing)
    rows = [(n, v) for n, v in res["per_keypoint"].items()] + [("overall", res["rmse"])]
    print(f"{args.pred} vs {args.truth}: {res['images']} images")
    if res["skipped"]:
        print(f"skipped {len(res['skipped'])} images without prediction: {short_list(res['skipped'])}")
    print(format_table(("keypoint", "RMSE (px)"), rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
