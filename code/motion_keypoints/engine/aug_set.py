"""The set-manifest check: the run's augmentation set must be complete, unedited, built from
this data root's labels and from the set's current definition (:func:`check_aug_set`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from ..errors import SetupError
from ..utils import file_sha256


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


def manifest_or_none(cfg) -> Optional[dict]:
    path = augmented_set_dir(cfg) / "manifest.json" if cfg.DATA.AUG_SET else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None
