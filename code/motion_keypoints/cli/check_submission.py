"""``python code/check_submission.py --data-root DIR FILE``: validate a submission file against
the data's sample_submission.csv, naming each problem (exit 1 when invalid)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_submission.py",
        description="Validate a submission file against the data's sample_submission.csv.",
    )
    parser.add_argument("file", help="submission CSV to check")
    parser.add_argument("--data-root", required=True, help="data folder with sample_submission.csv")
    parser.add_argument(
        "--max-problems", type=int, default=50, help="list at most this many problems (0: all)"
    )
    args = parser.parse_args(argv)
    from ..data.layout import DataPaths
    from ..io.problems import DataError
    from ..submission import check_submission, sample_layout

    sample = DataPaths.from_root(args.data_root).sample_submission
    try:
        problems = check_submission(args.file, sample)
    except DataError as exc:
        print(f"error: cannot check against {sample}:\n{exc}", file=sys.stderr)
        return 1
    if not problems:
        _, images = sample_layout(sample)
        print(f"OK: {args.file}: {len(images)} images in the columns and row order of {sample}")
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
