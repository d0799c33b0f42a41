"""End to end: trained tiny runs -> predict (flip TTA) -> ensemble -> a valid submission.csv,
and the one-command demo on a reduced size."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from motion_keypoints.data.layout import DataPaths
from motion_keypoints.io.tables import read_keypoint_csv
from motion_keypoints.meta import COORD_COLUMNS
from motion_keypoints.submission import check_submission


@pytest.mark.slow
def test_two_runs_predict_and_ensemble_into_a_valid_submission(learned_predictions, heatmap_run,
                                                               heatmap_predictions, learn_data,
                                                               tmp_path):
    """The session's two learned runs, one per family (the R-CNN, and the heatmap model on its
    boxes), predicted with flip TTA by predict.py, fused by ensemble.py."""
    runs = [learned_predictions, heatmap_run[0]]
    for run in runs:
        pred = pd.read_csv(run / "predictions_test.csv")
        sample = pd.read_csv(DataPaths.from_root(learn_data).sample_submission)
        assert list(pred["image"]) == list(sample["image"])
        assert (run / "predictions_test_noflip.csv").is_file()
    # the plain mean, with every choice made on validation forced off (the defaults choose the
    # method, flip TTA and left/right alignment on validation: their own tests cover them)
    val = run_script("ensemble", "--runs", *runs, "--data-root", learn_data, "--split", "val",
                     "--method", "mean", "--flip", "on", "--lr-align", "off", "--smooth", "off",
                     "--out", tmp_path / "val.csv")
    print(val.stdout)
    assert "flip" in val.stdout.lower()
    fused = read_keypoint_csv(tmp_path / "val.csv")
    truth = read_keypoint_csv(DataPaths.from_root(learn_data).train_csv).set_index("image")
    truth = truth.loc[fused["image"]]
    members = []
    for run in runs:
        p = pd.read_csv(run / "predictions_val.csv").set_index("image").loc[fused["image"]]
        assert p["detected"].all(), "the trained tiny runs should find the person in every frame"
        members.append(p[list(COORD_COLUMNS)].to_numpy())
    # the written ensemble is the members' mean, row by row for the same images (a misaligned
    # or mis-read member fails here), and it is not just one member
    np.testing.assert_allclose(fused[list(COORD_COLUMNS)].to_numpy(), np.mean(members, axis=0), atol=1e-6)
    assert len(truth) == len(fused)

    sub = tmp_path / "submission.csv"
    run_script("ensemble", "--runs", *runs, "--data-root", learn_data, "--split", "test", "--out", sub)
    assert check_submission(sub, DataPaths.from_root(learn_data).sample_submission) == []
    out = run_script("check_submission", "--data-root", learn_data, sub)
    assert out.returncode == 0
    assert list((tmp_path / "samples").glob("*.jpg")), "no ensemble pictures"


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
