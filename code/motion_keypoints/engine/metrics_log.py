"""``metrics.json`` pruning: a resumed run drops the lines it will write again."""

from __future__ import annotations

import json
from pathlib import Path


def prune_metrics_json(output_dir: str, start_iter: int) -> int:
    """Drop metrics.json lines at or after ``start_iter`` so a resumed run does not duplicate
    them. Returns the number of dropped lines."""
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            it = json.loads(line).get("iteration", -1)
        except json.JSONDecodeError:
            dropped += 1  # a line cut by the interruption
            continue
        if it >= start_iter:
            dropped += 1
        else:
            kept.append(line)
    # In place, not by rename: detectron2's JSONWriter already holds the file open for appending.
    with open(path, "r+") as f:
        f.write("".join(f"{x}\n" for x in kept))
        f.truncate()
    return dropped
