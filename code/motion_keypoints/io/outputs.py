"""Nothing lost, by construction: the one write path of the kit.

Every file the kit writes goes through :func:`output_file` (a temporary file in the same folder,
fsynced, then ``os.replace``d into place), every output folder through :func:`output_dir`, and
both ask the same policy first. The policy knows the kit's artefacts wherever they are, not only
the inputs a command was handed (:func:`artefact_kind`):

- a **data folder** (``train_df.csv`` or ``sample_submission.csv`` beside ``images/``) and
  everything in it: nothing writes into it, except the command building it (``make_synthetic``);
- a **run folder** (``run.json``, ``run_info.json``, ``last_checkpoint``, or ``config.yaml`` with
  a ``*.pth``): its records, checkpoints and predictions are never replaced, except by the
  training that holds the run's lock (:func:`motion_keypoints.io.lock.held_runs`) or by the
  command that wrote that very file before (below); a new file (a smoothed CSV, a tagged
  prediction) may be added;
- an **augmentation set** (a folder with ``manifest.json``), written only by the augmentation
  building it;
- any **image or video** and any **checkpoint** (``*.pth``);
- every **input** of the running command (:func:`register_inputs`; the kit's readers register
  what they read, and commands register their input options before any work).

Paths are compared after resolving ``..`` and symlinks; an existing file with several hard links
is never replaced (it may be an artefact elsewhere), and inputs are also compared by inode.

Replacing an existing file is allowed when it is the kit's own earlier output of the same kind
(a re-run: the kit keeps a ledger of what it wrote, one JSON line per file with its resolved
path, kind, command and sha256, and the file must still have that hash; the ledger is one file
outside the output folders, :func:`ledger_path`, so no folder gets a hidden file; it is kept by
:mod:`motion_keypoints.io.ledger`), or when the user passes ``--overwrite`` (read once, by the
error boundary ``cli/_run.run_command``, for every command).
Artefacts and inputs are never replaced, even with ``--overwrite``.

The policy is per process: :func:`command_policy` (entered by ``run_command``) starts it afresh
for each command, so a command added later inherits it without listing its outputs anywhere.
Nothing here imports torch or detectron2.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

from ..errors import UserError
from ..files import file_sha256

# The ledger lives in io/ledger.py; its public names stay importable from here (to change a
# setting such as LEDGER_COMPACT_BYTES, set it on motion_keypoints.io.ledger).
from .ledger import LEDGER_COMPACT_BYTES as LEDGER_COMPACT_BYTES
from .ledger import LEDGER_ENV as LEDGER_ENV
from .ledger import append_ledger, entry_by_content, ledger, ledger_path, record
from .ledger import compact_ledger as compact_ledger

logger = logging.getLogger("motion_keypoints")

#: The command-line flag that allows replacing an existing file the kit did not write.
OVERWRITE_FLAG = "--overwrite"
#: A data folder holds one of these beside ``images/``.
DATA_MARKERS = ("train_df.csv", "sample_submission.csv")
#: Run files only training writes (a new file with one of these names would change the run).
RUN_RECORDS = ("run.json", "run_info.json", "last_checkpoint", "split.json",
               "best_checkpoint.json", "config.yaml", "metrics.json", "log.txt", ".lock")
#: Name patterns of files a training writes into its run folder (``--clear`` removes these).
RUN_WRITTEN = RUN_RECORDS + ("model_*.pth", "events.out.tfevents.*", "predictions_*.csv",
                             "keypoints_rmse.json", "inference", "samples", ".neptune")
#: Image and video files: artefacts wherever they are.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Suffixes that say "a file" where a folder is expected.
FILE_SUFFIXES = (".csv", ".json", ".jpg", ".png", ".txt", ".mp4", ".pth", ".yaml")


class OutputError(UserError, ValueError):
    """An output path that would overwrite an input or an artefact, or cannot be written."""


@dataclass
class Policy:
    """The output policy of one command (one process)."""

    command: str = "library"
    overwrite: bool = False
    #: resolved input path -> (st_dev, st_ino) when it existed at registration
    inputs: Dict[Path, Optional[Tuple[int, int]]] = field(default_factory=dict)
    #: output folders this process is writing (resolved path -> kind)
    held: Dict[Path, str] = field(default_factory=dict)


_POLICY = Policy()
#: Temporary files :func:`output_file` is writing now (a writer that checks its own temporary
#: file, as ``write_submission`` does, does not make it an input).
_TEMPS: Set[Path] = set()


def policy() -> Policy:
    return _POLICY


@contextlib.contextmanager
def command_policy(command: str, overwrite: bool = False) -> Iterator[Policy]:
    """A fresh policy for one command; the previous one is restored afterwards (in-process
    calls of several commands, as the tests make, do not leak inputs or held folders)."""
    global _POLICY
    previous, _POLICY = _POLICY, Policy(command=command, overwrite=bool(overwrite))
    try:
        yield _POLICY
    finally:
        _POLICY = previous


def register_inputs(*paths) -> None:
    """Files or folders the running command reads: never written over (a folder: nothing in it)."""
    for given in paths:
        if given is None or str(given) == "":
            continue
        p = resolve(given)
        if p in _TEMPS:
            continue
        try:
            st = os.stat(p)
            key: Optional[Tuple[int, int]] = (st.st_dev, st.st_ino)
        except OSError:
            key = None
        _POLICY.inputs[p] = key


def resolve(path) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


# ------------------------------------------------------------------ what a path is


def folder_kind(d: Path) -> Optional[str]:
    """``"data folder"``, ``"augmentation set"``, ``"run folder"`` or None for a folder."""
    try:
        if not d.is_dir():
            return None
        if (d / "images").is_dir() and any((d / n).is_file() for n in DATA_MARKERS):
            return "data folder"
        if (d / "manifest.json").is_file():
            return "augmentation set"
        if any((d / n).exists() for n in ("run.json", "run_info.json", "last_checkpoint")):
            return "run folder"
        if (d / "config.yaml").is_file() and any(d.glob("*.pth")):
            return "run folder"
    except OSError:
        return None
    return None


def enclosing_artefacts(path) -> List[Tuple[str, Path]]:
    """``(kind, folder)`` of every kit folder ``path`` is or lies in, innermost first."""
    p = resolve(path)
    found = []
    for d in (p, *p.parents):
        kind = folder_kind(d)
        if kind is not None:
            found.append((kind, d))
    return found


def file_kind(path) -> Optional[str]:
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == ".pth":
        return "checkpoint"
    return None


def artefact_kind(path) -> Optional[str]:
    """What kit artefact ``path`` (resolved: ``..``, symlinks) is or lies inside: ``"data
    folder"``, ``"augmentation set"``, ``"run folder"``, ``"image"``, ``"video"``,
    ``"checkpoint"``, ``"input"`` (of the running command) or None. A data folder or a set
    anywhere above wins over the file's own kind."""
    p = resolve(path)
    if _input_of(p) is not None:
        return "input"
    kinds = [k for k, _ in enclosing_artefacts(p)]
    for k in ("data folder", "augmentation set", "run folder"):
        if k in kinds:
            return k
    return file_kind(p)


