"""The export's description, ``export.json``, and the checks that an export still matches its run.

An export folder (default ``<run>/export``) holds the ``.onnx`` file of the run's family and
``export.json``: the format, the kit and torch versions, the opset, the exporter used, the run's
fingerprint (``run.json``), the checkpoint exported and its sha256, the config overrides baked
in, the keypoint names and flip pairs, and for each file its sha256, inputs and outputs
(name, dtype, shape with named dynamic axes, meaning) and the kit's post-processing.

:func:`check_export` is what ``predict.py --backend onnxruntime`` asks before any work: a missing
export, another run's, another checkpoint's, an export older than its checkpoint (retrained since)
or a changed ``.onnx`` file is one :class:`ExportError` line with the export command to run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

from ..errors import UserError
from ..io.runs import CHECKPOINTS, RUN_INFO_FILE, read_run_record
from ..utils import PathLike, file_sha256, read_json_record

#: The description file of an export folder.
EXPORT_FILE = "export.json"
#: The default export folder inside a run folder.
DEFAULT_EXPORT_DIR = "export"
#: Export formats (``--format``).
FORMATS = ("onnx",)
#: Inference backends of ``predict.py --backend``: torch (the checkpoint) or the ONNX export.
BACKENDS = ("torch", "onnxruntime")


class ExportError(UserError, RuntimeError):
    """A model that cannot be exported, or an export that cannot be used; says what to do."""


def export_dir_of(run: PathLike, out: Optional[PathLike] = None) -> Path:
    """The export folder of a run: ``out`` when given, else ``<run>/export``."""
    return Path(out) if out is not None else Path(run) / DEFAULT_EXPORT_DIR


def export_command(run: PathLike, out: Optional[PathLike] = None, checkpoint: str = "best",
                   opts: Sequence[str] = ()) -> str:
    """The command that (re)writes the export ``predict --backend onnxruntime`` looks for."""
    cmd = f"python code/export.py --run {run} --format onnx"
    if out is not None:
        cmd += f" --out {out}"
    if checkpoint != "best":
        cmd += f" --checkpoint {checkpoint}"
    if opts:
        cmd += " " + " ".join(map(str, opts))
    return cmd


def run_family(run: PathLike) -> str:
    """The family of a trained run (``run_info.json`` "family", as ``predict`` reads it:
    :func:`motion_keypoints.models.registry.family_of_run`)."""
    from ..models.registry import family_of_run

    return family_of_run(run)


def run_fingerprint(run: PathLike) -> Optional[str]:
    """The run's fingerprint: ``run.json``'s, else ``run_info.json``'s (None for neither)."""
    record = read_run_record(run)
    if record is not None:
        return record["fingerprint"]
    try:
        return json.loads((Path(run) / RUN_INFO_FILE).read_text()).get("fingerprint")
    except (OSError, json.JSONDecodeError):
        return None


def checkpoint_file(run: PathLike, checkpoint: str = "best") -> Path:
    """The checkpoint file ``--checkpoint`` names (``best`` falls back to ``model_final.pth``
    in a run without validation, as prediction does)."""
    path = Path(run) / CHECKPOINTS[checkpoint]
    if checkpoint == "best" and not path.is_file():
        path = Path(run) / CHECKPOINTS["final"]
    return path


def read_manifest(export_dir: PathLike) -> Optional[dict]:
    """``export.json`` of an export folder, None when there is none."""
    return read_json_record(Path(export_dir) / EXPORT_FILE, "files", ExportError, "export again",
                            missing="not an export description (no 'files')")


def check_export(run: PathLike, out: Optional[PathLike] = None, checkpoint: str = "best",
                 opts: Sequence[str] = ()) -> dict:
    """The manifest of the run's ONNX export, checked to be this run's current export (see the
    module); raises :class:`ExportError` (one line, with the export command) otherwise."""
    run, export_dir = Path(run), export_dir_of(run, out)
    redo = export_command(run, out, checkpoint, opts)
    manifest = read_manifest(export_dir)
    if manifest is None:
        raise ExportError(f"{run} has no ONNX export in {export_dir} (no {EXPORT_FILE}); export "
                          f"it first: {redo}")
    where = export_dir / EXPORT_FILE
    family, ckpt = run_family(run), checkpoint_file(run, checkpoint)
    problems = []
    if manifest.get("family") != family:
        problems.append(f"it holds a {manifest.get('family')} model, {run} is a {family} run")
    if manifest.get("run_fingerprint") != run_fingerprint(run):
        problems.append(f"it was exported from another run than {run} (run fingerprint differs)")
    if manifest.get("checkpoint") != ckpt.name:
        problems.append(f"it holds {manifest.get('checkpoint')}, not {ckpt.name}")
    elif not ckpt.is_file() or manifest.get("checkpoint_sha256") != file_sha256(ckpt):
        problems.append(f"{ckpt.name} changed since the export (trained again?): it is stale")
    if list(manifest.get("opts", [])) != [str(o) for o in opts]:
        problems.append(f"its config overrides {manifest.get('opts')} differ from the given "
                        f"{list(opts)} (overrides are baked into the export)")
    for spec in manifest["files"].values():
        f = export_dir / spec["path"]
        if not f.is_file() or file_sha256(f) != spec.get("sha256"):
            problems.append(f"{f} is missing or was changed after the export")
    if problems:
        raise ExportError(f"{where}: {problems[0]}; export again: {redo}")
    return {**manifest, "dir": str(export_dir)}


__all__ = [
    "BACKENDS", "DEFAULT_EXPORT_DIR", "EXPORT_FILE", "ExportError", "FORMATS", "check_export",
    "checkpoint_file", "export_command", "export_dir_of", "read_manifest", "run_family",
    "run_fingerprint",
]
