"""``python code/check_submission.py --data-root DIR FILE``: validate a submission file against
the data's sample_submission.csv, naming each problem (exit 1 when invalid)."""

from __future__ import annotations

import sys
from typing import Sequence

from . import options
from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    parser = options.command_parser(
        "check_submission", allow_abbrev=False,
        description="Validate a submission file against the data's sample_submission.csv.",
    )
    parser.add_argument("file", help="submission CSV to check")
    options.add_data_root(parser, purpose="its sample_submission.csv and images/test_imgs")
    options.add_max_problems(parser)
    args = parser.parse_args(argv)
    if args.max_problems < 0:
        parser.error(f"--max-problems must be >= 0 (0: all), got {args.max_problems}")
    from ..data.layout import DataPaths
    from ..io.problems import DataError, format_problems
    from ..submission import check_submission, sample_layout

    paths = DataPaths.from_root(args.data_root)
    sample = paths.sample_submission
    warnings: list = []
    try:
        problems = check_submission(args.file, sample, warnings, paths.test_images)
    except DataError as exc:
        print(f"error: cannot check against {sample}:\n{exc}", file=sys.stderr)
        return 1
    for line in format_problems(warnings, args.max_problems):
        print(f"warning: {line}", file=sys.stderr)
    if not problems:
        _, images = sample_layout(sample)
        print(f"OK: {args.file}: {len(images)} images in the columns and row order of {sample}"
              + (f" ({len(warnings)} warning(s))" if warnings else ""))
        return 0
    shown = problems if args.max_problems <= 0 else problems[: args.max_problems]
    for p in shown:
        print(p)
    if len(shown) < len(problems):
        print(f"... {len(problems) - len(shown)} more (--max-problems 0 lists all)")
    print(f"INVALID: {args.file}: {len(problems)} problem(s)")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
