"""The run folder, the contract between a model family and the ensemble.

A training run (``outputs/<run>/``) of any family holds ``run_info.json`` (what the predictor and
the ensembler need to know: keypoint names, flip pairs, data root, validation RMSE, ...),
``split.json`` (which frames validated), ``best_checkpoint.json`` (path, iteration and RMSE of the
best checkpoint) and, after prediction, ``predictions_<split>.csv`` (:mod:`.predictions`).

A run folder holds ONE run: ``run.json``, written at the start, records what defines it (a hash
of the config without the keys that do not change the model, the data fingerprint and the
augmentation set's manifest hash; :func:`run_record`). :func:`check_run_folder` refuses to start a
different run in a folder that holds one. Nothing here imports detectron2.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, List, Mapping, Optional, Sequence

from ..errors import UserError
from ..meta import FLIP_PAIRS, KEYPOINT_NAMES
from ..utils import PathLike, atomic_path, atomic_write_text, read_json_record
from .lock import LOCK_FILE

RUN_INFO_FILE = "run_info.json"
#: What defines the run, written at its start (:func:`run_record`).
RUN_FILE = "run.json"
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
    """Write ``best_checkpoint.json`` durably (after its checkpoint is complete)."""
    text = json.dumps(record, indent=1)
    durable_write(Path(run_dir) / BEST_CHECKPOINT_FILE, lambda f: f.write(text.encode()))


def durable_write(path: PathLike, write: Callable[[BinaryIO], Any], kind: str = "run record") -> None:
    """Write a run file through ``write(binary file)`` so that a kill or a full disk at any
    moment leaves the old file (or none), never a partial one: the kit's one write path
    (:func:`motion_keypoints.utils.atomic_path`: a temporary file in the same folder, fsynced,
    renamed into place, the folder fsynced). On an error the temporary file is removed and the
    error propagates."""
    with atomic_path(path, kind, "OUTPUT_DIR") as tmp:
        with open(tmp, "wb") as f:
            write(f)


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
    fingerprint: Optional[str] = None,
) -> Dict[str, Any]:
    """Write ``run_info.json`` of a finished run and return it. ``val_rmse`` is the best
    checkpoint's (``best_checkpoint.json``), else ``final_val_rmse``.

    A run without validation (``n_val`` 0) has ``"validated": false``, ``val_rmse`` None and
    ``checkpoint`` ``model_final.pth``; a validated run's ``checkpoint`` is ``model_best.pth``
    when the best-checkpoint hook saved one. ``fingerprint`` defaults to ``run.json``'s."""
    out = Path(run_dir)
    best = read_best_checkpoint(out)
    validated = n_val > 0
    if not validated:
        best, final_val_rmse = None, None
    if fingerprint is None:
        record = read_run_record(out)
        fingerprint = record.get("fingerprint") if record else None
    checkpoint = CHECKPOINTS["best"] if best and (out / CHECKPOINTS["best"]).is_file() else (
        CHECKPOINTS["final"]
    )
    info = {
        "name": out.name,
        "family": family,
        "fingerprint": fingerprint,
        "validated": validated,
        "checkpoint": checkpoint,
        "keypoint_names": list(KEYPOINT_NAMES),
        "flip_pairs": [list(p) for p in FLIP_PAIRS],
        "data_root": str(Path(data_root).resolve()),
        "aug_set": aug_set,
        "config": str(out / "config.yaml"),
        "val_rmse": best["val_rmse"] if best else final_val_rmse,
        "final_val_rmse": final_val_rmse,
        # Without a best checkpoint the validation RMSE is the final evaluation's, at the end.
        "best_iteration": best["iteration"] if best else (
            max_iter - 1 if final_val_rmse is not None else None),
        "n_train": n_train,
        "n_val": n_val,
        "split": str(out / SPLIT_FILE),
        "max_iter": max_iter,
    }
    atomic_write_text(out / RUN_INFO_FILE, json.dumps(info, indent=1))
    return info


# ------------------------------------------------------------------------- one run per folder

#: Config keys that do not define the run: where it is written, how long it runs (resuming
#: with more iterations continues the same run), how often it validates and checkpoints,
#: tracking, loader workers, the depth of the data check and the device (setup_cfg falls back
#: from cuda to cpu on a machine without a GPU).
RUN_NEUTRAL_KEYS = (
    "OUTPUT_DIR",
    "SOLVER.MAX_ITER",
    "TEST.EVAL_PERIOD",
    "SOLVER.CHECKPOINT_PERIOD",
    "TRACKING",
    "DATALOADER.NUM_WORKERS",
    "DATA.CHECK_IMAGES",
    "MODEL.DEVICE",
)
#: Files that make a folder a run (a folder with only a log.txt is a failed start, not a run).
RUN_MARKERS = ("config.yaml", "last_checkpoint", "metrics.json", RUN_INFO_FILE,
               BEST_CHECKPOINT_FILE)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A config (nested mapping with tuples) as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_hash(cfg: Mapping, neutral: Sequence[str] = RUN_NEUTRAL_KEYS) -> str:
    """SHA-256 of the config (any nested mapping, e.g. a CfgNode) without ``neutral`` keys
    (dotted; a section name drops the whole section)."""
    plain = _plain(cfg)
    for key in neutral:
        *parents, last = key.split(".")
        node = plain
        for part in parents:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return _sha256_text(json.dumps(plain, sort_keys=True, default=str))


