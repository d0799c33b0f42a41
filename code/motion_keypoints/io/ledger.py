"""The output ledger: what the kit wrote, so that a re-run may replace its own earlier output.

One JSON line per written file (its resolved path, kind, command and sha256), per output folder
(``"dir": true``) or per removal (``"removed": true``), appended under an exclusive ``flock``
to one file outside the output folders (:func:`ledger_path`), so no folder gets a hidden file.
Past :data:`LEDGER_COMPACT_BYTES` (and twice its size after the last compaction) the ledger is
rewritten with the last entry of each path that still exists (:func:`compact_ledger`), under a
first line that names the rewrite. A rewrite replaces the file, so every writer takes the lock
on the file that is at the path *now* (:func:`_locked`) and every reader starts over when the
first line changed: nothing appended beside a compaction is lost. The policy that reads it is
:mod:`motion_keypoints.io.outputs`; this module only keeps the record. Nothing here imports
torch or detectron2.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, TextIO

from ..files import file_sha256

logger = logging.getLogger("motion_keypoints")

#: Environment variable naming the ledger file (default: under ``$XDG_STATE_HOME``).
LEDGER_ENV = "MOTION_KEYPOINTS_LEDGER"
#: The ledger is compacted (entries of files that are gone dropped) when it grows past this.
LEDGER_COMPACT_BYTES = 4 << 20


def ledger_path() -> Path:
    """The ledger file: ``$MOTION_KEYPOINTS_LEDGER``, else
    ``$XDG_STATE_HOME/motion_keypoints/outputs.jsonl`` (``~/.local/state`` by default)."""
    given = os.environ.get(LEDGER_ENV)
    if given:
        return Path(given)
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return Path(state) / "motion_keypoints" / "outputs.jsonl"


#: Parsed ledger of this process: (which file, bytes read, path -> last entry, sha -> entry).
_CACHE: Dict[str, object] = {"file": None, "offset": 0, "entries": {}, "by_sha": {}}


def ledger() -> Dict[str, dict]:
    """Resolved path -> its last ledger entry (removed ones dropped); read incrementally, from
    the start again when the file was rewritten (another path, inode or first line)."""
    path = ledger_path()
    try:
        f = open(path, "rb")
    except OSError:
        return {}
    with f:
        which = (str(path), os.fstat(f.fileno()).st_ino, f.readline())
        if _CACHE["file"] != which or os.fstat(f.fileno()).st_size < int(_CACHE["offset"]):
            _CACHE.update(file=which, offset=0, entries={}, by_sha={})
        f.seek(int(_CACHE["offset"]))
        data = f.read()
    entries: Dict[str, dict] = _CACHE["entries"]  # type: ignore[assignment]
    by_sha: Dict[str, dict] = _CACHE["by_sha"]  # type: ignore[assignment]
    complete = data[: data.rfind(b"\n") + 1]  # a line still being appended waits
    _CACHE["offset"] = int(_CACHE["offset"]) + len(complete)
    for line in complete.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if not isinstance(e, dict) or "path" not in e:
            continue
        if e.get("removed"):
            entries.pop(e["path"], None)
        else:
            entries[e["path"]] = e
            if e.get("sha256"):
                by_sha[e["sha256"]] = e
    return entries


def entry_by_content(sha: str) -> Optional[dict]:
    """A ledger entry of a file with this content (a copy of a kit output, e.g. in a copied run
    folder, is the kit's output too)."""
    ledger()
    return _CACHE["by_sha"].get(sha)  # type: ignore[union-attr]


@contextmanager
def _locked(path: Path) -> Iterator[TextIO]:
    """The ledger opened for appending, under its exclusive lock, on the file that is at
    ``path`` once the lock is held: a compaction replaces the file, and a handle opened before
    it would lock and write the old one, which nobody reads again."""
    while True:
        f = open(path, "a", encoding="utf-8")
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield f
                return
        finally:
            f.close()


def _compaction_due(f: TextIO) -> bool:
    """Past LEDGER_COMPACT_BYTES and twice the size the last compaction left (its first line
    says): a ledger of live entries only is not rewritten again at every append."""
    size = f.tell()
    if size <= LEDGER_COMPACT_BYTES:
        return False
    with open(f.name, "rb") as r:
        try:
            left = int(json.loads(r.readline()).get("compacted_bytes", 0))
        except (ValueError, AttributeError, TypeError):
            left = 0
    return size > 2 * left


def append_ledger(entry: dict) -> None:
    """Append one entry (compacting the ledger when it is due); a ledger that cannot be
    written is logged, not raised."""
    path = ledger_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path) as f:  # one short line: appended whole
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            if _compaction_due(f):
                _compact(path)
    except OSError as exc:  # outputs still get written; re-runs then need --overwrite
        logger.warning("cannot record %s in the output ledger %s: %s", entry.get("path"), path,
                       exc)


def compact_ledger() -> int:
    """Rewrite the ledger with the last entry of each path that still exists (temporary file,
    then rename, under the lock appends take); returns the entries kept."""
    path = ledger_path()
    with _locked(path):
        return _compact(path)


def _compact(path: Path) -> int:
    """The rewrite itself; the caller holds the lock (:func:`_locked`). Its first line names
    this rewrite and its size (readers start over, :func:`_compaction_due` waits for growth)."""
    kept = [json.dumps(e, sort_keys=True) + "\n" for p, e in ledger().items()
            if os.path.lexists(p)]
    head = {"compacted": uuid.uuid4().hex, "compacted_bytes": sum(map(len, kept))}
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(head) + "\n")
        f.writelines(kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(kept)


def record(p: Path, kind: str, command: str) -> None:
    """Record file ``p`` (just written by ``command``) as the kit's ``kind`` output."""
    append_ledger({"path": str(p), "kind": kind, "command": command,
                   "sha256": file_sha256(p)})
