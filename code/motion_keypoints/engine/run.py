"""Run setup both model families share: the order of a training start (``cli/train.py``).

1. :func:`prepare_run` checks everything a run needs and writes NOTHING: the data folder
   (:mod:`.data_cache`), the augmentation set (:mod:`.aug_set`: complete, built from this data
   and labels, with the current set definition), the weights (:mod:`.weights_check`), and the
   run folder (:func:`motion_keypoints.io.runs.check_run_folder`: one run per folder). It
   returns the run's record (``run.json``, :mod:`.record`).
2. :func:`start_run` then (``--clear``) empties the folder, writes ``run.json``, sends the
   libraries' log to ``<run>/log.txt`` (:func:`motion_keypoints.console.setup_run_logging`) and
   calls detectron2's ``default_setup`` (seeds, ``config.yaml``).

The family of the run comes from the model registry; resuming prunes ``metrics.json``
(:mod:`.metrics_log`). The names of those modules stay importable from here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..errors import SetupError
from ..io.runs import (
    check_run_folder,
    clear_run_folder,
    new_run_id,
    read_run_record,
    remove_partial_files,
    write_run_record,
)
from ..models.registry import family_of
from . import record as _record
from .aug_set import (
    augmented_set_dir,
    check_aug_set,
    labels_sha256,
    rebuild_command,
    set_definition,
)
from .data_cache import run_split, validated_train_df
from .metrics_log import prune_metrics_json
from .record import compute_run_record
from .weights_check import SCRATCH_HINT, check_weights, eval_weights

logger = logging.getLogger("motion_keypoints")

__all__ = [
    "SCRATCH_HINT", "SetupError", "augmented_set_dir", "check_aug_set", "check_weights",
    "compute_run_record", "eval_weights", "labels_sha256", "prepare_run", "prune_metrics_json",
    "rebuild_command", "run_fingerprint", "run_split", "set_definition", "start_run",
    "validated_train_df",
]


def run_fingerprint(cfg) -> str:
    """The fingerprint of the run in ``cfg.OUTPUT_DIR`` (:func:`.record.run_fingerprint`), its
    family from the registry."""
    return _record.run_fingerprint(cfg, family_of(cfg))


def prepare_run(cfg, resume: bool = False, eval_only: bool = False, clear: bool = False) -> dict:
    """Check everything a run needs, writing nothing (see the module); returns the run record
    with ``"action"`` (``new``/``same``/``clear``) added."""
    run_split(cfg, validated_train_df(cfg))
    manifest = check_aug_set(cfg)
    last = Path(cfg.OUTPUT_DIR) / "last_checkpoint"
    if eval_only:
        eval_weights(cfg, resume=resume)  # a trained model, or one line
    elif not (resume and last.is_file()):
        check_weights(cfg)
    record = compute_run_record(cfg, family_of(cfg), manifest)
    action = check_run_folder(cfg.OUTPUT_DIR, record, resume=resume, clear=clear,
                              eval_only=eval_only)
    return {**record, "action": action}


def start_run(cfg, args, record: Optional[dict] = None) -> None:
    """Write the run's start (after :func:`prepare_run`): clear the folder on ``--clear``, write
    ``run.json`` (not for ``--eval-only``), route the libraries' log into ``<run>/log.txt`` and
    run detectron2's ``default_setup`` (seeds, ``config.yaml``)."""
    from detectron2.engine import default_setup
    from detectron2.utils import comm

    from ..console import setup_run_logging

    out = Path(cfg.OUTPUT_DIR)
    if comm.is_main_process() and record is not None:
        if record.get("action") == "clear":
            clear_run_folder(out)
            logger.info("cleared %s (--clear)", out)
        if not getattr(args, "eval_only", False):
            out.mkdir(parents=True, exist_ok=True)
            # The run's own id: kept by a resumed run, new for a new (or cleared) one.
            old = read_run_record(out) if record.get("action") == "same" else None
            run_id = (old or {}).get("run_id") or new_run_id()
            write_run_record(out, {**{k: v for k, v in record.items() if k != "action"},
                                   "run_id": run_id})
        remove_partial_files(out)
    setup_run_logging(str(out), rank=comm.get_rank())
    default_setup(cfg, args)