def _file_hash(path: Path) -> Optional[str]:
    from ..utils import file_sha256

    return file_sha256(path) if path.is_file() else None


def data_fingerprint(train_csv: PathLike, overrides: PathLike, images_dir: PathLike) -> dict:
    """The data a run trains on: content hashes of ``train_df.csv`` and ``label_overrides.csv``
    (None without one) and the hash of the sorted image list of the training images folder."""
    images_dir = Path(images_dir)
    names = sorted(p.name for p in images_dir.iterdir()) if images_dir.is_dir() else []
    return {
        "train_csv_sha256": _file_hash(Path(train_csv)),
        "overrides_sha256": _file_hash(Path(overrides)),
        "images": len(names),
        "images_sha256": _sha256_text("\n".join(names)),
    }


def run_record(config: Mapping, data: dict, aug_set: str = "",
               aug_manifest_hash: Optional[str] = None, family: str = "rcnn") -> dict:
    """What defines a run (``run.json``): config hash, data fingerprint, augmentation set and its
    manifest hash, and the ``fingerprint`` over all of them."""
    parts = {
        "family": family,
        "config_sha256": config_hash(config),
        "data": data,
        "aug_set": aug_set or None,
        "aug_manifest_hash": aug_manifest_hash,
    }
    return {"fingerprint": _sha256_text(json.dumps(parts, sort_keys=True)), **parts}


def read_run_record(run_dir: PathLike) -> Optional[dict]:
    """``run.json`` of a run folder, None when there is none; RunError when unreadable."""
    return read_json_record(Path(run_dir) / RUN_FILE, "fingerprint", RunError,
                            "start the run again with --clear")


def write_run_record(run_dir: PathLike, record: dict) -> None:
    atomic_write_text(Path(run_dir) / RUN_FILE, json.dumps(record, indent=1) + "\n")


def new_run_id() -> str:
    """A run's own id (``run.json`` ``"run_id"``): two runs of the same config and data in two
    folders have the same fingerprint, but not the same id."""
    return uuid.uuid4().hex


def run_identity(run_dir: PathLike, record: Mapping) -> dict:
    """What a checkpoint records about its run: ``{"id", "fingerprint", "name"}``."""
    return {"id": record.get("run_id"), "fingerprint": record.get("fingerprint"),
            "name": Path(run_dir).name}


def read_run_identity(run_dir: PathLike) -> Optional[dict]:
    """:func:`run_identity` of a run folder from its ``run.json`` (``run_info.json``'s
    fingerprint for a run without one); None when it has neither."""
    record = read_run_record(run_dir)
    if record is None:
        info = Path(run_dir) / RUN_INFO_FILE
        try:
            fingerprint = json.loads(info.read_text()).get("fingerprint") if info.is_file() else None
        except ValueError:
            fingerprint = None
        if not fingerprint:
            return None
        record = {"fingerprint": fingerprint}
    return run_identity(run_dir, record)


def same_run(a: Mapping, b: Mapping) -> bool:
    """Whether two run identities name the same run: by id where both have one, else by
    fingerprint."""
    if a.get("id") and b.get("id"):
        return a["id"] == b["id"]
    return bool(a.get("fingerprint")) and a.get("fingerprint") == b.get("fingerprint")


def remove_partial_files(run_dir: PathLike) -> int:
    """Remove the temporary files a killed write left in a run folder (``.<name>.<random>.tmp*``
    of the atomic writes; the final names were never touched). Call it only while holding the
    run's lock. Returns how many were removed."""
    from .outputs import remove_output

    d = Path(run_dir)
    if not d.is_dir():
        return 0
    return sum(remove_output(p) for p in d.glob(".*.tmp*") if p.is_file())


def has_checkpoints(run_dir: PathLike) -> bool:
    d = Path(run_dir)
    return (d / "last_checkpoint").is_file() or any(
        not p.name.startswith(".") for p in d.glob("*.pth"))  # not a killed save's temporary


def _differences(old: dict, new: dict) -> str:
    what = []
    if old.get("family") != new.get("family"):
        what.append(f"model family {old.get('family')} -> {new.get('family')}")
    if old.get("config_sha256") != new.get("config_sha256"):
        what.append("the config")
    if old.get("data") != new.get("data"):
        keys = [k for k in ("train_csv_sha256", "overrides_sha256", "images_sha256")
                if (old.get("data") or {}).get(k) != (new.get("data") or {}).get(k)]
        names = {"train_csv_sha256": "train_df.csv", "overrides_sha256": "label_overrides.csv",
                 "images_sha256": "the image list"}
        what.append("the data (" + ", ".join(names[k] for k in keys) + ")" if keys else "the data")
    if (old.get("aug_set"), old.get("aug_manifest_hash")) != (
            new.get("aug_set"), new.get("aug_manifest_hash")):
        what.append("the augmentation set")
    return ", ".join(what) or "the run"


