"""End to end: the one-command demo on a reduced size (the trained runs predicted and fused into
a submission by the commands: tests/test_learning.py)."""

import json

import pytest

from motion_keypoints.data.layout import DataPaths
from motion_keypoints.submission import check_submission


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_reduced_size(demo_output):
    demo, sub, stdout = demo_output
    assert check_submission(sub, DataPaths.from_root(demo / "synthetic").sample_submission) == []
    assert "demo done" in stdout
    assert "ensemble" in stdout.lower() and "rmse" in stdout.lower()
    assert list((sub.parent / "samples").glob("*.jpg")), "no pictures of the ensemble"
    for run in ("demo", "demo_crop", "hrnet_demo"):
        assert (demo / "runs" / run / "predictions_test.csv").is_file()
        # the pictures show every member, of both families
        assert list((demo / "runs" / run / "samples").glob("*.jpg")), f"no pictures of {run}"
    # runs trained on augmentation sets hold out exactly the same validation frames (and
    # trained on none of them)
    splits = [json.loads((demo / "runs" / r / "split.json").read_text()) for r in ("demo", "demo_crop")]
    assert splits[0]["val"] == splits[1]["val"]
    assert not set(splits[0]["val"]) & set(splits[0]["train"])
    # the heatmap model of the demo: trained on the first set, predicted on the first R-CNN's boxes
    info = json.loads((demo / "runs" / "hrnet_demo" / "run_info.json").read_text())
    assert info["family"] == "heatmap" and info["aug_set"] == "demo"
    assert "--boxes-from " + str(demo / "runs" / "demo") in stdout
    # the ensemble tables list the heatmap member by family beside the R-CNN members, and the
    # fusion of both families
    rows = [line.split() for line in stdout.splitlines()]
    assert any(r[:2] == ["hrnet_demo", "heatmap"] for r in rows), stdout
    assert any(r[:2] == ["demo", "rcnn"] for r in rows), stdout
    assert any(len(r) > 2 and r[0] == "ensemble" and r[2] == "rcnn+heatmap" for r in rows), stdout
    assert any(r[:2] == ["fusion", "rcnn"] for r in rows), stdout
