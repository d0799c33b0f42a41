"""Run setup both model families share.

The order of a training start (``cli/train.py``):

1. :func:`prepare_run` checks everything a run needs and writes NOTHING: the data folder, the
   augmentation set (complete, built from this data and labels, with the current set
   definition), the weights, and the run folder (:func:`motion_keypoints.io.runs.check_run_folder`:
   one run per folder). It returns the run's record (``run.json``).
2. :func:`start_run` then (``--clear``) empties the folder, writes ``run.json``, sends the
   libraries' log to ``<run>/log.txt`` (:func:`motion_keypoints.console.setup_run_logging`) and
   calls detectron2's ``default_setup`` (seeds, ``config.yaml``).

Also here: resuming (``metrics.json`` pruned to the resumed iteration) and the validated
training labels of a data root (validated once per process).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import UserError
from ..io.runs import (
    check_run_folder,
    clear_run_folder,
    data_fingerprint,
    new_run_id,
    read_run_record,
    remove_partial_files,
    run_record,
    write_run_record,
)
from ..utils import file_sha256

logger = logging.getLogger("motion_keypoints")

SCRATCH_HINT = (
    "Training from scratch (MODEL.WEIGHTS '') needs GroupNorm and no frozen stages: "
    "MODEL.RESNETS.NORM GN MODEL.FPN.NORM GN MODEL.BACKBONE.FREEZE_AT 0 (see configs/tiny-cpu.yaml), "
    "and a lower SOLVER.BASE_LR helps."
)


class SetupError(UserError, RuntimeError):
    """A run cannot start: missing augmentation set, weights that cannot be loaded, ..."""


# ------------------------------------------------------------------------------ data and set

_VALIDATED: Dict[Tuple[str, str], object] = {}


def validated_train_df(cfg):
    """The training labels of ``cfg.DATA.ROOT`` (overrides applied), the data folder validated
    first (:func:`validate_data_root`). Validated once per process and data root."""
    from ..data.layout import DataPaths, load_train_df, validate_data_root

    paths = DataPaths.from_root(cfg.DATA.ROOT)
    key = (str(paths.root.resolve()), str(cfg.DATA.CHECK_IMAGES), str(cfg.DATA.ALLOW_FAR_POINTS))
    if key not in _VALIDATED:
        validate_data_root(
            paths.root,
            check_images=cfg.DATA.CHECK_IMAGES,
            splits=("train",),
            allow_far_points=cfg.DATA.ALLOW_FAR_POINTS,
        )
        _VALIDATED[key] = load_train_df(paths.root)  # label_overrides.csv applied
    return _VALIDATED[key].copy()


def run_split(cfg, train_df=None):
    """The run's leak-free train/validation split of the original frames
    (``DATA.VAL_FRACTION``, ``DATA.SPLIT_SEED``); SetupError when it cannot be made."""
    from ..data.split import split_images

    df = validated_train_df(cfg) if train_df is None else train_df
    try:
        return split_images(list(df["image"]), float(cfg.DATA.VAL_FRACTION), cfg.DATA.SPLIT_SEED,
                            stratify=str(cfg.DATA.get("SPLIT_STRATIFY", "none")))
    except ValueError as exc:
        raise SetupError(f"{cfg.DATA.ROOT}: DATA.VAL_FRACTION {cfg.DATA.VAL_FRACTION}: {exc} "
                         "(train without validation with DATA.VAL_FRACTION 0)") from None


def labels_sha256(data_root) -> str:
    """The labels an augmentation set is built from, as its manifest records them:
    ``sha256(train_df.csv)`` and, with overrides, ``+sha256(label_overrides.csv)``."""
    from ..data.layout import DataPaths

    paths = DataPaths.from_root(data_root)
    digest = file_sha256(paths.train_csv)
    if paths.overrides.is_file():
        digest = f"{digest}+{file_sha256(paths.overrides)}"
    return digest


def augmented_set_dir(cfg) -> Path:
    return Path(cfg.DATA.AUGMENTED_DIR) / cfg.DATA.AUG_SET


def rebuild_command(cfg, overwrite: bool = False) -> str:
    """The command that (re)builds the run's set; ``overwrite`` for a set whose files someone
    edited (the output policy replaces only files the kit wrote, unless told)."""
    out = "" if str(cfg.DATA.AUGMENTED_DIR) == "augmented" else f" --out {cfg.DATA.AUGMENTED_DIR}"
    return (f"python code/augmentation.py --data-root {cfg.DATA.ROOT}{out} "
            f"--sets {cfg.DATA.AUG_SET}" + (" --overwrite" if overwrite else ""))


def check_aug_set(cfg) -> Optional[dict]:
    """The manifest of the run's augmentation set (None without one) after checking that the
    set is complete, that its annotations.csv is the one the build wrote (the sha256 its
    manifest recorded), that it was built from this data root's labels and overrides, and from
    the set's current definition in the augmentation config. Otherwise SetupError with the
    rebuild command."""
    if not cfg.DATA.AUG_SET:
        return None
    set_dir = augmented_set_dir(cfg)
    manifest_path = set_dir / "manifest.json"
    fix = f"Build it with:\n  {rebuild_command(cfg)}"
    if not (set_dir / "annotations.csv").is_file() or not manifest_path.is_file():
        missing = "annotations.csv" if manifest_path.is_file() else "manifest.json"
        raise SetupError(
            f"augmentation set {cfg.DATA.AUG_SET!r} not found ({set_dir / missing} missing). {fix}"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError:
        raise SetupError(f"{manifest_path} is unreadable. Rebuild the set:\n  "
                         f"{rebuild_command(cfg)}") from None
    why, edited = None, False
    recorded = manifest.get("annotations_sha256")
    if manifest.get("status") != "complete":
        why = f"is not complete (status {manifest.get('status')!r}: an interrupted build)"
    elif not recorded:
        why = ("records no sha256 of its annotations.csv (built by an older version of the kit), "
               "so its annotations cannot be checked")
    elif file_sha256(set_dir / "annotations.csv") != recorded:
        why, edited = (f"has an annotations.csv that was changed after the set was built (its "
                       f"sha256 is not the one {manifest_path.name} recorded)"), True
    elif (manifest.get("source") or {}).get("sha256") != labels_sha256(cfg.DATA.ROOT):
        why = (f"was built from other labels (data root {(manifest.get('source') or {}).get('data_root')}"
               f"), not {cfg.DATA.ROOT}'s train_df.csv and label_overrides.csv as they are now")
    else:
        # A limited build (<set>-limit<K>) is checked against its base set's definition.
        current = set_definition(manifest.get("base_set") or cfg.DATA.AUG_SET)
        if current is not None and manifest.get("definition") != current:
            why = "was built from another definition of the set than the augmentation config's"
    if why:
        raise SetupError(f"augmentation set {cfg.DATA.AUG_SET!r} ({set_dir}) {why}. Rebuild it "
                         f"with:\n  {rebuild_command(cfg, overwrite=edited)}")
    return manifest


def set_definition(name: str) -> Optional[dict]:
    """The set's definition as the augmentation config gives it now, in the manifest's form
    (JSON values)."""
    from ..augment.config import load_augmentation_config
    from ..augment.render import set_definition as definition

    config = load_augmentation_config()
    return json.loads(json.dumps(definition(config, config.get_set(name))))


# ------------------------------------------------------------------------------------ weights


def check_weights(cfg) -> None:
    """Resolve ``MODEL.WEIGHTS`` before any long work; offline, say how to proceed."""
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        return
    if "://" not in weights:
        if not Path(weights).is_file():
            raise SetupError(
                f"MODEL.WEIGHTS {weights} does not exist. Pass an existing checkpoint file, or "
                f"MODEL.WEIGHTS '' to train from scratch. {SCRATCH_HINT}"
            )
        return
    from detectron2.utils.file_io import PathManager

    try:
        PathManager.get_local_path(weights)
    except Exception as exc:  # network errors come in many types
        raise SetupError(
            f"could not download MODEL.WEIGHTS {weights} ({type(exc).__name__}: {exc}).\n"
            "Offline? Download the checkpoint on a machine with internet and pass the local file: "
            "MODEL.WEIGHTS /path/to/model_final_a6e10b.pkl — or train from scratch with "
            f"MODEL.WEIGHTS ''. {SCRATCH_HINT}"
        ) from exc


def eval_weights(cfg, resume: bool = False) -> str:
    """The trained model ``--eval-only`` validates: with ``resume`` the run's last checkpoint,
    else its ``model_best.pth``, else its ``model_final.pth``, else ``MODEL.WEIGHTS`` when that
    is a checkpoint a kit training wrote (it records its run). Anything else (no model: the
    RMSE of untrained or only pre-trained weights means nothing) is a one-line SetupError.
    A checkpoint of the run folder must belong to its run (RunError otherwise)."""
    from ..io.runs import CHECKPOINTS
    from .checkpoint import CheckpointError, check_checkpoint_run, checkpoint_run

    out = Path(cfg.OUTPUT_DIR)
    names = [CHECKPOINTS["best"], CHECKPOINTS["final"]]
    last = out / "last_checkpoint"
    if resume and last.is_file():
        names.insert(0, last.read_text().strip())
    for name in names:
        if name and (out / name).is_file():
            check_checkpoint_run(out / name, out)
            return str(out / name)
    weights = str(cfg.MODEL.WEIGHTS)
    if weights and "://" not in weights and Path(weights).is_file():
        try:
            if checkpoint_run(weights) is not None:
                return weights
        except CheckpointError:
            pass
    given = f"MODEL.WEIGHTS {weights}" if weights else "MODEL.WEIGHTS ''"
    raise SetupError(
        f"--eval-only: {out} has no trained model ({' / '.join(names)} missing) and {given} is "
        "not a checkpoint of a kit training: train the run first (without --eval-only; "
        "--resume finishes an interrupted one), or pass MODEL.WEIGHTS <run>/model_best.pth"
    )


# ------------------------------------------------------------------------------- the run


def family(cfg) -> str:
    try:
        from ..models import family_of
    except ImportError:  # pragma: no cover - models/__init__.py without dispatch
        return "rcnn"
    return family_of(cfg)


def compute_run_record(cfg, manifest: Optional[dict] = None) -> dict:
    """``run.json`` of this config: config hash, data fingerprint, augmentation set manifest
    hash, family, and their ``fingerprint``. Writes nothing."""
    from ..data.layout import DataPaths

    paths = DataPaths.from_root(cfg.DATA.ROOT)
    data = data_fingerprint(paths.train_csv, paths.overrides, paths.train_images)
    return run_record(cfg, data, aug_set=cfg.DATA.AUG_SET,
                      aug_manifest_hash=(manifest or {}).get("hash"), family=family(cfg))


def run_fingerprint(cfg) -> str:
    """The fingerprint of the run in ``cfg.OUTPUT_DIR``: its ``run.json``'s, else computed."""
    record = read_run_record(cfg.OUTPUT_DIR)
    if record is None:
        record = compute_run_record(cfg, _manifest_or_none(cfg))
    return record["fingerprint"]


def _manifest_or_none(cfg) -> Optional[dict]:
    path = augmented_set_dir(cfg) / "manifest.json" if cfg.DATA.AUG_SET else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


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
    record = compute_run_record(cfg, manifest)
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


def setup_run(cfg, args) -> None:
    """Back-compatible: :func:`start_run` without a record."""
    start_run(cfg, args, None)


def prune_metrics_json(output_dir: str, start_iter: int) -> int:
    """Drop metrics.json lines at or after ``start_iter`` so a resumed run does not duplicate
    them. Returns the number of dropped lines."""
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            it = json.loads(line).get("iteration", -1)
        except json.JSONDecodeError:
            dropped += 1  # a line cut by the interruption
            continue
        if it >= start_iter:
            dropped += 1
        else:
            kept.append(line)
    # In place, not by rename: detectron2's JSONWriter already holds the file open for appending.
    with open(path, "r+") as f:
        f.write("".join(f"{x}\n" for x in kept))
        f.truncate()
    return dropped