def check_run_folder(run_dir: PathLike, record: dict, resume: bool = False,
                     clear: bool = False, eval_only: bool = False) -> str:
    """Decide, before anything is written, whether this run may use ``run_dir``.

    Returns ``"new"`` (empty or no folder, or a failed start), ``"clear"`` (``clear`` given: the
    caller empties the folder with :func:`clear_run_folder`), ``"same"`` (the folder holds this
    very run: resume it, or restart one that never saved a checkpoint). Raises RunError, with the
    ways out, for another run in the folder, or the same run with checkpoints without ``resume``.
    """
    d = Path(run_dir)
    if d.exists() and not d.is_dir():
        raise RunError(f"OUTPUT_DIR {d} is a file; give a folder for the run")
    if clear:
        return "clear"
    if not d.is_dir():
        return "new"
    ways = (f"give a new OUTPUT_DIR, or pass --clear to delete {d} and start again")
    old = read_run_record(d)
    if old is None:
        markers = [n for n in RUN_MARKERS if (d / n).exists()] + sorted(p.name for p in d.glob("*.pth"))
        if not markers:
            return "new"
        raise RunError(
            f"{d} already holds a run without {RUN_FILE} ({', '.join(markers[:4])}), so it cannot "
            f"be checked to be this run: {ways}"
        )
    if old["fingerprint"] != record["fingerprint"]:
        raise RunError(
            f"{d} holds another run ({d / RUN_FILE}: {_differences(old, record)} differ): {ways} "
            "(--resume continues only the same run)"
        )
    if not resume and not eval_only and has_checkpoints(d):
        raise RunError(
            f"{d} already holds this run with checkpoints: pass --resume to continue it, or "
            f"--clear to delete it and train again"
        )
    return "same"


def clear_run_folder(run_dir: PathLike, data_root: Optional[PathLike] = None,
                     set_dirs: Sequence[PathLike] = ()) -> List[str]:
    """``--clear``: delete what a run wrote in its folder, and only that: the run's records,
    checkpoints, logs, caches, predictions and pictures (:data:`outputs.RUN_WRITTEN`) and the
    files the kit's ledger names; anything else (a file the kit did not write) is kept and
    returned. Refused before anything is removed: a folder that is, lies in or holds a data
    folder or an augmentation set (``data_root`` / ``set_dirs``, or any other), or that does
    not look like a run (no run files but other content)."""
    from .outputs import check_run_place, run_written

    check_run_place(run_dir, data_root, set_dirs)
    d = Path(run_dir)
    if not d.is_dir():
        return []
    # The run's lock stays: the clearing process holds it (io/lock.py).
    entries = [p for p in d.iterdir() if p.name != LOCK_FILE]
    is_run = (d / RUN_FILE).is_file() or any((d / n).exists() for n in RUN_MARKERS) or any(
        d.glob("*.pth")) or all(p.name == "log.txt" for p in entries)
    if entries and not is_run:
        raise RunError(
            f"--clear: {d} does not look like a run folder (no {RUN_FILE}, config.yaml or "
            "checkpoints); not deleting it. Give a new OUTPUT_DIR"
        )
    kept = sorted(p.name for p in entries if not run_written(d, p.name))
    for p in entries:
        if p.name in kept:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    if kept:
        import logging

        logging.getLogger("motion_keypoints").warning(
            "--clear kept %d file(s) in %s that the kit did not write: %s", len(kept), d,
            ", ".join(kept[:5]) + (" ..." if len(kept) > 5 else ""))
    return kept


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


#: The family of a run whose ``run_info.json`` has no "family" (written before the heatmap family).
LEGACY_FAMILY = "rcnn"


def family_of_info(info: Mapping) -> str:
    """The model family a ``run_info.json`` records (:data:`LEGACY_FAMILY` without the key)."""
    return str(info.get("family") or LEGACY_FAMILY)


def read_run_family(run_dir: PathLike) -> str:
    """The model family of a trained run folder, as its ``run_info.json`` records it. A missing
    or unreadable ``run_info.json`` is a one-line :class:`RunError`. Which names are known is
    the model registry's business (:func:`motion_keypoints.models.registry.family_of_run`)."""
    path = Path(run_dir) / RUN_INFO_FILE
    if not path.is_file():
        raise RunError(f"{path} is missing: {run_dir} is not a finished training run "
                       "(training writes it at the end)")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc}); re-run the training") from None
    if not isinstance(info, dict):
        raise RunError(f"{path}: not a run record (a JSON object); re-run the training")
    return family_of_info(info)


def split_val_images(run_dir: PathLike) -> List[str]:
    """The validation frames of a run (its ``split.json``)."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the run has no validation split")
    return list(json.loads(path.read_text())["val"])
