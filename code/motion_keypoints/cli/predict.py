"""``python code/predict.py --run RUN --data-root DIR [--split test|val] [--flip-tta]
[--boxes-from RCNN_RUN]``: predict the test (or validation) images with a trained run of either
family (by ``run_info.json`` "family"), batched, optional flip TTA; writes
``RUN/predictions_<split>.csv`` (the file the ensemble reads), or ``RUN/predictions_<split>_<TAG>.csv``
with ``--tag TAG``, or ``--out FILE`` (to compare two person rules or box sources side by side).

  python code/predict.py --run outputs/tiny-cpu --data-root outputs/synthetic --flip-tta
  python code/predict.py --run outputs/tiny-hrnet --data-root outputs/synthetic --flip-tta \\
      --boxes-from outputs/tiny-cpu        # heatmap run on the R-CNN run's person boxes

A heatmap run needs person boxes: ``--boxes-from`` a Keypoint R-CNN run that has predicted the
same split (its predictions_<split>.csv). Images where that run found nobody get a fallback box
around the mean training pose (counted and printed). On the validation split without
``--boxes-from`` the ground-truth boxes are used; with it, the RMSE on both is printed (the
ground-truth one shows the keypoint model on perfect boxes; it is no bound).

``--backend onnxruntime`` runs the run's ONNX export (``python code/export.py --run RUN --format
onnx``; ``--export-dir`` if it was written elsewhere) through the same predictor: only the network
runs in onnxruntime. A missing or stale export (the checkpoint changed since) is one line with
the export command.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Sequence

from ..export.manifest import BACKENDS
from ..io.predictions import PREDICTION_SPLITS
from ..io.runs import CHECKPOINTS, RUN_INFO_FILE, RunError
from . import options
from ._run import run_command


def auto_workers(requested: int) -> int:
    """``--workers 0`` = auto: half the cores, at most 4 (data loading beside the model)."""
    if requested > 0:
        return requested
    return max(0, min(4, (os.cpu_count() or 1) // 2))


def check_run(run: Path, checkpoint: str) -> str:
    """The run's family; one-line errors for a missing folder, run_info.json or checkpoint."""
    if not run.is_dir():
        raise RunError(f"--run {run}: no such run folder; train one with "
                       "python code/train.py --config-file CONFIG OUTPUT_DIR outputs/<run>")
    info_file = run / RUN_INFO_FILE
    if not info_file.is_file():
        raise RunError(
            f"{info_file} is missing: {run} is not a finished training run (training writes it "
            f"at the end); finish it with python code/train.py --config-file {run / 'config.yaml'}"
            f" --resume OUTPUT_DIR {run}"
        )
    try:
        json.loads(info_file.read_text())  # valid JSON, before the checkpoint check
    except json.JSONDecodeError as exc:
        raise RunError(f"{info_file}: not valid JSON ({exc}); re-run the training") from None
    names = [CHECKPOINTS[checkpoint]] + ([CHECKPOINTS["final"]] if checkpoint == "best" else [])
    if not any((run / n).is_file() for n in names):
        raise RunError(f"{run / CHECKPOINTS[checkpoint]} is missing (and no fallback "
                       f"{' / '.join(names[1:]) or 'checkpoint'}): has the training of {run} finished?")
    from ..models.registry import family_of_run

    return family_of_run(run)  # run_info.json "family", checked against the registry


