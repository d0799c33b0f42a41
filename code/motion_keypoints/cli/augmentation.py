"""``python code/augmentation.py --data-root DIR --sets NAME[,NAME...]``: render augmentation sets
(``configs/augmentation.yaml``) into ``augmented/<set>/``; see :mod:`motion_keypoints.augment`."""

from __future__ import annotations

import argparse
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..augment.render import build_sets

    parser = argparse.ArgumentParser(
        prog="augmentation.py",
        description="Render augmentation sets (configs/augmentation.yaml) from the training images.",
    )
    parser.add_argument("--data-root", required=True, help="data folder in the competition layout")
    parser.add_argument("--out", default="augmented", help="output folder (one sub-folder per set)")
    parser.add_argument(
        "--sets", required=True, help="comma-separated set names, e.g. demo,reference8"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: all cores)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first K training images")
    parser.add_argument("--config", default=None,
                        help="augmentation config YAML (default: configs/augmentation.yaml of the "
                        "current folder, else the packaged copy)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(n.strip() for n in args.sets.split(",") if n.strip()))
    if not names:
        parser.error("--sets needs at least one set name, e.g. --sets demo")
    build_sets(
        args.data_root,
        args.out,
        names,
        args.workers,
        args.limit,
        args.config,
        progress=not args.no_progress,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
