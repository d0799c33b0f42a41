"""The folder of an augmentation set: its definition, hashes and manifest, and whether an
existing folder can be resumed (see :mod:`.render`, which builds the sets)."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .. import __version__
from ..data.layout import DataPaths
from ..utils import atomic_write_text, file_sha256
from .config import AugmentationConfig, SetDef
from .ops import _albumentations

#: Bump when the layout or the rendering of a set changes: existing sets are then rebuilt.
AUGMENT_FORMAT = 2  # 2: mirrored labels at W-1-x (sets of format 1 are 1 px off)


def library_versions() -> Dict[str, str]:
    import cv2

    return {
        "motion_keypoints": __version__,
        "albumentations": _albumentations().__version__,
        "opencv": cv2.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def set_definition(config: AugmentationConfig, set_def: SetDef) -> dict:
    return {
        "name": set_def.name,
        "description": set_def.description,
        "transforms": list(set_def.transforms),
        "resolved": {
            t: [{"type": k, **p} for k, p in config.resolve(t)] for t in set_def.transforms
        },
        "copies": set_def.copies,
        "seed": set_def.seed,
        "jpeg_quality": config.jpeg_quality,
        "oversize": config.oversize,
    }


def set_hash(definition: dict, csv_sha256: str, versions: Dict[str, str]) -> str:
    payload = {
        "format": AUGMENT_FORMAT,
        "definition": definition,
        "source_csv_sha256": csv_sha256,
        "versions": {k: versions[k] for k in ("motion_keypoints", "albumentations", "opencv")},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def definition_hash(definition: dict) -> str:
    """Hash of a set's resolved definition alone (transforms, copies, seed, JPEG quality)."""
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()


def limited_set_name(set_name: str, limit: int | None) -> str:
    """The folder name of a set built from the first ``limit`` images only."""
    return set_name if limit is None else f"{set_name}-limit{limit}"


def reset_set_dir(set_dir: Path) -> None:
    for sub in ("images", "records"):
        if (set_dir / sub).exists():
            shutil.rmtree(set_dir / sub)
    for name in ("annotations.csv", "manifest.json"):
        (set_dir / name).unlink(missing_ok=True)


def stale_reason(set_dir: Path, expected_hash: str, limit: int | None = None) -> str | None:
    """Why an existing set folder cannot be resumed (None: it can, or there is nothing)."""
    manifest = set_dir / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text())
            old = data.get("hash")
        except (ValueError, AttributeError):
            return "its manifest.json is unreadable"
        if data.get("limit") != limit:
            # never reached through build_sets (limited sets have their own folder), kept as a
            # guard: a folder built with another --limit is rebuilt, not silently reused
            return f"it was built with limit {data.get('limit')}, not {limit}"
        if old != expected_hash:
            return (
                "the set definition, the source CSV or the library versions changed "
                "(manifest hash differs)"
            )
        return None
    if any((set_dir / sub).exists() for sub in ("images", "records", "annotations.csv")):
        return "it has outputs but no manifest.json"
    return None


def running_manifest(paths: DataPaths, out_name: str, set_name: str, digest: str,
                      definition: dict, csv_sha256: str, sources: Dict[str, Any],
                      limit: int | None, versions: Dict[str, str]) -> dict:  # fmt: skip
    """The manifest of a set being built (``status`` running, not complete)."""
    return {
        "set": out_name,
        "base_set": set_name,
        "status": "running",
        "complete": False,
        "hash": digest,
        "definition_hash": definition_hash(definition),
        "definition": definition,
        "data_root": str(paths.root.resolve()),
        "source": {
            "data_root": str(paths.root),
            "train_csv": str(paths.train_csv),
            "sha256": csv_sha256,
            "train_csv_sha256": sources.get("train_csv_sha256", csv_sha256.split("+")[0]),
            "overrides_csv": sources.get("overrides_csv"),
            "overrides_sha256": sources.get("overrides_sha256"),
        },
        "limit": limit,
        "versions": versions,
    }


def complete_manifest(manifest: dict, summary: dict, set_dir: Path) -> None:
    """Mark the set's manifest complete, with what training checks and the build's counts."""
    counts = ("source_images", "outputs", "rendered", "skipped", "stale_removed")
    manifest.update(
        status="complete",
        complete=True,
        # what training checks annotations.csv against (edited after the build: refused)
        annotations_sha256=file_sha256(set_dir / "annotations.csv"),
        counts={k: summary[k] for k in counts},
        adjusted=summary["adjusted"],
        workers=summary["workers"],
        wall_seconds=summary["wall_seconds"],
        render_seconds=summary["render_seconds"],
    )
    atomic_write_text(set_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n",
                      kind="set manifest")
