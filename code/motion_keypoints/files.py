"""The bottom of the package: the path type and file hashing, importing nothing of the kit, so
the output policy (:mod:`.io.outputs`, :mod:`.io.ledger`, :mod:`.io.lock`) and the helpers above
it (:mod:`.utils`) share them without an import cycle."""

from __future__ import annotations

import hashlib
import os
from typing import Union

PathLike = Union[str, os.PathLike]


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()
