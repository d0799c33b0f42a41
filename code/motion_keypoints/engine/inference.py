"""The inference skeleton both families share: load a trained run's config
(:func:`load_run_config`), list a split's images (:func:`images_of_split`), and the predictions
files of a run, plain and flip, through ONE :func:`predictions_file`: where they go, the run's
files registered as inputs, both outputs checked before any work, and :meth:`PredictionFiles.write`
(the plain-model ``_noflip.csv`` beside a flip-TTA CSV; a stale one removed without flip TTA)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..data.layout import DataPaths, validate_data_root
from ..io.outputs import check_output_file, register_inputs, remove_output
from ..io.predictions import (
    PREDICTION_SPLITS,
    prediction_frame,
    prediction_paths,
    write_predictions,
)
from ..io.runs import CHECKPOINTS, RUN_INFO_FILE, SPLIT_FILE, RunError, split_val_images
from ..io.tables import read_keypoint_csv
from .checkpoint import check_checkpoint_run
from .config import setup_cfg

logger = logging.getLogger("motion_keypoints")

__all__ = ["PredictionFiles", "check_prediction_data", "images_of_split", "load_run_config",
           "predictions_file"]


def check_prediction_data(data_root) -> None:
    """The data folder a run predicts on (labels were judged at training; not re-judged)."""
    validate_data_root(data_root, check_images=False, splits=("train", "test"),
                       allow_far_points=True)


@dataclass(frozen=True)
class PredictionFiles:
    """Where one prediction writes: ``out`` (the CSV the ensemble reads), ``noflip`` (the plain
    model's CSV beside it under flip TTA), the option that named them, and whether flip TTA runs."""

    out: Path
    noflip: Path
    option: str
    flip: bool

    def write(self, names: Sequence[str], plain: Sequence, flipped: Optional[Sequence],
              sizes: Sequence) -> None:
        """Write the predictions: with flip TTA the plain model's to ``noflip`` and the flip
        ones to ``out``; without, the plain ones to ``out`` and a stale ``noflip`` of an earlier
        prediction with flip TTA removed."""
        if self.flip:
            write_predictions(prediction_frame(names, plain, sizes), self.noflip, self.option)
        else:
            remove_output(self.noflip)  # a stale one of an earlier run with flip TTA
        final = flipped if self.flip else plain
        write_predictions(prediction_frame(names, final, sizes), self.out, self.option)


def predictions_file(run, split: str, out=None, tag: Optional[str] = None, flip: bool = False,
                     data_root=None) -> PredictionFiles:
    """The predictions files of ``run`` on ``split`` (``out``, else
    ``<run>/predictions_<split>[_<tag>].csv``; ``_noflip.csv`` beside it): the run's files (and
    ``data_root``) registered as inputs, then every file this prediction writes checked by the
    output policy before any work."""
    run = Path(run)
    option = "--run" if out is None else "--out"
    path, noflip = prediction_paths(run, split, out, tag)
    register_inputs(*([data_root] if data_root is not None else []),
                    *(run / n for n in (RUN_INFO_FILE, "config.yaml", *CHECKPOINTS.values())))
    for p in (path, noflip) if flip else (path,):  # before any work
        check_output_file(p, "predictions", option)
    return PredictionFiles(path, noflip, option, flip)


def load_run_config(run: Path, checkpoint: str = "best", opts: Sequence[str] = ()):
    """Config and weights file of a trained run folder.

    A user's mistake is a one-line :class:`motion_keypoints.io.runs.RunError` naming the file
    and what to do: no such folder, no ``config.yaml`` or ``run_info.json`` (not a finished
    run), an unknown checkpoint name, a missing checkpoint file, a checkpoint that belongs to
    another run (:func:`motion_keypoints.engine.checkpoint.check_checkpoint_run`; one that
    records no run is used with a warning). ``best`` without ``model_best.pth`` (a run without
    validation) uses ``model_final.pth`` with a warning."""
    run = Path(run)
    train = f"python code/train.py --config-file CONFIG OUTPUT_DIR {run}"
    if not run.is_dir():
        what = "is a file, not a run folder" if run.exists() else "no such run folder"
        raise RunError(f"--run {run}: {what}; give a training run folder (outputs/<run>) or "
                       f"train one: {train}")
    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        raise RunError(f"{cfg_file} is missing: {run} is not a training run; train it first: "
                       f"{train}")
    info_file = run / RUN_INFO_FILE
    if not info_file.is_file():
        raise RunError(
            f"{info_file} is missing: {run} is not a finished training run (training writes it "
            f"at the end); finish it: python code/train.py --config-file {cfg_file} --resume "
            f"OUTPUT_DIR {run}"
        )
    if checkpoint not in CHECKPOINTS:
        raise RunError(f"--checkpoint {checkpoint}: unknown checkpoint of {run}; valid: "
                       f"{', '.join(CHECKPOINTS)}")
    weights = run / CHECKPOINTS[checkpoint]
    if checkpoint == "best" and not weights.is_file():
        final = run / CHECKPOINTS["final"]
        if not final.is_file():
            raise RunError(f"{weights} and {final} are missing: {run} has no checkpoint; "
                           f"finish its training: python code/train.py --config-file {cfg_file} "
                           f"--resume OUTPUT_DIR {run}")
        logger.warning("%s has no model_best.pth (no validation?): using model_final.pth", run)
        weights = final
    if not weights.is_file():
        others = [n for k, n in CHECKPOINTS.items() if k != checkpoint and (run / n).is_file()]
        hint = (f"use --checkpoint {next(k for k, n in CHECKPOINTS.items() if n == others[0])}"
                if others else f"finish its training: python code/train.py --config-file "
                f"{cfg_file} --resume OUTPUT_DIR {run}")
        raise RunError(f"{weights} is missing: {hint}")
    cfg = setup_cfg(str(cfg_file), ["MODEL.WEIGHTS", str(weights), *opts], freeze=False)
    if Path(cfg.MODEL.WEIGHTS).is_file():  # the run's checkpoint, or a MODEL.WEIGHTS override
        check_checkpoint_run(cfg.MODEL.WEIGHTS, run)  # another run's: refused
    if cfg.MODEL.DEVICE.startswith("cuda") and not _cuda_available():
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def images_of_split(run: Path, data_root: Path, split: str) -> tuple:
    """(image names, image folder) of a prediction split: test = sample_submission order, val =
    the run's validation frames (its split.json)."""
    paths = DataPaths.from_root(data_root)
    if split == "test":
        sub = read_keypoint_csv(paths.sample_submission)
        return list(sub["image"]), paths.test_images
    if split == "val":
        names = split_val_images(run)
        if not names:
            raise RunError(f"--split val: {run} was trained without validation (its "
                           f"{SPLIT_FILE} has no validation frames: DATA.VAL_FRACTION 0), so "
                           "there is nothing to predict; predict --split test")
        return names, paths.train_images
    raise ValueError(f"unknown split {split!r}; valid: {', '.join(PREDICTION_SPLITS)}")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
