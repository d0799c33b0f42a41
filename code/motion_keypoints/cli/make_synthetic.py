"""``python code/make_synthetic.py --out DIR --train N --test M``: synthetic motion-keypoint data
in the competition layout (see :mod:`motion_keypoints.data.synthetic`)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..data.synthetic.writer import make_synthetic

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="make_synthetic.py")
    ap.add_argument(
        "--out", required=True, help="output data root (created; must be new or synthetic)"
    )
    ap.add_argument("--train", type=int, default=240, help="training images (default 240)")
    ap.add_argument("--test", type=int, default=60, help="test images (default 60)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cameras-per-clip", type=int, default=2)
    ap.add_argument("--frames-per-camera", type=int, default=3)
    ap.add_argument("--outside-rate", type=float, default=0.03,
                    help="fraction of images with a hand or foot just outside the frame")  # fmt: skip
    ap.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    args = ap.parse_args(argv)
    try:
        make_synthetic(
            args.out, args.train, args.test, args.width, args.height, args.seed, not args.quiet,
            cameras_per_clip=args.cameras_per_clip, frames_per_camera=args.frames_per_camera,
            outside_rate=args.outside_rate,
        )  # fmt: skip
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