def _input_of(p: Path) -> Optional[Path]:
    """The registered input ``p`` is, lies in, or is a hard link of."""
    key = None
    with contextlib.suppress(OSError):
        st = os.stat(p)
        key = (st.st_dev, st.st_ino)
    for given, ino in _POLICY.inputs.items():
        if _inside(p, given):
            return given
        if key is not None and key == ino and _still(given, ino):  # a hard link of a live input
            return given
    return None


def _still(path: Path, key: Tuple[int, int]) -> bool:
    """Whether ``path`` still names the file ``key`` (its inode may be reused once it is gone)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key


def _held_runs() -> Set[Path]:
    from .held import held_runs

    return {resolve(r) for r in held_runs()}


def _held_root(p: Path) -> Optional[Path]:
    """The innermost folder this process writes that ``p`` lies in (an output folder, a run)."""
    best = None
    for root in list(_POLICY.held) + list(_held_runs()):
        if root in p.parents and (best is None or best in root.parents):
            best = root
    return best


# ------------------------------------------------------------------ what the ledger says


def _own_entry(p: Path) -> Optional[dict]:
    """The ledger entry of an existing file the kit wrote and nobody changed since."""
    entry = ledger().get(str(p))
    try:
        sha = file_sha256(p)
    except OSError:
        return None
    if entry is not None and not entry.get("dir") and entry.get("sha256") == sha:
        return entry
    return entry_by_content(sha)


def _claim(p: Path) -> Optional[dict]:
    """The ledger's record of folder ``p`` as a kit output folder."""
    entry = ledger().get(str(p))
    return entry if entry is not None and entry.get("dir") else None


