"""Checkpoints that survive a kill, and know their run: :class:`RunCheckpointer`.

detectron2's checkpointer (fvcore's ``Checkpointer.save``) writes ``<name>.pth`` in place and then
the ``last_checkpoint`` tag: a kill or a full disk during the write leaves a truncated file under
the final name, and a tag that may point to it. :class:`RunCheckpointer` instead

- writes every ``.pth`` to a temporary file in the same folder, fsyncs it and renames it into
  place (:func:`motion_keypoints.io.runs.durable_write`), and only then moves the tag (written
  the same way); a full disk is one :class:`CheckpointError` line and leaves no partial file;
- records which run a checkpoint belongs to (``"run"`` in the checkpoint's extra data: the id
  and fingerprint of ``run.json``, :func:`motion_keypoints.io.runs.run_identity`);
- resumes from the last checkpoint only when it reads completely and belongs to this run, and
  otherwise says so in one line and falls back to the newest good checkpoint of the run (none:
  one :class:`CheckpointError` line naming the file).

:func:`check_checkpoint_run` is what prediction uses to refuse another run's checkpoint.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..errors import UserError
from ..io.runs import (
    RunError,
    durable_write,
    read_run_identity,
    same_run,
)

logger = logging.getLogger("motion_keypoints")

#: The checkpoint's extra-data key that names its run (``{"id", "fingerprint", "name"}``).
RUN_KEY = "run"
#: errno values of a save that failed for lack of space.
_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be saved or read; the message names the file and what to do."""


