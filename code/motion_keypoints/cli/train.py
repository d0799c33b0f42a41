"""``python code/train.py --config-file CONFIG [--resume] [--eval-only] [KEY VALUE ...]``: train
one Keypoint R-CNN of the ensemble (detectron2's ``train_net.py`` for this kit).

  python code/train.py --config-file configs/tiny-cpu.yaml DATA.ROOT outputs/synthetic
  python code/train.py --config-file configs/R50-reference8.yaml --num-gpus 2 DATA.ROOT DATA
  python code/train.py --config-file ... --resume          # continue from the last checkpoint
  python code/train.py --config-file ... --eval-only       # validate model_best.pth

Multi-machine: --num-machines M --machine-rank R --dist-url tcp://HOST:PORT (detectron2's launcher).
"""

from __future__ import annotations

from typing import Sequence

from ._run import run_command


def _worker(args):
    from ..engine.run import setup_run
    from ..models.rcnn.config import setup_cfg
    from ..models.rcnn.trainer import train

    cfg = setup_cfg(args.config_file, args.opts, freeze=True)
    setup_run(cfg, args)
    return train(cfg, resume=args.resume, eval_only=args.eval_only)


def _main(argv: Sequence[str]) -> int:
    from ..models.rcnn import import_detectron2

    import_detectron2()
    from detectron2.engine import default_argument_parser, launch

    args = default_argument_parser().parse_args(argv)
    launch(
        _worker,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
