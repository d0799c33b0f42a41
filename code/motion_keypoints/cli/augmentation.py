"""``python code/augmentation.py --data-root DIR --sets NAME[,NAME...]``: render augmentation sets
(``configs/augmentation.yaml``) into ``augmented/<set>/``; see :mod:`motion_keypoints.augment`."""

from __future__ import annotations

from typing import Sequence

from . import options
from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..augment.render import build_sets

    parser = options.command_parser(
        "augmentation", allow_abbrev=False,
        description="Render augmentation sets (configs/augmentation.yaml) from the training images.",
    )
    options.add_data_root(parser, purpose="its training images are augmented")
    options.add_out(parser, "output folder, one sub-folder per set", folder=True,
                    default="augmented", help_suffix="; never inside the data folder")
    parser.add_argument(
        "--sets", required=True, help="comma-separated set names, e.g. demo,reference8 (required)"
    )
    options.add_workers(parser, "render processes", "one per available core")
    parser.add_argument("--limit", type=int, default=None,
                        help="only the first K training images, written as its own set "
                        "<set>-limit<K> (a complete set is never shrunk; default: all images)")
    parser.add_argument("--config-file", default=None, metavar="FILE",
                        help="augmentation config YAML (default: configs/augmentation.yaml of the "
                        "current folder, else the packaged copy)")
    options.add_allow_far_points(parser)
    options.add_quiet(parser)
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
        args.config_file,
        progress=not args.quiet,
        allow_far_points=args.allow_far_points,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