def _os_error_in(exc: BaseException) -> Optional[OSError]:
    """The OSError behind ``exc`` (torch wraps a failed file write in a RuntimeError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.split(". ")[0]  # torch appends advice about its own internals
    return text if len(text) <= 160 else text[:157] + "..."


def read_checkpoint_header(path) -> Dict[str, Any]:
    """The checkpoint at ``path`` without its tensors read (memory-mapped where the format
    allows): every key of the saved dict. CheckpointError (naming the file) when it does not
    read completely: a truncated, partial or otherwise corrupt file."""
    path = str(path)
    try:
        try:
            return torch.load(path, map_location="cpu", mmap=True, weights_only=False)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=False)  # legacy format
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt: "
                              f"{_short(exc)})") from None


def checkpoint_run(path) -> Optional[dict]:
    """The run a checkpoint records (``RUN_KEY``), None when it records none."""
    header = read_checkpoint_header(path)
    run = header.get(RUN_KEY) if isinstance(header, dict) else None
    return run if isinstance(run, dict) else None


def check_checkpoint_run(weights, run_dir) -> None:
    """Refuse (RunError, one line) to use ``weights`` as the model of ``run_dir`` when the
    checkpoint records another run; warn when it records none (an older version's checkpoint, or
    a user's own weights) or the run folder has no identity to compare with."""
    weights, run_dir = Path(weights), Path(run_dir)
    own = read_run_identity(run_dir)
    recorded = checkpoint_run(weights)
    if recorded is None or own is None:
        missing = f"{weights} records no run" if recorded is None else (
            f"{run_dir} has no run.json")
        logger.warning("%s: it cannot be checked to be the model of %s; using it as it is",
                       missing, run_dir)
        return
    if not same_run(recorded, own):
        name = recorded.get("name") or "another run folder"
        raise RunError(
            f"{weights} is the checkpoint of another run ({name}, id {str(recorded.get('id'))[:12]}"
            f"), not of {run_dir} (id {str(own.get('id'))[:12]}): predict with that run's own "
            f"folder (--run), or train {run_dir} again (train.py --clear)"
        )


def _iteration_from_name(path: Path) -> Optional[int]:
    m = re.fullmatch(r"model_(\d+)\.pth", path.name)
    return int(m.group(1)) if m else None


class RunCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer with atomic, durable saves, the run's identity in every
    checkpoint and a verified resume (see the module). ``run``: the identity to record and to
    check on resume (:func:`motion_keypoints.io.runs.run_identity`); None records nothing."""

    def __init__(self, model, save_dir: str = "", *, run: Optional[dict] = None, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.run = dict(run) if run else None
        self._preloaded: Optional[Tuple[str, Dict[str, Any]]] = None

    # ------------------------------------------------------------------------------- saving

    def save(self, name: str, *, tag: bool = True, **kwargs: Any) -> None:
        """Save ``<name>.pth`` atomically; then, with ``tag``, point ``last_checkpoint`` at it."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        if self.run is not None:
            data[RUN_KEY] = dict(self.run)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        self._write(save_file, lambda f: torch.save(data, f), "checkpoint")
        if tag:
            self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        self._write(os.path.join(self.save_dir, "last_checkpoint"),
                    lambda f: f.write(last_filename_basename.encode()), "run record")

    @staticmethod
    def _write(path: str, write, kind: str) -> None:
        try:
            durable_write(path, write, kind)
        except (OSError, RuntimeError) as exc:
            cause = _os_error_in(exc)
            if cause is None or cause.errno not in _FULL:
                raise
            raise CheckpointError(
                f"cannot save {path}: {_FULL[cause.errno]} (nothing was written under that name; "
                f"the previous checkpoints are intact); free some space, then continue with "
                "train.py --resume"
            ) from None

    # ------------------------------------------------------------------------------ loading

    def _load_file(self, f: str) -> Dict[str, Any]:
        if self._preloaded is not None and self._preloaded[0] == f:
            data, self._preloaded = self._preloaded[1], None
            return data
        try:
            return super()._load_file(f)
        except Exception as exc:
            raise CheckpointError(f"{f} is not a readable checkpoint (truncated or corrupt: "
                                  f"{_short(exc)})") from None

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if resume and self.has_checkpoint():
            return self._resume()
        return self.load(path, checkpointables=[])

    def _resume(self) -> Dict[str, Any]:
        """Load the last checkpoint; if it is unreadable or another run's, the newest good one."""
        last = self.get_checkpoint_file()
        problems: List[str] = []
        for path in [last, *self._fallbacks(last)]:
            why = self._unusable(path)
            if why is not None:
                problems.append(why)
                logger.warning("%s", why)
                continue
            if path != last:
                logger.warning("resuming from the previous good checkpoint %s (iteration %s) "
                               "instead of %s", path, self._preloaded[1].get("iteration"), last)
            return self.load(path)
        raise CheckpointError(
            f"{problems[0]}; no other checkpoint of {self.save_dir} can be resumed from: "
            f"train the run again with train.py --clear"
        )

    def _unusable(self, path: str) -> Optional[str]:
        """Why ``path`` cannot be resumed from (None: it can; then it is read and cached)."""
        if not os.path.isfile(path):
            return f"{path} (named by last_checkpoint) is missing"
        try:
            data = self._load_file(path)
        except CheckpointError as exc:
            return str(exc)
        recorded = data.get(RUN_KEY) if isinstance(data, dict) else None
        if self.run is not None and isinstance(recorded, dict) and not same_run(recorded, self.run):
            return f"{path} is the checkpoint of another run ({recorded.get('name')})"
        self._preloaded = (path, data)
        return None

    def _fallbacks(self, last: str) -> List[str]:
        """The run's other checkpoints to resume from, in order: the periodic ones
        (``model_<iteration>.pth``), newest first, then ``model_final.pth``, then
        ``model_best.pth`` (a best model rewinds the run to its iteration: the last resort)."""
        order = {"model_final.pth": -1, "model_best.pth": -2}
        found = []
        for p in Path(self.save_dir).glob("*.pth"):
            if p.name.startswith(".") or os.path.abspath(p) == os.path.abspath(last):
                continue
            it = _iteration_from_name(p)
            found.append((it if it is not None else order.get(p.name, -3), str(p)))
        return [p for _, p in sorted(found, reverse=True)]


__all__ = ["CheckpointError", "RUN_KEY", "RunCheckpointer", "check_checkpoint_run",
           "checkpoint_run", "read_checkpoint_header"]


def build_eval_model(cfg, load_model=None):
    """The model a prediction runs: ``load_model(cfg)`` where another backend is given
    (:mod:`motion_keypoints.export.runtime`), else detectron2's ``build_model(cfg)`` in eval mode
    with ``cfg.MODEL.WEIGHTS`` loaded. The one loader of both families' predictors."""
    if load_model is not None:
        return load_model(cfg)
    from detectron2.modeling import build_model

    model = build_model(cfg)
    model.eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    return model
