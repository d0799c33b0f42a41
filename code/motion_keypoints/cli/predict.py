"""``python code/predict.py --run RUN --data-root DIR [--split test|val] [--flip-tta]``: predict
the test (or validation) images with a trained run (batched, optional flip TTA).

  python code/predict.py --run outputs/tiny-cpu --data-root outputs/synthetic --flip-tta
"""

from __future__ import annotations

import argparse
from typing import Sequence

from ..io.predictions import PREDICTION_SPLITS
from ..io.runs import CHECKPOINTS
from ._run import run_command


def _main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="predict.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="training run folder (outputs/<run>)")
    p.add_argument("--data-root", required=True, help="data folder in the competition layout")
    p.add_argument("--split", choices=PREDICTION_SPLITS, default="test")
    p.add_argument("--checkpoint", choices=sorted(CHECKPOINTS), default="best")
    p.add_argument("--flip-tta", action="store_true", help="average with the mirrored image")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=2, help="data-loading worker processes")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    from ..models.rcnn import import_detectron2

    import_detectron2()
    from ..models.rcnn.predictor import predict_run

    predict_run(
        a.run, a.data_root, a.split, a.checkpoint, a.flip_tta, a.batch_size, a.workers, a.opts
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
