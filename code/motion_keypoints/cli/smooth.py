"""``python code/smooth.py --pred FILE --out FILE``: temporal smoothing of a predictions or
submission CSV, within runs of nearby frames of the same clip and camera.

With ``--tune-pred VAL_PREDICTIONS --truth LABELS`` the smoothing is chosen on validation clips
(whole clips: the split keeps them together) and applied only if it lowers the validation RMSE;
the report shows before and after. Without validation data the conservative default smooths only
frames at most ``--max-gap`` apart, so a sparse sequence comes out unchanged.
"""

from __future__ import annotations

import json
from typing import Sequence

from . import options
from ._run import run_command


def _read_table(path: str):
    import pandas as pd

    from ..io.tables import read_numeric_csv
    from ..meta import COORD_COLUMNS

    read_numeric_csv(path, COORD_COLUMNS)  # one clear line per bad cell before pandas reads it
    return pd.read_csv(path, dtype={"image": str}, keep_default_na=True)


def _main(argv: Sequence[str] | None) -> int:
    from ..io.outputs import check_output_file, register_inputs, resolve
    from ..motion import smooth as S
    from ..utils import atomic_path

    parser = options.command_parser("smooth", __doc__, raw=True, allow_abbrev=False)
    parser.add_argument("--pred", required=True, metavar="FILE",
                        help="predictions or submission CSV to smooth (required)")
    options.add_out(parser, "smoothed CSV to write", folder=False, required=True)
    parser.add_argument("--method", choices=S.METHODS, default=S.DEFAULT_METHOD,
                        help="smoother when not tuned (default: %(default)s)")
    parser.add_argument("--sigma", type=float, default=S.DEFAULT_PARAMS["gaussian"]["sigma"],
                        help="--method gaussian: sigma in frames (default: %(default)s)")
    parser.add_argument("--degree", type=int, choices=(0, 1, 2),
                        default=S.DEFAULT_PARAMS["gaussian"]["degree"],
                        help="--method gaussian: local polynomial degree; 0 is a locally constant "
                             "mean, which lags moving points (default: %(default)s)")
    parser.add_argument("--max-gap", type=int, default=S.DEFAULT_MAX_GAP,
                        help="frames further apart are never smoothed together (default: %(default)s)")
    parser.add_argument("--tune-pred", default=None,
                        help="validation predictions CSV to choose the smoothing on (default: none)")
    parser.add_argument("--truth", default=None,
                        help="labels of --tune-pred's images, e.g. DATA/train_df.csv (default: none)")
    parser.add_argument("--report", default=None,
                        help="write the tuning report as JSON to this file (default: none)")
    args = parser.parse_args(argv)
    if bool(args.tune_pred) != bool(args.truth):
        parser.error("--tune-pred and --truth go together")
    if args.max_gap < 0:
        parser.error(f"--max-gap must be >= 0, got {args.max_gap}")
    if args.sigma <= 0:
        parser.error(f"--sigma must be > 0, got {args.sigma}")
    # before any work: no output is an input, and each can be written
    register_inputs(args.pred, args.tune_pred, args.truth)
    check_output_file(args.out, "smoothed predictions")
    if args.report:
        if resolve(args.report) == resolve(args.out):
            parser.error("--report and --out name the same file; give two files")
        check_output_file(args.report, "smoothing report", option="--report")

    df = _read_table(args.pred)
    if args.tune_pred:
        val_pred, truth = _read_table(args.tune_pred), _read_table(args.truth)
        chosen, report = S.choose_params(val_pred, truth)
        print(f"validation ({report['images']} images): RMSE {report['before']:.3f} px unsmoothed")
        for c in report["candidates"]:
            print(f"  {c['candidate']:<60} {c['after']:.3f} px")
        if chosen == S.OFF:
            print("no smoothing lowers the validation RMSE: smoothing is off")
            out = df
        else:
            print(f"chosen: {report['chosen']} ({report['before']:.3f} -> {report['after']:.3f} px)")
            method, params, max_gap, switch_k = S.parse_candidate(chosen)
            out = S.smooth_table(df, method, params, max_gap, switch_k)
        if args.report:
            from ..utils import atomic_write_text

            atomic_write_text(args.report, json.dumps(report, indent=1, default=str),
                              kind="smoothing report", option="--report")
    else:
        params = {"sigma": args.sigma, "degree": args.degree} if args.method == "gaussian" else None
        out = S.smooth_table(df, args.method, params, args.max_gap)
    with atomic_path(args.out, kind="smoothed predictions") as tmp:
        out.to_csv(tmp, index=False, float_format="%.3f")
    rep = out.attrs.get("smoothing")
    if rep:
        print(S.describe(rep))
    print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
