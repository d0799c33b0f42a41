"""``python code/check_data.py --data-root DIR [--audit]``: check a data root before training.

Exit status 0 when the data is usable, 1 with one line per problem (file, line, column)
otherwise. The logic is :func:`motion_keypoints.data.check.check_data`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..io.images import IMAGE_CHECK_LEVELS
from . import options
from ._run import run_command


def build_parser() -> argparse.ArgumentParser:
    parser = options.command_parser(
        "check_data", allow_abbrev=False,
        description="Validate a data root (CSVs, image files, keypoints) and print a summary. "
                    "Exit status 0 when the data is usable, 1 with one line per problem otherwise.")
    options.add_data_root(parser, purpose="the folder to check")
    parser.add_argument("--check-images", choices=IMAGE_CHECK_LEVELS, default="decode",
                        help="exists: files present; header: sizes read, truncated JPEGs caught; "
                             "decode: every image decoded, also catching corrupt data "
                             "(default: %(default)s)")
    options.add_max_problems(parser)
    options.add_allow_far_points(parser)
    parser.add_argument("--audit", action="store_true",
                        help="also audit the training labels: rank suspicious annotations "
                             "(left/right swaps, bones far too long, isolated points), write "
                             "audit.csv, suggested_overrides.csv and a picture per flagged image "
                             "(findings are warnings: the exit status stays 0; default: off)")
    parser.add_argument("--audit-out", default="outputs/audit",
                        help="folder for the audit's outputs (a folder; default: %(default)s)")
    parser.add_argument("--audit-top", type=int, default=20,
                        help="findings printed (all are in audit.csv; default: %(default)s)")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from ..data.check import check_data

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.audit_top < 0:
        parser.error(f"--audit-top must be >= 0, got {args.audit_top}")
    if args.max_problems < 0:
        parser.error(f"--max-problems must be >= 0 (0: all), got {args.max_problems}")
    result = check_data(args.data_root, args.check_images, args.max_problems, args.audit,
                        args.audit_out, args.audit_top, allow_far_points=args.allow_far_points)
    for line in result.err:
        print(line, file=sys.stderr)
    for line in result.out:
        print(line)
    return result.code


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