# ------------------------------------------------------------------ checks


def _refuse(option: str, given, why: str, fix: str = "choose another output path") -> OutputError:
    return OutputError(f"{option} {given} {why}; {fix}")


def check_output_file(path, kind: str, option: str = "--out", probe: bool = True) -> Path:
    """Check that ``path`` may be written as an output file of ``kind`` (see the module);
    returns ``path`` as given. Writes nothing."""
    given, p = Path(path), resolve(path)
    if p.is_dir():
        raise _refuse(option, given, "is a folder", f"give a file name, e.g. {given / 'out.csv'}")
    if probe:
        _check_folder_writable(p.parent, option, given)
    source = _input_of(p)
    if source is not None:
        raise _refuse(option, given, f"would overwrite {source}, an input of this command")
    held = _held_root(p)
    runs = _held_runs()
    for what, folder in enclosing_artefacts(p.parent):
        if folder == held or folder in runs:
            continue
        if what != "run folder":
            raise _refuse(option, given, f"lies in the {what} {folder}: the kit never writes "
                          f"into a {what} it is not building")
        if p.parent == folder and _reserved(p.name):
            raise _refuse(option, given, f"is a record of the run {folder}, written only by "
                          "its training")
    if file_kind(p) == "checkpoint" and not any(_inside(p, r) for r in runs):
        raise _refuse(option, given, "is a checkpoint: only a training writes checkpoints, "
                      "into its own run folder")
    if os.path.lexists(p):
        _check_existing(p, given, kind, option, held, runs)
    return given


def _reserved(name: str) -> bool:
    return name in RUN_RECORDS or fnmatch.fnmatch(name, "*.pth")


def _check_existing(p: Path, given: Path, kind: str, option: str, held: Optional[Path],
                    runs: Set[Path]) -> None:
    try:
        links = os.stat(p).st_nlink
    except OSError:
        return
    if links > 1:
        raise _refuse(option, given, f"is one of {links} hard links to the same file (it may be "
                      "an artefact elsewhere); the kit does not replace it")
    entry = _own_entry(p)
    if entry is not None and entry.get("kind") == kind and _same_command(entry):
        return  # a re-run replaces its own earlier output
    if held is not None and held in runs:
        return  # a training writes its own run (it holds the run's lock)
    what = _artefact_description(p, held)
    if what is not None:
        raise _refuse(option, given, f"exists and is {what}: the kit never replaces it, even "
                      "with --overwrite")
    if not _POLICY.overwrite:
        earlier = f" (it is a {entry.get('kind')} of {entry.get('command')})" if entry else ""
        raise _refuse(option, given, f"exists and is not an earlier {kind} output of the kit"
                      f"{earlier}", "choose another path, or pass --overwrite to replace it")


def _same_command(entry: dict) -> bool:
    """The entry was written by the running command (library calls, outside any command, match
    any command of the same kind)."""
    mine, theirs = _POLICY.command, entry.get("command", "library")
    return "library" in (mine, theirs) or mine == theirs


def _artefact_description(p: Path, held: Optional[Path]) -> Optional[str]:
    own = file_kind(p)
    if own is not None:
        return f"a{'n' if own[0] in 'aeiou' else ''} {own}"
    for what, folder in enclosing_artefacts(p.parent):
        if folder != held:
            return f"a file of the {what} {folder}"
    return None


