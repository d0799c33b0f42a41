"""The run's datasets are shared by every family: :mod:`motion_keypoints.engine.datasets`; the
names stay importable from their old place."""

from ...engine.datasets import (  # noqa: F401  (re-exports)
    RunData,
    SetupError,
    augmented_set_dir,
    frozen_dicts,
    make_dataset_dicts,
    register_dataset,
    register_run_datasets,
)
