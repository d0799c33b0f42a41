"""The Keypoint R-CNN family (detectron2), on top of :mod:`motion_keypoints.engine`: the kit's
image reader as a DatasetMapper (:mod:`.mapper`), the COCO 17 -> K predictor transfer
(:mod:`.weights`), training (:mod:`.trainer`) and batched prediction with flip TTA and person
rules (:mod:`.predictor`). ``.config``, ``.datasets`` and ``.evaluator`` re-export the engine's
(shared by every family) under their old names. It never imports the heatmap family.

Importing this package does no work; :func:`import_detectron2` imports detectron2 with a message
that says how to install it.
"""

import importlib


def import_detectron2():
    """Import detectron2, or fail with the command that installs it."""
    try:
        return importlib.import_module("detectron2")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "detectron2 is not installed in this environment. Run `make test` or "
            "`bash scripts/setup_env.sh` from the repository root, then use .venv/bin/python."
        ) from exc
