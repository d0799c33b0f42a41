"""Shared fixtures. The compat import comes first so detectron2 always sees the Pillow patch."""

import motion_keypoints.compat  # noqa: F401

import pytest


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """A small synthetic data folder in the competition layout (read-only for tests: copy it
    before modifying anything)."""
    from motion_keypoints.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic(root, n_train=24, n_test=8, width=320, height=180, seed=0)
    return root
