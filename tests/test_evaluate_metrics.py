"""PCK, per-camera RMSE and the mean-pose baseline (issue 19): pure functions on arrays, and
evaluate.py on CSVs written here."""

import cv2
import numpy as np
import pytest

from motion_keypoints.cli.evaluate import main as evaluate_main
from motion_keypoints.data.layout import DataPaths
from motion_keypoints.evaluation import metrics
from motion_keypoints.io.tables import keypoints_frame, write_keypoint_csv
from motion_keypoints.meta import KEYPOINT_NAMES

K = len(KEYPOINT_NAMES)


def test_pck_counts_keypoints_within_a_fraction_of_the_box_size():
    truth = np.zeros((2, K, 2))
    truth[:, 1] = [100.0, 50.0]  # box 100 x 50: size 100
    pred = truth.copy()
    pred[0, 0] += [4.0, 3.0]  # 5 px off: within 0.05 x 100
    pred[1, 0] += [6.0, 8.0]  # 10 px off: within 0.1, not 0.05
    pred[:, 2] += [30.0, 0.0]  # 30 px off on both images
    p05, p10 = metrics.pck(pred, truth, 0.05), metrics.pck(pred, truth, 0.1)
    name0, name2 = KEYPOINT_NAMES[0], KEYPOINT_NAMES[2]
    assert p05[name0] == 0.5 and p10[name0] == 1.0
    assert p05[name2] == 0.0 and p10[name2] == 0.0
    assert p05[KEYPOINT_NAMES[3]] == 1.0
    np.testing.assert_allclose(metrics.box_size(truth), [100.0, 100.0])
    with pytest.raises(ValueError, match="alpha"):
        metrics.pck(pred, truth, 0)


def test_group_rmse_and_ratio():
    truth = np.zeros((3, K, 2))
    pred = truth + np.array([1.0, 2.0, 4.0])[:, None, None]
    per = metrics.group_rmse(pred, truth, ["B", "A", "B"])
    assert per == {"A": pytest.approx(2.0), "B": pytest.approx(np.sqrt((1 + 16) / 2))}
    assert metrics.ratio_to(5.0, 10.0) == 0.5
    assert np.isnan(metrics.ratio_to(5.0, None)) and np.isnan(metrics.ratio_to(5.0, 0.0))
    with pytest.raises(ValueError, match="group names"):
        metrics.group_rmse(pred, truth, ["A"])


def _data_root(root, n=8, w=64, h=48, seed=0):
    """train_df.csv and images: frames of cameras A and B."""
    paths = DataPaths.from_root(root)
    paths.train_images.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"001-1-1-01-Z1_{'AB'[i % 2]}-{i:07d}.jpg" for i in range(n)]
    for name in names:
        cv2.imwrite(str(paths.train_images / name), np.zeros((h, w, 3), np.uint8))
    kps = np.stack([rng.uniform(4, w - 4, (n, K)), rng.uniform(4, h - 4, (n, K))], axis=-1)
    write_keypoint_csv(keypoints_frame(names, kps), paths.train_csv)
    return names, kps


def test_evaluate_prints_the_mean_pose_beside_the_rmse_with_pck_and_cameras(tmp_path, capsys):
    names, kps = _data_root(tmp_path / "data")
    val, truth = names[5:], kps[5:]
    pred = truth + np.random.default_rng(1).normal(0, 1.0, truth.shape)
    write_keypoint_csv(keypoints_frame(val, pred), tmp_path / "pred.csv")
    assert evaluate_main(["--pred", str(tmp_path / "pred.csv"),
                          "--truth", str(tmp_path / "data" / "train_df.csv")]) == 0
    out = capsys.readouterr().out
    # the mean pose of the training rows other than the evaluated images, scaled into them
    base = metrics.mean_pose_baseline(kps[:5], [(64, 48)] * 5, [(64, 48)] * 3)
    base_rmse = metrics.rmse(base, truth)
    rmse = metrics.rmse(np.round(pred, 3), truth)
    assert f"mean pose (average training pose) {base_rmse:.3f} px on the same images" in out
    assert f"(ratio {rmse / base_rmse:.2f})" in out
    assert "PCK@0.05 %" in out and "PCK@0.1 %" in out
    cams = metrics.group_rmse(np.round(pred, 3), truth, ["B", "A", "B"])
    lines = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("camera ")}
    assert lines["A"][-1] == f"{cams['A']:.3f}" and lines["B"][-1] == f"{cams['B']:.3f}"


