"""The output ledger: what the kit wrote, so that a re-run may replace its own earlier output.

One JSON line per written file (its resolved path, kind, command and sha256), per output folder
(``"dir": true``) or per removal (``"removed": true``), appended under an exclusive ``flock``
to one file outside the output folders (:func:`ledger_path`), so no folder gets a hidden file.
Past :data:`LEDGER_COMPACT_BYTES` the ledger is rewritten with the last entry of each path that
still exists (:func:`compact_ledger`). The policy that reads it is
:mod:`motion_keypoints.io.outputs`; this module only keeps the record. Nothing here imports
torch or detectron2.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Dict, Optional

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


#: Parsed ledger of this process: (file, bytes read, path -> last entry).
_CACHE: Dict[str, object] = {"file": None, "offset": 0, "entries": {}, "by_sha": {}}


def ledger() -> Dict[str, dict]:
    """Resolved path -> its last ledger entry (removed ones dropped); read incrementally."""
    path = ledger_path()
    entries: Dict[str, dict] = _CACHE["entries"]  # type: ignore[assignment]
    try:
        size = path.stat().st_size
    except OSError:
        return {}
    if _CACHE["file"] != str(path) or size < int(_CACHE["offset"]):  # another file, or rewritten
        _CACHE.update(file=str(path), offset=0, entries={}, by_sha={})
        entries = _CACHE["entries"]  # type: ignore[assignment]
    by_sha: Dict[str, dict] = _CACHE["by_sha"]  # type: ignore[assignment]
    with open(path, "rb") as f:
        f.seek(int(_CACHE["offset"]))
        data = f.read()
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


def append_ledger(entry: dict) -> None:
    """Append one entry (compacting the ledger when it grew past its limit); a ledger that
    cannot be written is logged, not raised."""
    path = ledger_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:  # one short line: appended whole
            fcntl.flock(f, fcntl.LOCK_EX)  # compaction holds it too (below)
            f.write(json.dumps(entry, sort_keys=True) + "\n")
            f.flush()
            large = f.tell() > LEDGER_COMPACT_BYTES
        if large:
            compact_ledger()
    except OSError as exc:  # outputs still get written; re-runs then need --overwrite
        logger.warning("cannot record %s in the output ledger %s: %s", entry.get("path"), path,
                       exc)


def compact_ledger() -> int:
    """Rewrite the ledger with the last entry of each path that still exists (temporary file,
    then rename, under the same lock appends take); returns the entries kept."""
    path = ledger_path()
    with open(path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = [e for p, e in ledger().items() if os.path.lexists(p)]
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(e, sort_keys=True) + "\n" for e in kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    _CACHE.update(file=None, offset=0, entries={}, by_sha={})
    return len(kept)


def record(p: Path, kind: str, command: str) -> None:
    """Record file ``p`` (just written by ``command``) as the kit's ``kind`` output."""
    append_ledger({"path": str(p), "kind": kind, "command": command,
                   "sha256": file_sha256(p)})
