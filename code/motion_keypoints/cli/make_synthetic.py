"""``python code/make_synthetic.py --out DIR --train N --test M``: synthetic motion-keypoint data
in the competition layout (see :mod:`motion_keypoints.data.synthetic`).

  python code/make_synthetic.py --out outputs/synthetic --train 240 --test 60
  # a temporally dense test clip (consecutive frames) with a bystander, and its MP4
  python code/make_synthetic.py --out outputs/dense --train 120 --test 90 --cameras-per-clip 1 \\
      --frames-per-camera 90 --frame-step 1 --distractor 1 --video outputs/dense_clip.mp4
"""

from __future__ import annotations

from typing import Sequence

from . import options
from ._run import run_command


def _main(argv: Sequence[str] | None) -> int:
    from ..data.synthetic.writer import make_synthetic, video_labels_path
    from ..errors import UserError
    from ..io.outputs import check_output_dir, check_output_file, resolve

    ap = options.command_parser("make_synthetic", __doc__, raw=True)
    options.add_out(ap, "data root to write", folder=True, required=True,
                    help_suffix="; created; must be new or synthetic")
    ap.add_argument("--train", type=int, default=240, help="training images (default: %(default)s)")
    ap.add_argument("--test", type=int, default=60, help="test images (default: %(default)s)")
    ap.add_argument("--width", type=int, default=1920, help="image width (default: %(default)s)")
    ap.add_argument("--height", type=int, default=1080, help="image height (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ap.add_argument("--cameras-per-clip", type=int, default=2,
                    help="cameras that see each clip (default: %(default)s)")
    ap.add_argument("--frames-per-camera", type=int, default=3,
                    help="frames of a clip per camera (default: %(default)s)")
    ap.add_argument("--outside-rate", type=float, default=0.03,
                    help="fraction of images with a hand or foot just outside the frame; not used "
                         "for dense clips (default: %(default)s)")
    ap.add_argument("--frame-step", type=int, default=0,
                    help="frame-number step within a clip: 1 = dense, consecutive frames with "
                         "smooth motion like a video; 0 = competition-like sparse clips, a random "
                         "step of 2-11 frames (default: %(default)s)")
    ap.add_argument("--distractor", type=float, default=0.0,
                    help="fraction of clip cameras that also show a smaller, unlabelled person "
                         "(its keypoints go to distractor_labels.csv) (default: %(default)s)")
    ap.add_argument("--video", default=None,
                    help="also write an MP4 of the first test clip's first camera (a file, e.g. "
                         "clip.mp4; its true keypoints go to clip.csv next to it) "
                         "(default: %(default)s)")
    ap.add_argument("--fps", type=float, default=30.0,
                    help="frame rate of --video (default: %(default)s)")
    options.add_quiet(ap, summary=False)
    args = ap.parse_args(argv)
    check_output_dir(args.out, "synthetic data")
    if args.video:
        if resolve(args.out) in resolve(args.video).parents:
            raise UserError(f"--video {args.video} lies in --out {args.out}, the data folder: "
                            "write the video beside it")
        check_output_file(args.video, "video", option="--video")
        check_output_file(video_labels_path(args.video), "video labels", option="--video")
    try:
        make_synthetic(
            args.out, args.train, args.test, args.width, args.height, args.seed, not args.quiet,
            cameras_per_clip=args.cameras_per_clip, frames_per_camera=args.frames_per_camera,
            outside_rate=args.outside_rate, frame_step=args.frame_step,
            distractor=args.distractor, video=args.video, fps=args.fps,
        )  # fmt: skip
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(str(exc)) from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
