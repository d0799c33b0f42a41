"""Nothing lost: no command writes over one of its inputs.

Every command that writes asks :func:`check_output` about each output path before writing. The
inputs it protects are:

- the data folder's CSVs (``train_df.csv``, ``sample_submission.csv``, ``test_labels.csv``,
  ``label_overrides.csv``) and everything under its ``images/`` folder;
- an augmentation set's files (a folder holding ``manifest.json``);
- a run's checkpoints (``*.pth``, ``last_checkpoint``) and its ``run_info.json``/``split.json``;
- any other file the command reads (``inputs``: e.g. the predictions a command fuses or smooths).

Paths are compared after resolving symlinks and ``..``, so ``DATA/../DATA/train_df.csv`` or a link
to it is refused too (and a hard link to an existing input, compared by inode).

:func:`check_writable_file` / :func:`check_writable_dir` then check the kind (a file where a file
is expected, a folder where a folder is) and that the place can be written, by trying it (a
nameless temporary file: as root ``os.access`` says yes even on a read-only disk).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

from ..errors import UserError
from ..utils import PathLike

#: The data folder's CSVs (inputs of every stage).
DATA_CSVS = ("train_df.csv", "sample_submission.csv", "test_labels.csv", "label_overrides.csv")
#: A run's files that only training writes.
RUN_FILES = ("last_checkpoint", "run_info.json", "split.json", "best_checkpoint.json", "run.json")


class OutputError(UserError, ValueError):
    """An output path that would overwrite an input, or cannot be written."""


def _resolve(path: PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def protected_paths(
    data_root: Optional[PathLike] = None,
    runs: Iterable[PathLike] = (),
    aug_sets: Iterable[PathLike] = (),
    inputs: Iterable[PathLike] = (),
) -> List[Tuple[Path, str, bool]]:
    """``(path, what it is, is_folder)`` for every input of a command."""
    out: List[Tuple[Path, str, bool]] = []
    for given in inputs:
        p = _resolve(given)
        out.append((p, f"its input {given}", p.is_dir()))
    if data_root is not None:
        root = _resolve(data_root)
        for name in DATA_CSVS:
            out.append((root / name, f"the data folder's {name}", False))
        out.append((root / "images", "the data folder's images", True))
    for run in runs:
        run_dir = _resolve(run)
        for name in RUN_FILES:
            out.append((run_dir / name, f"run {run_dir.name}'s {name}", False))
        if run_dir.is_dir():
            for ckpt in run_dir.glob("*.pth"):
                out.append((_resolve(ckpt), f"run {run_dir.name}'s checkpoint {ckpt.name}", False))
    for set_dir in aug_sets:
        d = _resolve(set_dir)
        out.append((d, f"augmentation set {d.name}", True))
    return out


def check_output(
    path: PathLike,
    *,
    data_root: Optional[PathLike] = None,
    runs: Iterable[PathLike] = (),
    aug_sets: Iterable[PathLike] = (),
    inputs: Iterable[PathLike] = (),
    option: str = "--out",
) -> Path:
    """Refuse an output path that is (or lies inside) an input; returns the path as given.

    ``inputs`` are further files (or folders) the command reads. A path that is a checkpoint
    (``*.pth``) is always refused: no command writes checkpoints except training, which does not
    use this function.
    """
    target = _resolve(path)
    if target.suffix == ".pth":
        raise OutputError(f"{option} {path}: refusing to write over a checkpoint; choose another file")
    for protected, what, is_folder in protected_paths(data_root, runs, aug_sets, inputs):
        if target == protected or (is_folder and _inside(target, protected)) or _same_file(
            target, protected
        ):
            raise OutputError(
                f"{option} {path} would overwrite {what} ({protected}), an input of this command; "
                "choose another output path"
            )
    return Path(path)


def _same_file(a: Path, b: Path) -> bool:
    """Two existing paths naming the same file (a hard link)."""
    try:
        return a.is_file() and b.is_file() and os.path.samefile(a, b)
    except OSError:
        return False


def check_writable_file(path: PathLike, option: str = "--out") -> Path:
    """An output *file*: not an existing folder, and its folder can be created and written."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name, e.g. {p / 'out.csv'}")
    _check_folder_writable(p.parent if str(p.parent) else Path("."), option, path)
    return p


def check_writable_dir(path: PathLike, option: str = "--out") -> Path:
    """An output *folder*: not an existing file, and it can be created and written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{option} {path} is a file; give a folder (it is created if missing)")
    if not p.exists() and p.suffix.lower() in (".csv", ".json", ".jpg", ".png", ".txt"):
        raise OutputError(
            f"{option} {path} looks like a file name but a folder is expected; give a folder, "
            f"e.g. {p.with_suffix('')}"
        )
    _check_folder_writable(p, option, path)
    return p


def _check_folder_writable(folder: Path, option: str, given: PathLike) -> None:
    probe = folder
    while not probe.exists():  # the nearest existing ancestor decides
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(
            f"{option} {given}: {probe} is a file, not a folder; choose a path under a folder"
        )
    if probe.exists() and not _can_write_in(probe):
        raise OutputError(
            f"{option} {given}: cannot write in {probe} (permission denied or read-only); "
            "choose a writable place"
        )


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: ``os.access``, then a real try (a temporary
    file, removed at once), since ``os.access`` says yes to root even on a read-only disk."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True
