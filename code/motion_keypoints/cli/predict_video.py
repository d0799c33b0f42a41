"""``python code/predict_video.py VIDEO --runs R1 [R2 ...] --out DIR``: keypoints of the main
person in every frame of a video (or a folder of frames), smoothed over time, and an overlay video.

Writes ``DIR/keypoints.csv`` (one row per frame: frame, 0-based (the first frame is 0), time in
seconds (frame / fps), the keypoints in the data
set's column names, keypoint scores, box, detected) and ``DIR/overlay.mp4`` (same frame count,
the skeleton drawn, left and right in different colours). Several runs are averaged on the same
person. Runs of both families are taken: a heatmap run (top-down HRNet) predicts inside the box
of the person followed on the first Keypoint R-CNN run of --runs, so at least one R-CNN run is
needed. Decoding uses OpenCV (see motion_keypoints.io.video).

  python code/predict_video.py exercise.mp4 --runs outputs/R50-reference8 --out outputs/video
  python code/predict_video.py frames/ --fps 25 --runs outputs/tiny-cpu --out outputs/video
  python code/predict_video.py exercise.mp4 --runs outputs/R50-reference8 outputs/hrnet-w32 \
      --out outputs/video
"""

from __future__ import annotations

import argparse
from typing import Sequence

from . import options
from ._run import run_command


def build_parser() -> argparse.ArgumentParser:
    from ..motion import smooth as S
    from ..motion.video import KEYPOINTS_FILE, OVERLAY_FILE, SMOOTH_CHOICES

    p = options.command_parser("predict_video", __doc__, raw=True)
    p.add_argument("video", help="video file (any codec OpenCV decodes) or a folder of frames "
                                 "(images in name order)")
    p.add_argument("--runs", nargs="+", required=True, help="trained run folders (outputs/<run>): Keypoint R-CNN and heatmap runs; "
                        "the first R-CNN run gives the person and the heatmap runs' boxes")
    options.add_out(p, f"output folder: {KEYPOINTS_FILE} and {OVERLAY_FILE}", folder=True,
                    required=True)
    options.add_checkpoint(p, each=True)
    p.add_argument("--no-flip-tta", action="store_true",
                   help="do not average with the mirrored frame (default: flip TTA on)")
    options.add_batch_size(p, "frames")
    options.add_person_rule(p, "--rule", "track", note=" and followed")
    options.add_person_at(p)
    p.add_argument("--smooth", choices=SMOOTH_CHOICES, default=S.DEFAULT_METHOD,
                   help="temporal smoothing, or off (default: %(default)s)")
    p.add_argument("--sigma", type=float, default=S.DEFAULT_PARAMS["gaussian"]["sigma"],
                   help="Gaussian sigma in frames (default: %(default)s)")
    p.add_argument("--max-gap", type=int, default=S.DEFAULT_MAX_GAP,
                   help="frames without a person further apart than this are not smoothed across "
                        "(default: %(default)s)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate: a frames folder's (30 when not given) or to override the "
                        "video's (default: the video's)")
    options.add_quiet(p)
    return p


def _main(argv: Sequence[str]) -> int:
    from ..motion.video import KEYPOINTS_FILE, OVERLAY_FILE

    p = build_parser()
    a = p.parse_args(argv)
    person_at = options.parse_person_at(p, a.person_at, a.person_box)
    if person_at is not None:
        a.rule = "at"

    from ..console import quiet_library_warnings, setup_console
    from ..io.outputs import check_output_dir, check_output_file, output_dir, register_inputs
    from ..io.video import open_frames

    quiet_library_warnings()
    setup_console()
    register_inputs(a.video, *a.runs)
    check_output_dir(a.out, "video predictions")
    for name, kind in ((KEYPOINTS_FILE, "video keypoints"), (OVERLAY_FILE, "video")):
        check_output_file(f"{a.out}/{name}", kind)
    open_frames(a.video, a.fps)  # a bad video fails before any model is loaded
    from ..motion.video import predict_video

    params = {"sigma": a.sigma} if a.smooth == "gaussian" else None
    with output_dir(a.out, "video predictions"):
        predict_video(
            a.video, a.runs, a.out, checkpoint=a.checkpoint, flip_tta=not a.no_flip_tta,
            batch_size=a.batch_size, rule=a.rule, person_at=person_at, smooth=a.smooth,
            smooth_params=params,
            max_gap=a.max_gap, fps=a.fps, progress=not a.quiet,
        )  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
