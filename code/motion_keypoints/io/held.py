"""The run folders this process holds (:class:`motion_keypoints.io.lock.RunLock`), and those its
launching process holds: the state both the lock (which takes and releases them) and the output
policy (:mod:`.outputs`, which lets a training write into its own run) read, kept below both so
neither imports the other in a circle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Set

LOCK_FILE = ".lock"

#: Run folders held by this process (resolved path -> its lock).
_HELD: Dict[Path, object] = {}


#: Set by a holder for the processes it starts (``--num-gpus N`` workers are spawned, not
#: forked): ``<pid>=<run folder>`` entries separated by os.pathsep.
HELD_ENV = "MOTION_KEYPOINTS_RUN_LOCKS"


def held_runs() -> Set[Path]:
    """The run folders (resolved) this process holds a :class:`RunLock` on, and those its
    launching process holds right now (a training's worker processes write into its run)."""
    held = set(_HELD)
    for entry in filter(None, os.environ.get(HELD_ENV, "").split(os.pathsep)):
        pid, _, folder = entry.partition("=")
        if folder and _holder_pid(Path(folder)) == pid:
            held.add(Path(folder))
    return held


def _holder_pid(run_dir: Path) -> Optional[str]:
    try:
        text = (run_dir / LOCK_FILE).read_text()
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("pid")