def check_output_dir(path, kind: str, option: str = "--out") -> Path:
    """Check that ``path`` may be used as an output folder of ``kind``: not a file, not an input,
    not in a data folder, set or run, and (when it exists and holds files) the kit's own earlier
    output folder of the same kind, or ``--overwrite`` given for a folder the kit did not make
    (its files are still checked one by one). Returns ``path`` as given; writes nothing."""
    given, p = Path(path), resolve(path)
    if os.path.lexists(p) and not p.is_dir():
        raise _refuse(option, given, "is a file", "give a folder (it is created if missing)")
    if not p.exists() and p.suffix.lower() in FILE_SUFFIXES:
        raise _refuse(option, given, "looks like a file name but a folder is expected",
                      f"give a folder, e.g. {given.with_suffix('')}")
    _check_folder_writable(p, option, given)
    source = _input_of(p)
    if source is not None:
        raise _refuse(option, given, f"is (or lies in) {source}, an input of this command")
    own = _claim(p) if p.is_dir() else None
    runs = _held_runs()
    for what, folder in enclosing_artefacts(p):
        if folder in runs or folder in _POLICY.held:
            continue
        if folder == p and own is not None and own.get("kind") == kind:
            continue  # a re-run into its own earlier output
        where = "is" if folder == p else "lies in"
        raise _refuse(option, given, f"{where} the {what} {folder}: the kit never writes into "
                      f"a {what} it is not building")
    if own is None and p.is_dir() and not _POLICY.overwrite and any(p.iterdir()):
        raise _refuse(option, given, f"exists, holds files and is not an earlier {kind} output "
                      "of the kit", "choose a new or empty folder, or pass --overwrite")
    return given


def _check_folder_writable(folder: Path, option: str, given) -> None:
    probe = folder
    while not probe.exists():  # the nearest existing ancestor decides
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise _refuse(option, given, f": {probe} is a file, not a folder",
                      "choose a path under a folder")
    if probe.exists() and not _can_write_in(probe):
        raise _refuse(option, given, f": cannot write in {probe} (permission denied or "
                      "read-only)", "choose a writable place")


