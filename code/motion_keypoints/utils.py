"""Small shared helpers: atomic file writes, hashing, seeding."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


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


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) torch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % (2**32))
    with contextlib.suppress(ImportError):
        import torch

        torch.manual_seed(seed)
