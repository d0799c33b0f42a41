"""The one place where detectron2 is imported and patched for today's libraries.

detectron2 v0.6 refers to ``PIL.Image.LINEAR``, which Pillow 10 removed (it is ``BILINEAR``).
Every module of the kit imports detectron2 through :func:`import_detectron2` (or imports this
module before ``import detectron2``), so the patch is applied exactly once, before detectron2
is loaded.
"""

from __future__ import annotations

import importlib


def _patch_pillow() -> None:
    from PIL import Image

    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR  # type: ignore[attr-defined]


_patch_pillow()


def import_detectron2():
    """Import detectron2 (after the compat patches) or fail with the command that installs it."""
    try:
        return importlib.import_module("detectron2")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "detectron2 is not installed in this environment. Run `make test` or "
            "`bash scripts/setup_env.sh` from the repository root, then use .venv/bin/python."
        ) from exc


def detectron2_version() -> str:
    return import_detectron2().__version__
