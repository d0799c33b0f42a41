"""``python code/train.py --config-file CONFIG [options] [KEY VALUE ...]``: train one model of the
ensemble (either family: Keypoint R-CNN or top-down heatmap, by the config's
MODEL.META_ARCHITECTURE).

  python code/train.py --config-file configs/tiny-cpu.yaml DATA.ROOT outputs/synthetic
  python code/train.py --config-file configs/R50-reference8.yaml --num-gpus 2 DATA.ROOT DATA
  python code/train.py --config-file ... --resume          # continue from the last checkpoint
  python code/train.py --config-file ... --eval-only       # validate model_best.pth
  python code/train.py --config-file ... --clear           # delete OUTPUT_DIR's run, train anew

One process per run folder: training, ``--resume``, ``--clear`` and ``--eval-only`` hold a lock
on OUTPUT_DIR (:class:`motion_keypoints.io.lock.RunLock`); a second process is refused with the
holder's PID. Before anything is written, the data folder, the augmentation set (its
annotations.csv against the hash its manifest recorded), the weights and the run folder are
checked (a run folder holds one run: ``run.json``). The console shows a progress bar and a
line per evaluation; detectron2's complete log goes to ``OUTPUT_DIR/log.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Sequence

from ..console import quiet_library_warnings

# Before detectron2 or fvcore are imported anywhere in this process (fvcore warns at import).
quiet_library_warnings()

from . import options  # noqa: E402
from ._run import run_command  # noqa: E402

EPILOG = """\
KEY VALUE pairs override config keys, e.g.:
  DATA.ROOT DATA            data folder in the competition layout (required)
  OUTPUT_DIR outputs/r50    run folder (default: outputs/<config name>)
  DATA.AUG_SET demo         train on an augmentation set (python code/augmentation.py)
  DATA.VAL_FRACTION 0       train without validation (model_final.pth is the model)
  SOLVER.MAX_ITER 400       iterations; TEST.EVAL_PERIOD 0 validates only at the end

A run folder holds one run: another config, other data or another augmentation set into the same
OUTPUT_DIR is refused (use --resume for the same run, a new OUTPUT_DIR, or --clear).
"""


def _default_port() -> int:
    # detectron2's default_argument_parser: a port per user, so two users on a machine differ.
    return 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14


def build_parser() -> argparse.ArgumentParser:
    """The options of detectron2's ``default_argument_parser`` described for this kit, plus
    ``--clear``."""
    p = options.command_parser(
        "train",
        description="Train one keypoint model of the ensemble on a data folder (Keypoint R-CNN\n"
        "or heatmap, by the config). Writes the run folder OUTPUT_DIR: checkpoints,\n"
        "model_best.pth, run.json, run_info.json and log.txt (detectron2's complete log).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="the run's config (a YAML file under configs/) (default: %(default)r)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in OUTPUT_DIR from its last checkpoint; it must be the "
                   "same run (config, data, augmentation set) (default: %(default)s)")
    p.add_argument("--eval-only", action="store_true",
                   help="only validate the run's trained model: model_best.pth, else "
                   "model_final.pth (with --resume its last checkpoint), else MODEL.WEIGHTS when "
                   "it is a checkpoint of a kit training; refused without one "
                   "(default: %(default)s)")
    p.add_argument("--clear", action="store_true",
                   help="delete everything in OUTPUT_DIR (another run's checkpoints too) and train "
                   "anew (default: %(default)s)")
    p.add_argument("--num-gpus", type=int, default=1,
                   help="processes per machine: one per GPU, or CPU processes (gloo) with "
                   "MODEL.DEVICE cpu (default: %(default)s)")
    p.add_argument("--num-machines", type=int, default=1,
                   help="machines of a multi-machine run (default: %(default)s)")
    p.add_argument("--machine-rank", type=int, default=0,
                   help="this machine's rank, 0 to num-machines - 1 (default: %(default)s)")
    p.add_argument("--dist-url", default=f"tcp://127.0.0.1:{_default_port()}",
                   help="address of the rank-0 machine for multi-machine runs "
                   "(default: %(default)s)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="config overrides, pairs of KEY VALUE (see below) (default: none)")
    return p


def _setup(args):
    from ..engine.config import setup_cfg

    # require_device: training on a device that is not there is an error, not a CPU fallback
    return setup_cfg(args.config_file, args.opts, freeze=True, require_device=True)


def _worker(args, record):
    from ..engine.run import start_run
    from ..models.registry import train_family

    cfg = _setup(args)
    start_run(cfg, args, record)
    return train_family(cfg, resume=args.resume, eval_only=args.eval_only)


def _main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.resume and args.clear:
        build_parser().error("--resume and --clear exclude each other")
    from ..console import setup_console

    setup_console()
    from ..models.rcnn import import_detectron2

    import_detectron2()
    from detectron2.engine import launch

    from ..engine.distributed import launch_backend, requested_device
    from ..engine.run import prepare_run
    from ..io.lock import RunLock

    # Everything is checked before anything is written into OUTPUT_DIR.
    backend = launch_backend(requested_device(args.config_file, args.opts), args.num_gpus,
                             args.num_machines)
    cfg = _setup(args)
    # One process per run folder: locked before the folder is judged, written or removed, and
    # held by this (launching) process until the run and all its workers end.
    from ..io.outputs import check_run_place

    aug = cfg.DATA.AUG_SET and Path(cfg.DATA.AUGMENTED_DIR) / cfg.DATA.AUG_SET
    check_run_place(cfg.OUTPUT_DIR, cfg.DATA.ROOT, [aug] if aug else [])  # data never a run
    # Multi-machine: machine 0 (global rank 0) holds, checks and writes the run folder; the
    # other machines' processes write only their log.txt.rank<N> (the folder may be shared).
    writer = args.machine_rank == 0
    with RunLock(cfg.OUTPUT_DIR) if writer else contextlib.nullcontext():
        record = (prepare_run(cfg, resume=args.resume, eval_only=args.eval_only, clear=args.clear)
                  if writer else None)
        launch(
            _worker,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args, record),
            backend=backend,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