def build_parser() -> argparse.ArgumentParser:
    p = options.command_parser("predict", __doc__, raw=True)
    options.add_run(p)
    options.add_data_root(p, purpose="the images to predict")
    p.add_argument("--split", choices=PREDICTION_SPLITS, default="test",
                   help="images to predict: test, or the run's validation frames "
                        "(default: %(default)s)")
    options.add_checkpoint(p)
    p.add_argument("--flip-tta", action="store_true",
                   help="average with the mirrored image / crop (default: %(default)s)")
    p.add_argument("--boxes-from", default=None, metavar="RCNN_RUN",
                   help="heatmap runs: take each image's person box from this Keypoint R-CNN "
                        "run's predictions_<split>.csv (default: %(default)s: ground-truth boxes "
                        "on --split val, required on test)")
    options.add_person_rule(
        p, "--person-rule", "score",
        note=" (Keypoint R-CNN runs; clips and cameras from the names "
             "<clip>_<camera>-<frame>.jpg, other names by score)")
    options.add_batch_size(p, "images (R-CNN) or crops (heatmap, x4)")
    options.add_workers(p, "data-loading worker processes", "from the core count")
    options.add_quiet(p)
    p.add_argument("--backend", choices=BACKENDS, default="torch",
                   help="torch = the run's checkpoint; onnxruntime = its ONNX export (python "
                        "code/export.py --run RUN --format onnx) (default: %(default)s)")
    p.add_argument("--export-dir", default=None, metavar="DIR",
                   help="--backend onnxruntime: the export folder (default: RUN/export)")
    where = p.add_mutually_exclusive_group()
    options.add_out(where, "write the predictions CSV here instead of RUN/predictions_<split>.csv",
                    folder=False)
    where.add_argument("--tag", default=None, metavar="NAME",
                       help="write RUN/predictions_<split>_<NAME>.csv beside the default one "
                            "(default: %(default)s)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p


def _check_args(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Usage errors (exit 2) that argparse cannot say by itself."""
    if a.tag is not None and not a.tag.replace("-", "").replace("_", "").isalnum():
        p.error(f"--tag {a.tag!r}: use letters, digits, - and _ only")
    if a.out is not None and Path(a.out).suffix.lower() != ".csv":
        p.error(f"--out {a.out}: give a .csv file name")
    if a.backend != "onnxruntime" and a.export_dir is not None:
        p.error("--export-dir is for --backend onnxruntime")


def _main(argv: Sequence[str]) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    _check_args(p, a)
    run = Path(a.run)
    family = check_run(run, a.checkpoint)
    from ..io.outputs import check_output_file
    from ..io.predictions import prediction_paths

    for path in prediction_paths(run, a.split, a.out, a.tag)[: 2 if a.flip_tta else 1]:
        check_output_file(path, "predictions", "--run" if a.out is None else "--out")  # first
    from ..models.rcnn import import_detectron2

    import_detectron2()
    workers = auto_workers(a.workers)
    load_model = None
    if a.backend == "onnxruntime":  # the run's current export, or one line naming the command
        from ..export.manifest import check_export
        from ..export.runtime import OnnxLoader

        load_model = OnnxLoader(check_export(run, a.export_dir, a.checkpoint, a.opts))
    if family == "heatmap":
        if a.person_rule != "score":
            raise RunError(f"--person-rule is for Keypoint R-CNN runs; {run} is a heatmap run: "
                           "predict the --boxes-from run with --person-rule instead")
        from ..models.heatmap.predictor import predict_run

        summary = predict_run(
            run, a.data_root, a.split, a.checkpoint, a.flip_tta, a.batch_size * 4, workers,
            boxes_from=a.boxes_from, opts=a.opts, progress=not a.quiet, out=a.out, tag=a.tag,
            load_model=load_model,
        )
        return _val_report(summary, a.split, a.data_root)
    if a.boxes_from is not None:
        raise RunError(f"--boxes-from is for heatmap runs; {run} is a Keypoint R-CNN run "
                       "(it finds its own boxes): drop --boxes-from")
    from ..models.rcnn.predictor import predict_run

    summary = predict_run(
        run, a.data_root, a.split, a.checkpoint, a.flip_tta, a.batch_size, workers, a.opts,
        progress=not a.quiet, person_rule=a.person_rule, out=a.out, tag=a.tag,
        load_model=load_model,
    )
    return _val_report(summary, a.split, a.data_root)


def _val_report(summary: dict, split: str, data_root) -> int:
    """On the validation split, the predictions scored beside the mean pose on the same images
    (PCK per keypoint, RMSE per camera): :func:`..evaluation.evaluate.validation_report`."""
    if split == "val":
        from ..evaluation.evaluate import validation_report

        out = Path(summary["out"])
        for line in validation_report(out, data_root, out.with_name(f"{out.stem}_errors.png")):
            print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