def _can_write_in(folder: Path) -> bool:
    """``os.access``, then a real try (a nameless temporary file): as root ``os.access`` says
    yes even on a read-only disk."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


# ------------------------------------------------------------------ writing


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # some file systems cannot fsync dirs
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def output_file(path, kind: str, option: str = "--out") -> Iterator[Path]:
    """The one way the kit writes a file: check ``path`` (see the module), yield a temporary
    path in the same folder (same suffix, so cv2/pandas infer the format), then fsync it, rename
    it over ``path`` and record it in the ledger. On any error (a full disk included) the
    temporary file is removed and ``path`` keeps its old content (or stays absent)."""
    check_output_file(path, kind, option, probe=False)
    p = resolve(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}", dir=p.parent)
    os.close(fd)
    tmp = Path(name)
    _TEMPS.add(resolve(tmp))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get normal modes
        _fsync(tmp)
        os.replace(tmp, p)
        _fsync(p.parent, directory=True)
        record(p, kind, _POLICY.command)
    finally:
        _TEMPS.discard(resolve(tmp))
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path, text: str, kind: str, option: str = "--out") -> None:
    with output_file(path, kind, option) as tmp:
        tmp.write_text(text)


def claim_dir(path, kind: str, option: str = "--out") -> Path:
    """Check an output folder (:func:`check_output_dir`), create it and record it in its ledger
    as the kit's ``kind`` output (so a re-run may use it again); returns the resolved folder.
    The files in it are written by other commands (e.g. the demo's stages), each checked."""
    check_output_dir(path, kind, option)
    p = resolve(path)
    p.mkdir(parents=True, exist_ok=True)
    if (_claim(p) or {}).get("kind") != kind:
        append_ledger({"path": str(p), "kind": kind, "command": _POLICY.command, "dir": True})
    return p


@contextlib.contextmanager
def output_dir(path, kind: str, option: str = "--out") -> Iterator[Path]:
    """Check an output folder (:func:`check_output_dir`), create it, record it in its ledger as
    the kit's ``kind`` output and hold it while the body writes: files inside are checked one by
    one (never an input, an image or a file the kit did not write without ``--overwrite``), but
    the folder itself (a data folder being built, a set) is this command's."""
    p = claim_dir(path, kind, option)
    previous = _POLICY.held.get(p)
    _POLICY.held[p] = kind
    try:
        yield Path(path)
    finally:
        if previous is None:
            _POLICY.held.pop(p, None)
        else:
            _POLICY.held[p] = previous


@contextlib.contextmanager
def editing(folder) -> Iterator[Path]:
    """A deliberate edit of a kit folder by a script (e.g. a test or a notebook fixing a data
    folder's labels): inside the body ``folder`` is held as this process's own, the files in it
    are no longer protected as inputs read earlier, and existing files may be replaced as with
    ``--overwrite``; images, videos, checkpoints and hard links stay refused. No command uses
    this."""
    global _POLICY
    p = resolve(folder)
    previous = _POLICY
    inputs = {k: v for k, v in previous.inputs.items() if not _inside(k, p)}  # being edited
    _POLICY = Policy(command=previous.command, overwrite=True, inputs=inputs,
                     held={**previous.held, p: "edit"})
    try:
        yield Path(folder)
    finally:
        _POLICY = previous


def remove_output(path) -> bool:
    """Remove a file the kit wrote (a stale output of an earlier run): only when it lies in a
    folder this process writes or the ledger names it unchanged. Returns whether it was removed;
    anything else is left, with a log line."""
    p = resolve(path)
    if not p.is_file() or _input_of(p) is not None:
        return False
    held = _held_root(p)
    if held is None and _own_entry(p) is None:
        logger.warning("left %s: the kit did not write it (not in its ledger %s)", p,
                       ledger_path())
        return False
    p.unlink()
    append_ledger({"path": str(p), "removed": True})
    return True


# ------------------------------------------------------------------ run folders

#: How many folders a run folder may hold before ``--clear`` refuses to search it.
MAX_RUN_SUBFOLDERS = 2000


def check_run_place(run_dir, data_root=None, set_dirs=(), option: str = "OUTPUT_DIR") -> Path:
    """Refuse, before anything is written or removed, a run folder that is, lies in or holds a
    data folder (``data_root`` or any other) or an augmentation set. Returns the resolved path."""
    r = resolve(run_dir)
    for given in [data_root, *set_dirs]:
        if not given:
            continue
        g = resolve(given)
        if _inside(r, g) or r in g.parents:
            how = "is" if r == g else ("lies in" if g in r.parents else "holds")
            raise OutputError(f"{option} {run_dir} {how} {given}, an input of the run; give the "
                              "run its own folder, e.g. outputs/<run name>")
    for what, folder in enclosing_artefacts(r):
        if what != "run folder":
            how = "is" if folder == r else "lies in"
            raise OutputError(f"{option} {run_dir} {how} the {what} {folder}; give the run its "
                              "own folder, e.g. outputs/<run name>")
    if r.is_dir():
        seen = 0
        for top, dirs, _ in os.walk(r):
            seen += 1
            kind = folder_kind(Path(top)) if Path(top) != r else None
            if kind in ("data folder", "augmentation set"):
                raise OutputError(f"{option} {run_dir} holds the {kind} {top}; a run folder "
                                  "never holds data: give the run its own folder")
            if seen > MAX_RUN_SUBFOLDERS:
                raise OutputError(f"{option} {run_dir} holds more than {MAX_RUN_SUBFOLDERS} "
                                  "folders: it is not a run folder; give the run its own folder")
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
    return r


def run_written(run_dir, name: str) -> bool:
    """Whether the top-level entry ``name`` of a run folder is something a training (or the
    kit's ledger of the folder) says the kit wrote."""
    if any(fnmatch.fnmatch(name, pat) for pat in RUN_WRITTEN + (".*.tmp*",)):
        return True
    entry = str(resolve(run_dir) / name)
    return entry in ledger() or any(k.startswith(entry + os.sep) for k in ledger())
