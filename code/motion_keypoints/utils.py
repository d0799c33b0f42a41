"""Small shared helpers: atomic file writes, hashing, seeding, the cores a process may use."""

from __future__ import annotations

import contextlib
import json
import os
import random
from pathlib import Path
from typing import Iterator, Optional

from .files import PathLike as PathLike
from .files import file_sha256 as file_sha256


@contextlib.contextmanager
def atomic_path(path: PathLike, kind: str = "output", option: str = "--out") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    This is :func:`motion_keypoints.io.outputs.output_file`, the kit's one write path: the
    output policy is asked first (no input or artefact is ever written over; re-runs replace
    only their own output of the same ``kind``), readers never see a half-written file, and an
    interrupted run leaves the old file (or none). The temporary name keeps the suffix, so
    writers that infer the format from it (cv2.imwrite, pandas) work unchanged.
    """
    from .io.outputs import output_file

    with output_file(path, kind, option) as tmp:
        yield tmp


def atomic_write_text(path: PathLike, text: str, kind: str = "output", option: str = "--out") -> None:
    with atomic_path(path, kind, option) as tmp:
        tmp.write_text(text)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)


def read_json_record(path: PathLike, key: str, error: type, fix: str,
                     missing: Optional[str] = None) -> Optional[dict]:
    """The JSON object in ``path`` (a run's ``run.json``, an export's ``export.json``...), None
    when there is no file; ``error`` (a UserError class) with ``fix`` when it is not valid JSON or
    has no ``key``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc}); {fix}") from None
    if not isinstance(record, dict) or key not in record:
        raise error(f"{path}: {missing or f'no {key!r}'}; {fix}")
    return record


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_budget() -> int:
    """Compute threads this process may use: :func:`available_cores`, no more than
    ``OMP_NUM_THREADS`` where that is a positive integer (the limit a user or a test runner set
    for this process, which torch itself honours at start and the kit keeps)."""
    cores = available_cores()
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(omp)) if omp.isdigit() and int(omp) > 0 else cores
