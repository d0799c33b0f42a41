"""The tiny HRNet learns from scratch (CPU minutes; marked slow). Its own module so that, under
``make test``, a second test process trains the session's shared heatmap run while the first
trains the R-CNN (tests/test_learning.py)."""

import json

import pytest
from conftest import validation_truth_and_baseline


@pytest.mark.slow
def test_tiny_hrnet_learns_from_scratch_on_ground_truth_boxes(heatmap_run, learn_data):
    """tiny-hrnet (conftest.HEATMAP_ITERS iterations from scratch), scored by its trainer on the
    validation images' ground-truth boxes, reaches at most 25 % of the mean-pose baseline."""
    run = heatmap_run[0]
    info = json.loads((run / "run_info.json").read_text())
    _, _, baseline = validation_truth_and_baseline(run, learn_data)
    print(f"tiny HRNet, {info['max_iter']} it: validation RMSE on ground-truth boxes "
          f"{info['val_rmse']:.2f} px, mean pose {baseline:.2f} px "
          f"(ratio {info['val_rmse'] / baseline:.3f}); {heatmap_run[1]:.0f} s CPU")
    assert info["family"] == "heatmap"
    assert info["val_rmse"] <= 0.25 * baseline