def test_evaluate_predicting_the_mean_pose_says_it_is_no_better(tmp_path, capsys):
    names, kps = _data_root(tmp_path / "data")
    base = metrics.mean_pose_baseline(kps[:5], [(64, 48)] * 5, [(64, 48)] * 3)
    write_keypoint_csv(keypoints_frame(names[5:], base), tmp_path / "pred.csv")
    assert evaluate_main(["--pred", str(tmp_path / "pred.csv"),
                          "--truth", str(tmp_path / "data" / "train_df.csv")]) == 0
    assert "no better than predicting the mean pose" in capsys.readouterr().out


def test_evaluate_writes_an_error_picture_named_after_the_predictions(tmp_path, capsys):
    names, kps = _data_root(tmp_path / "data")
    pred = kps[5:] + np.random.default_rng(2).normal(0, 2.0, kps[5:].shape)
    for stem in ("a", "b"):
        write_keypoint_csv(keypoints_frame(names[5:], pred), tmp_path / f"{stem}.csv")
    argv = ["--truth", str(tmp_path / "data" / "train_df.csv")]
    assert evaluate_main(["--pred", str(tmp_path / "a.csv"), *argv, "--html"]) == 0
    assert evaluate_main(["--pred", str(tmp_path / "b.csv"), *argv]) == 0
    assert evaluate_main(["--pred", str(tmp_path / "b.csv"), *argv]) == 0  # a re-run replaces its own
    assert f"error picture: {tmp_path / 'b_evaluate_errors.png'}" in capsys.readouterr().out
    img = cv2.imread(str(tmp_path / "a_evaluate_errors.png"))
    assert img is not None and min(img.shape[:2]) > 500
    assert (tmp_path / "b_evaluate_errors.png").is_file() and not (tmp_path / "b_evaluate_errors.html").exists()
    page = (tmp_path / "a_evaluate_errors.html").read_text()
    assert "data:image/png;base64," in page and "camera" in page and names[5] in page
    assert evaluate_main(["--pred", str(tmp_path / "a.csv"), *argv, "--no-picture"]) == 0
    assert "error picture" not in capsys.readouterr().out


def test_predict_val_prints_the_mean_pose_beside_the_rmse(tmp_path, capsys):
    from motion_keypoints.cli.predict import _val_report

    names, kps = _data_root(tmp_path / "data")
    pred = kps[5:] + 1.0
    pred[1] = np.nan  # the R-CNN found nobody on this image
    keypoints_frame(names[5:], pred).to_csv(tmp_path / "predictions_val.csv", index=False)
    assert _val_report({"out": str(tmp_path / "predictions_val.csv")}, "val", tmp_path / "data") == 0
    out = capsys.readouterr().out
    keep = [0, 2]
    base = metrics.mean_pose_baseline(kps[:5], [(64, 48)] * 5, [(64, 48)] * 2)
    assert (f"validation (2 images; 1 without a detection left out): RMSE "
            f"{metrics.rmse(pred[keep], kps[5:][keep]):.3f} px; mean pose (average training pose) "
            f"{metrics.rmse(base, kps[5:][keep]):.3f} px") in out
    assert "PCK@0.1 %" in out and "camera B" in out
    assert _val_report({"out": "unused"}, "test", tmp_path / "data") == 0
    assert capsys.readouterr().out == ""


def test_predict_validation_table_comes_with_its_error_picture(tmp_path):
    """``predict --split val``'s table (validation_report) writes the same error picture as
    evaluate.py, and a re-run replaces its own picture."""
    from motion_keypoints.evaluation.evaluate import validation_report

    names, kps = _data_root(tmp_path / "data")
    pred = kps[5:] + np.random.default_rng(3).normal(0, 2.0, kps[5:].shape)
    write_keypoint_csv(keypoints_frame(names[5:], pred), tmp_path / "p.csv")
    png = tmp_path / "p_errors.png"
    for _ in range(2):
        lines = validation_report(tmp_path / "p.csv", tmp_path / "data", png)
        assert lines[-1] == f"error picture: {png}"
    img = cv2.imread(str(png))
    assert img is not None and min(img.shape[:2]) > 500
