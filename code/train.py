#!/usr/bin/env python
"""Train one Keypoint R-CNN of the ensemble (detectron2's train_net.py for this kit).

  python code/train.py --config-file configs/tiny-cpu.yaml DATA.ROOT outputs/synthetic
  python code/train.py --config-file configs/R50-rotate_crop.yaml --num-gpus 2 DATA.ROOT DATA
  python code/train.py --config-file ... --resume          # continue from the last checkpoint
  python code/train.py --config-file ... --eval-only       # validate model_best.pth

Multi-machine: --num-machines M --machine-rank R --dist-url tcp://HOST:PORT (detectron2's launcher).
"""

import motion_keypoints.compat  # noqa: F401

import sys

from detectron2.engine import default_argument_parser, default_setup, launch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from motion_keypoints.config import ConfigError, setup_cfg
from motion_keypoints.data import DataError
from motion_keypoints.trainer import SetupError, train

#: Errors with a message that says what to do: printed without a traceback.
USER_ERRORS = (ConfigError, DataError, SetupError, FloatingPointError, FileNotFoundError)


def setup(args):
    cfg = setup_cfg(args.config_file, args.opts, freeze=True)
    default_setup(cfg, args)  # logging, seeds, config.yaml in OUTPUT_DIR
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="motion_keypoints")
    return cfg


def main(args):
    cfg = setup(args)
    return train(cfg, resume=args.resume, eval_only=args.eval_only)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
