"""The competition evaluator is shared by every family: :mod:`motion_keypoints.engine.evaluator`;
the names stay importable from their old place."""

from ...engine.evaluator import (  # noqa: F401  (re-exports)
    KeypointRMSEEvaluator,
    dicts_keypoints,
    top_person,
)
