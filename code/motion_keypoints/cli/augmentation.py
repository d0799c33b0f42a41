"""``python code/augmentation.py --data-root DIR --sets NAME[,NAME...]``: render augmentation sets
(``configs/augmentation.yaml``) into ``augmented/<set>/``; see :mod:`motion_keypoints.augment`."""

from __future__ import annotations

import argparse
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..augment.render import build_sets

    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="augmentation.py",
        description="Render augmentation sets (configs/augmentation.yaml) from the training images.",
    )
    parser.add_argument("--data-root", required=True,
                        help="data folder in the competition layout (required)")
    parser.add_argument("--out", default="augmented", metavar="DIR",
                        help="output folder, one sub-folder per set (a folder; never inside the "
                        "data folder; default: %(default)s)")
    parser.add_argument(
        "--sets", required=True, help="comma-separated set names, e.g. demo,reference8 (required)"
    )
    parser.add_argument(
        "--workers", type=int, default=0,
        help="render processes; 0: auto, one per available core (default: %(default)s)"
    )
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first K training images, written as its own set "
                        "<set>-limit<K> (a complete set is never shrunk; default: all images)")
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="augmentation config YAML (default: configs/augmentation.yaml of the "
                        "current folder, else the packaged copy)")
    parser.add_argument("--allow-far-points", action="store_true",
                        help="accept keypoints further than half the image size outside their "
                        "image (default: off: they are errors)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars; errors and the summary still print (default: off)")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(n.strip() for n in args.sets.split(",") if n.strip()))
    if not names:
        parser.error("--sets needs at least one set name, e.g. --sets demo")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0 (0: auto), got {args.workers}")
    build_sets(
        args.data_root,
        args.out,
        names,
        args.workers,
        args.limit,
        args.config_file,
        progress=not args.quiet,
        allow_far_points=args.allow_far_points,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
