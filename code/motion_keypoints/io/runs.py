"""The run folder, the contract between a model family and the ensemble.

A training run (``outputs/<run>/``) of any family holds ``run_info.json`` (what the predictor and
the ensembler need to know: keypoint names, flip pairs, data root, validation RMSE, ...),
``split.json`` (which frames validated), ``best_checkpoint.json`` (path, iteration and RMSE of the
best checkpoint) and, after prediction, ``predictions_<split>.csv`` (:mod:`.predictions`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import UserError
from ..meta import FLIP_PAIRS, KEYPOINT_NAMES
from ..utils import PathLike, atomic_write_text

RUN_INFO_FILE = "run_info.json"
SPLIT_FILE = "split.json"
#: Written by the best-checkpoint hook: ``{"path", "iteration", "metric", "val_rmse"}``.
BEST_CHECKPOINT_FILE = "best_checkpoint.json"
#: Checkpoints a run can be predicted with.
CHECKPOINTS = {"best": "model_best.pth", "final": "model_final.pth"}


class RunError(UserError, ValueError):
    """A run folder whose files cannot be used; the message names the file."""


def read_best_checkpoint(run_dir: PathLike) -> Optional[Dict[str, Any]]:
    """The record of ``best_checkpoint.json``, or None when the run has none."""
    path = Path(run_dir) / BEST_CHECKPOINT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_best_checkpoint(run_dir: PathLike, record: Dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / BEST_CHECKPOINT_FILE, json.dumps(record, indent=1))


def write_run_info(
    run_dir: PathLike,
    *,
    data_root: PathLike,
    aug_set: str,
    n_train: int,
    n_val: int,
    max_iter: int,
    final_val_rmse: Optional[float] = None,
    family: str = "rcnn",
) -> Dict[str, Any]:
    """Write ``run_info.json`` of a finished run and return it. ``val_rmse`` is the best
    checkpoint's (``best_checkpoint.json``), else ``final_val_rmse``."""
    out = Path(run_dir)
    best = read_best_checkpoint(out)
    info = {
        "name": out.name,
        "family": family,
        "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS],
        "data_root": str(Path(data_root).resolve()),
        "aug_set": aug_set,
        "config": str(out / "config.yaml"),
        "val_rmse": best["val_rmse"] if best else final_val_rmse,
        "final_val_rmse": final_val_rmse,
        "best_iteration": best["iteration"] if best else None,
        "n_train": n_train,
        "n_val": n_val,
        "split": str(out / SPLIT_FILE),
        "max_iter": max_iter,
    }
    atomic_write_text(out / RUN_INFO_FILE, json.dumps(info, indent=1))
    return info


def load_run_info(run_dir: PathLike) -> dict:
    """``run_info.json`` of a trained run, checked for the keys the ensemble needs."""
    path = Path(run_dir) / RUN_INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: {run_dir} is not a trained run folder (training writes run_info.json)"
        )
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from None
    for key in ("keypoint_names", "flip_pairs"):
        if key not in info:
            raise RunError(f"{path}: missing key {key!r}")
    return info


def split_val_images(run_dir: PathLike) -> List[str]:
    """The validation frames of a run (its ``split.json``)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the run has no validation split")
    return list(json.loads(path.read_text())["val"])
