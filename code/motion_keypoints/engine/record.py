"""The run record (``run.json``) of a config: config hash, data fingerprint, augmentation set
manifest hash and model family, and their ``fingerprint`` (:mod:`motion_keypoints.io.runs`)."""

from __future__ import annotations

from typing import Optional

from ..io.runs import data_fingerprint, read_run_record, run_record
from .aug_set import manifest_or_none


def compute_run_record(cfg, family: str, manifest: Optional[dict] = None) -> dict:
    """``run.json`` of this config of ``family``. Writes nothing."""
    from ..data.layout import DataPaths

    paths = DataPaths.from_root(cfg.DATA.ROOT)
    data = data_fingerprint(paths.train_csv, paths.overrides, paths.train_images)
    return run_record(cfg, data, aug_set=cfg.DATA.AUG_SET,
                      aug_manifest_hash=(manifest or {}).get("hash"), family=family)


def run_fingerprint(cfg, family: str) -> str:
    """The fingerprint of the run in ``cfg.OUTPUT_DIR``: its ``run.json``'s, else computed."""
    record = read_run_record(cfg.OUTPUT_DIR)
    if record is None:
        record = compute_run_record(cfg, family, manifest_or_none(cfg))
    return record["fingerprint"]
