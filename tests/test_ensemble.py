"""Fusion on hand-built arrays, and the ensemble/evaluate CLIs on fake run folders."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from motion_keypoints.cli.ensemble import main as ensemble_main
from motion_keypoints.cli.evaluate import main as evaluate_main
from motion_keypoints.data.layout import DataPaths
from motion_keypoints.ensemble.driver import run_ensemble
from motion_keypoints.ensemble.fuse import (
    METHODS,
    EnsembleError,
    fuse,
    fuse_with_fallback,
    keypoint_rmse_weights,
    rmse_weights,
)
from motion_keypoints.evaluation import metrics
from motion_keypoints.io.outputs import editing
from motion_keypoints.io.predictions import read_predictions
from motion_keypoints.io.problems import DataError
from motion_keypoints.io.tables import keypoints_frame, write_keypoint_csv
from motion_keypoints.meta import COORD_COLUMNS, FLIP_INDEX, FLIP_PAIRS, KEYPOINT_NAMES
from motion_keypoints.submission import check_submission

K = len(KEYPOINT_NAMES)
REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48


def poses(n, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(4, W - 4, (n, K)), rng.uniform(4, H - 4, (n, K))], axis=-1)


# ------------------------------------------------------------------------------------ fusion


@pytest.mark.parametrize("method", METHODS)
def test_identical_members_give_the_member(method):
    base = poses(5, 0)
    coords = np.stack([base] * 3)
    out = fuse(coords, method, weights=[0.2, 0.3, 0.5], scores=np.full((3, 5, K), 0.7))
    np.testing.assert_allclose(out, base)


def test_mean_and_median_by_hand():
    c = np.zeros((3, 1, K, 2))
    c[:, 0, :, 0] = np.array([1.0, 2.0, 6.0])[:, None]
    c[:, 0, :, 1] = np.array([5.0, 4.0, 0.0])[:, None]
    np.testing.assert_allclose(fuse(c, "mean")[0], np.tile([3.0, 3.0], (K, 1)))
    np.testing.assert_allclose(fuse(c, "median")[0], np.tile([2.0, 4.0], (K, 1)))


def test_weighted_by_rmse_is_inverse_square():
    w = rmse_weights([1.0, 2.0])
    np.testing.assert_allclose(w, [0.8, 0.2])
    c = np.stack([np.zeros((1, K, 2)), np.full((1, K, 2), 10.0)])
    np.testing.assert_allclose(fuse(c, "weighted", weights=w), 2.0)
    with pytest.raises(ValueError, match="positive"):
        rmse_weights([1.0, 0.0])


def test_weighted_by_scores_is_per_keypoint():
    c = np.stack([np.zeros((1, K, 2)), np.full((1, K, 2), 10.0)])
    s = np.ones((2, 1, K))
    s[0, 0, 0] = 3.0  # keypoint 0: member 0 three times as sure
    s[:, 0, 1] = [-1.0, 2.0]  # negative score counts as zero weight
    s[:, 0, 2] = [0.0, 0.0]  # no weight at all: plain mean
    out = fuse(c, "weighted", scores=s)[0]
    np.testing.assert_allclose(out[0], 2.5)
    np.testing.assert_allclose(out[1], 10.0)
    np.testing.assert_allclose(out[2], 5.0)
    np.testing.assert_allclose(out[3:], 5.0)
    with pytest.raises(ValueError, match="weights .*or scores"):
        fuse(c, "weighted")


def test_robust_drops_a_planted_outlier():
    rng = np.random.default_rng(1)
    truth = poses(20, 1)
    c = truth[None] + rng.normal(0, 1.0, (4, 20, K, 2))
    c[2, 3, 5] += 80.0
    res = fuse_with_fallback(c, "robust", k=2.0)
    np.testing.assert_allclose(res.coords[3, 5], c[[0, 1, 3], 3, 5].mean(axis=0))
    assert np.linalg.norm(fuse(c, "mean")[3, 5] - truth[3, 5]) > 15
    assert np.linalg.norm(res.coords[3, 5] - truth[3, 5]) < 3
    assert res.dropped_per_model[2] >= 1
    strict = fuse_with_fallback(c, "robust", k=3.0)
    np.testing.assert_allclose(strict.coords[3, 5], res.coords[3, 5])
    assert strict.dropped_per_model.sum() < 0.02 * c[..., 0].size  # ordinary scatter is kept


def test_robust_with_two_members_is_the_mean():
    c = np.stack([poses(3, 2), poses(3, 3)])
    np.testing.assert_allclose(fuse(c, "robust"), c.mean(axis=0))


def test_missing_member_is_filled_from_the_others():
    c = np.stack([poses(4, s) for s in range(3)])
    c[1, 2] = np.nan
    res = fuse_with_fallback(c, "mean")
    np.testing.assert_allclose(res.coords[2], c[[0, 2], 2].mean(axis=0))
    np.testing.assert_allclose(res.coords[[0, 1, 3]], c[:, [0, 1, 3]].mean(axis=0))
    assert res.fills_per_model.tolist() == [0, 1, 0]
    assert res.fallback_count == 0 and res.fallback_images == []


def test_all_missing_uses_the_fallback_and_counts_it():
    c = np.stack([poses(3, s) for s in range(2)])
    c[:, 1] = np.nan
    c[0, 2] = np.nan
    fallback = poses(3, 9)
    res = fuse_with_fallback(c, "median", fallback=fallback)
    np.testing.assert_allclose(res.coords[1], fallback[1])
    np.testing.assert_allclose(res.coords[2], c[1, 2])
    assert res.fallback_count == 1 and res.fallback_images == [1]
    assert res.fills_per_model.tolist() == [1, 0]  # image 1 had nobody to fill from
    assert np.isfinite(res.coords).all()
    with pytest.raises(ValueError, match="1 images have no prediction"):
        fuse_with_fallback(c, "mean")


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(EnsembleError, match="valid: mean, median, weighted, robust"):
        fuse(np.zeros((1, 1, K, 2)), "vote")


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(METHODS),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(0, 2**31 - 1),
)
def test_fusion_stays_within_the_members(method, m, n, seed):
    rng = np.random.default_rng(seed)
    c = rng.uniform(-50, 50, (m, n, K, 2))
    c[rng.random((m, n, K)) < 0.3] = np.nan
    out = fuse(c, method, weights=rng.uniform(0.1, 1, m), scores=rng.uniform(0, 1, (m, n, K)))
    known = np.isfinite(c).all(-1).any(0)
    assert np.isfinite(out[known]).all() and np.isnan(out[~known]).all()
    lo = np.where(np.isnan(c), np.inf, c).min(axis=0)
    hi = np.where(np.isnan(c), -np.inf, c).max(axis=0)
    assert np.all(out[known] >= lo[known] - 1e-9) and np.all(out[known] <= hi[known] + 1e-9)


# ------------------------------------------------------------------------ fake data and runs


def make_data_root(root, n_train=8, n_test=5, labels=True, seed=0):
    """A tiny data root: W x H images, train_df.csv, sample_submission.csv, test_labels.csv."""
    paths = DataPaths.from_root(root)
    rng = np.random.default_rng(seed)
    names = {"train": [f"tr_{i:03d}.jpg" for i in range(n_train)],
             "test": [f"te_{i:03d}.jpg" for i in range(n_test)]}
    for split, folder in (("train", paths.train_images), ("test", paths.test_images)):
        folder.mkdir(parents=True)
        for name in names[split]:
            cv2.imwrite(str(folder / name), rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    train, test = poses(n_train, seed + 1), poses(n_test, seed + 2)
    with editing(root):  # the test builds a data folder by hand
        write_keypoint_csv(keypoints_frame(names["train"], train), paths.train_csv)
        write_keypoint_csv(keypoints_frame(names["test"], np.zeros_like(test)),
                           paths.sample_submission)
        if labels:
            write_keypoint_csv(keypoints_frame(names["test"], test), paths.test_labels)
    return {"train_images": names["train"], "test_images": names["test"], "train": train, "test": test}


def write_predictions(path, images, coords, scores=None, detected=None, boxes=None):
    """A predictions CSV in the predictor's format (undetected rows: NaN coordinates); ``boxes``
    (N, 4) default to one box over most of the image."""
    n = len(images)
    detected = np.ones(n, bool) if detected is None else np.asarray(detected, bool)
    coords = np.where(detected[:, None, None], coords, np.nan)
    scores = np.ones((n, K)) if scores is None else scores
    df = pd.DataFrame(coords.reshape(n, -1), columns=list(COORD_COLUMNS))
    df.insert(0, "image", images)
    for j, name in enumerate(KEYPOINT_NAMES):
        df[f"score_{name}"] = np.where(detected, scores[:, j], 0.0)
    boxes = np.tile([2.0, 2.0, W - 2.0, H - 2.0], (n, 1)) if boxes is None else np.asarray(boxes)
    for j, c in enumerate(("box_x1", "box_y1", "box_x2", "box_y2")):
        df[c] = np.where(detected, boxes[:, j], np.nan)
    df["box_score"] = np.where(detected, 0.9, 0.0)
    df["detected"] = detected.astype(int)
    df["width"], df["height"] = W, H
    df.to_csv(path, index=False, float_format="%.3f")


def make_run(run_dir, split, images, coords, detected=None, noflip=None, val_rmse=1.0,
             names=KEYPOINT_NAMES, scores=None, family=None, boxes=None):
    run_dir.mkdir(parents=True, exist_ok=True)
    info = {"name": run_dir.name, "keypoint_names": list(names),
            "flip_pairs": [list(p) for p in FLIP_PAIRS], "val_rmse": val_rmse, "data_root": "x"}
    if family is not None:
        info["family"] = family
    (run_dir / "run_info.json").write_text(json.dumps(info))
    write_predictions(run_dir / f"predictions_{split}.csv", images, coords, scores, detected, boxes)
    if noflip is not None:
        write_predictions(run_dir / f"predictions_{split}_noflip.csv", images, noflip, scores, detected)
    return run_dir


def rounded(x):
    return np.round(x, 3)


@pytest.fixture
def three_runs(tmp_path):
    """Three test-split runs: B misses image 0, everybody misses image 4, C has an outlier."""
    root = tmp_path / "data"
    d = make_data_root(root)
    rng = np.random.default_rng(5)
    imgs, truth = d["test_images"], d["test"]
    preds = [truth + rng.normal(0, 0.5, truth.shape) for _ in range(3)]
    preds[2][1, 3] += 30.0
    det = [np.ones(5, bool) for _ in range(3)]
    for m in range(3):
        det[m][4] = False
    det[1][0] = False
    runs = [make_run(tmp_path / "outputs" / n, "test", imgs, p, d_)
            for n, p, d_ in zip("ABC", preds, det)]
    return root, d, runs, [rounded(np.where(x[:, None, None], p, np.nan)) for p, x in zip(preds, det)]


# ------------------------------------------------------------------------------ the CLI


def test_ensemble_cli_writes_a_valid_submission(three_runs, tmp_path, capsys):
    root, d, runs, preds = three_runs
    out = tmp_path / "submissions" / "submission.csv"
    argv = ["--runs", *map(str, runs), "--data-root", str(root), "--method", "robust",
            "--out", str(out), "--samples", "3"]
    assert ensemble_main(argv) == 0
    text = capsys.readouterr().out
    sample = DataPaths.from_root(root).sample_submission
    assert check_submission(out, sample) == []
    sub = pd.read_csv(out)
    assert sub["image"].tolist() == d["test_images"]
    got = sub[list(COORD_COLUMNS)].to_numpy().reshape(-1, K, 2)

    expected = fuse(np.stack(preds), "robust")
    np.testing.assert_allclose(got[:4], expected[:4])
    assert abs(got[1, 3] - d["test"][1, 3]).max() < 3  # C's outlier was dropped
    sizes = [(W, H)] * len(d["train"])
    fallback = metrics.mean_pose_baseline(d["train"], sizes, [(W, H)])[0]
    np.testing.assert_allclose(got[4], fallback)  # nobody detected image 4: the mean pose

    assert "filled from the other members: A 0, B 1, C 0 images" in text
    assert "on 1 images nobody detected: te_004.jpg" in text
    ens = next(line for line in text.splitlines() if line.startswith("ensemble (robust)"))
    rmse = metrics.rmse(got, d["test"])
    assert ens.split()[-1] == f"{rmse:.3f}"
    for run in runs:
        img = cv2.imread(str(run / "samples" / "test_samples.jpg"))
        assert img is not None and img.shape[1] == 3 * 400
    assert (out.parent / "samples" / "submission_samples.jpg").is_file()  # named after --out
    assert f"samples: {runs[0] / 'samples' / 'test_samples.jpg'}" in text

    before = out.read_bytes()
    assert ensemble_main(argv) == 0  # idempotent
    assert out.read_bytes() == before


def test_val_split_prints_members_ensemble_and_no_flip_side_by_side(tmp_path, capsys):
    root = tmp_path / "data"
    d = make_data_root(root, n_train=10)
    val = d["train_images"][6:]
    truth = d["train"][6:]
    rng = np.random.default_rng(3)
    runs, flip, plain = [], [], []
    for i, name in enumerate(("A", "B")):
        flip.append(rounded(truth + rng.normal(0, 0.5, truth.shape)))
        plain.append(rounded(truth + rng.normal(0, 2.0, truth.shape)))
        runs.append(make_run(tmp_path / name, "val", val, flip[-1], noflip=plain[-1],
                             val_rmse=1.0 + i))
    out = tmp_path / "ens" / "val.csv"
    summary = run_ensemble(runs, root, "val", "weighted", out, samples=0, echo=print)
    text = capsys.readouterr().out
    w = rmse_weights([1.0, 2.0])
    fused = fuse(np.stack(flip), "weighted", weights=w)
    assert summary.rmse["ensemble"] == pytest.approx(metrics.rmse(fused, truth))
    assert summary.rmse_noflip["ensemble"] == pytest.approx(
        metrics.rmse(fuse(np.stack(plain), "weighted", weights=w), truth))
    for i, lab in enumerate("AB"):
        assert summary.rmse[lab] == pytest.approx(metrics.rmse(flip[i], truth))
        assert summary.rmse_noflip[lab] == pytest.approx(metrics.rmse(plain[i], truth))
    header = text.splitlines()[1].split()
    assert header[-5:] == ["weight", "RMSE", "RMSE", "no", "flip"]
    row = next(line for line in text.splitlines() if line.startswith("A "))
    assert row.split()[-2:] == [f"{summary.rmse['A']:.3f}", f"{summary.rmse_noflip['A']:.3f}"]
    assert "0.800" in row
    written = pd.read_csv(out)
    assert written["image"].tolist() == val


def test_val_fallback_is_the_mean_pose_of_the_other_training_images(tmp_path):
    root = tmp_path / "data"
    d = make_data_root(root, n_train=10)
    val, truth = d["train_images"][6:], d["train"][6:]
    det = [True, True, False, True]
    runs = [make_run(tmp_path / n, "val", val, truth, det) for n in "AB"]
    summary = run_ensemble(runs, root, "val", "median", tmp_path / "v.csv", samples=0)
    assert summary.fallback_images == [val[2]] and summary.fills == {"A": 0, "B": 0}
    expected = metrics.mean_pose_baseline(d["train"][:6], [(W, H)] * 6, [(W, H)])[0]
    np.testing.assert_allclose(summary.coords[2], expected)
    written = pd.read_csv(tmp_path / "v.csv")[list(COORD_COLUMNS)].to_numpy().reshape(-1, K, 2)
    np.testing.assert_array_equal(written, summary.coords)


def test_test_split_without_labels_prints_no_rmse(tmp_path, capsys):
    root = tmp_path / "data"
    d = make_data_root(root, labels=False)
    run = make_run(tmp_path / "A", "test", d["test_images"], d["test"])
    summary = run_ensemble([run], root, out=tmp_path / "s.csv", samples=0, echo=print)
    text = capsys.readouterr().out
    assert summary.rmse == {} and "RMSE not computed" in text
    assert "RMSE" not in text.splitlines()[1]


def test_runs_with_other_keypoints_refuse_naming_the_difference(three_runs, capsys):
    root, d, runs, _ = three_runs
    info = json.loads((runs[1] / "run_info.json").read_text())
    info["keypoint_names"][3] = "left_earlobe"
    (runs[1] / "run_info.json").write_text(json.dumps(info))
    assert ensemble_main(["--runs", str(runs[0]), str(runs[1]), "--data-root", str(root), "--samples", "0",
                   "--out", str(root.parent / "x.csv")]) == 1
    err = capsys.readouterr().err
    assert "different keypoint definitions" in err and "left_earlobe" in err and "left_ear" in err


def test_runs_with_other_images_refuse_naming_them(three_runs):
    root, d, runs, _ = three_runs
    imgs = d["test_images"][:-1] + ["stranger.jpg"]
    make_run(runs[1], "test", imgs, d["test"])
    with pytest.raises(EnsembleError, match=r"different image sets: 1 missing \(te_004.jpg\), "
                                              r"1 extra \(stranger.jpg\)"):
        run_ensemble(runs, root, samples=0)


def test_missing_predictions_name_the_predict_command(three_runs):
    root, _, runs, _ = three_runs
    (runs[2] / "predictions_test.csv").unlink()
    cmd = f"python code/predict.py --run {runs[2]} --data-root {root} --split test"
    with pytest.raises(FileNotFoundError, match=cmd.replace(".", r"\.")):
        run_ensemble(runs, root, samples=0)


def test_unknown_method_and_missing_val_rmse(three_runs, capsys):
    root, _, runs, _ = three_runs
    with pytest.raises(SystemExit):
        ensemble_main(["--runs", str(runs[0]), "--data-root", str(root), "--method", "vote"])
    err = capsys.readouterr().err
    assert "invalid choice: 'vote'" in err and all(m in err.split("choose from")[1] for m in METHODS)
    with pytest.raises(EnsembleError, match="valid methods: mean, median, weighted, robust"):
        run_ensemble(runs, root, method="vote")
    make_run(runs[0], "test", [f"te_{i:03d}.jpg" for i in range(5)], poses(5, 0), val_rmse=None)
    with pytest.raises(EnsembleError, match="--weight-by score"):
        run_ensemble(runs, root, method="weighted", samples=0)


def test_bad_prediction_rows_are_named(tmp_path):
    images = ["a.jpg", "b.jpg"]
    path = tmp_path / "predictions_test.csv"
    write_predictions(path, images, poses(2, 0))
    df = pd.read_csv(path)
    df.loc[1, "nose_y"] = np.nan
    df.loc[0, "detected"] = 2
    df.to_csv(path, index=False)
    with pytest.raises(DataError) as exc:
        read_predictions(path)
    text = str(exc.value)
    assert f"{path}: line 2, column detected: must be 0 or 1" in text
    assert f"{path}: line 3, column nose_y: no finite value although detected=1" in text


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_prints_overall_and_per_keypoint_rmse(tmp_path, capsys):
    truth = poses(6, 0)
    images = [f"i{i}.jpg" for i in range(6)]
    write_keypoint_csv(keypoints_frame(images + ["extra.jpg"], np.concatenate([truth, poses(1, 1)])),
                       tmp_path / "truth.csv")
    pred = truth + np.random.default_rng(0).normal(0, 2, truth.shape)
    write_keypoint_csv(keypoints_frame(images, pred), tmp_path / "pred.csv")
    assert evaluate_main(["--pred", str(tmp_path / "pred.csv"), "--truth", str(tmp_path / "truth.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert ": 6 images" in lines[0]
    table = {line.split()[0]: line.split()[-1] for line in lines[2:]}
    assert table["overall"] == f"{metrics.rmse(pred, truth):.3f}"
    for name, v in metrics.per_keypoint_rmse(pred, truth).items():
        assert table[name] == f"{v:.3f}"

    write_predictions(tmp_path / "p.csv", images, pred, detected=[1, 1, 0, 1, 1, 1])
    argv = ["--pred", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "truth.csv")]
    assert evaluate_main(argv) == 1
    assert "line 4: no prediction for image 'i2.jpg'" in capsys.readouterr().err
    assert evaluate_main([*argv, "--skip-missing"]) == 0
    out = capsys.readouterr().out
    keep = [0, 1, 3, 4, 5]
    assert "skipped 1 images without prediction: i2.jpg" in out
    assert f"overall {metrics.rmse(rounded(pred[keep]), truth[keep]):.3f}" in " ".join(out.split())


@pytest.mark.slow
def test_scripts_run_from_the_repo_root(three_runs, tmp_path):
    root, d, runs, _ = three_runs
    out = tmp_path / "sub.csv"
    run = [sys.executable, "code/ensemble.py", "--runs", *map(str, runs), "--data-root", str(root),
           "--out", str(out), "--samples", "0"]
    res = subprocess.run(run, cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run([sys.executable, "code/check_submission.py", "--data-root", str(root), str(out)],
                         cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("OK"), res.stdout + res.stderr
    res = subprocess.run([sys.executable, "code/evaluate.py", "--pred", str(out), "--truth",
                          str(DataPaths.from_root(root).test_labels)], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and "overall" in res.stdout, res.stderr


# ------------------------------------------------------------- never overwrite an input (10.1)


@pytest.mark.parametrize("target", ["train_df.csv", "sample_submission.csv", "test_labels.csv",
                                    "member_predictions", "run_info", "folder", "under_a_file"])
def test_out_that_is_an_input_or_the_wrong_kind_is_refused(three_runs, tmp_path, capsys, target):
    root, d, runs, _ = three_runs
    (tmp_path / "plain").write_text("x")
    out = {
        "member_predictions": runs[0] / "predictions_test.csv",
        "run_info": runs[1] / "run_info.json",
        "folder": tmp_path,
        "under_a_file": tmp_path / "plain" / "sub.csv",
    }.get(target, root / target)
    watched = [p for p in [*root.rglob("*"), *tmp_path.rglob("*")] if p.is_file()]
    before = {p: p.read_bytes() for p in watched}
    code = ensemble_main(["--runs", *map(str, runs), "--data-root", str(root), "--split", "test",
                          "--out", str(out), "--samples", "0"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: --out") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in watched} == before


def test_val_out_over_train_df_is_refused_through_another_spelling(tmp_path, capsys):
    root = tmp_path / "data"
    d = make_data_root(root)
    run = make_run(tmp_path / "runs" / "A", "val", d["train_images"], d["train"])
    before = (root / "train_df.csv").read_bytes()
    out = root / "images" / ".." / "train_df.csv"
    code = ensemble_main(["--runs", str(run), "--data-root", str(root), "--split", "val",
                          "--out", str(out), "--samples", "0"])
    err = capsys.readouterr().err
    assert code == 1 and "would overwrite" in err and "train_df.csv, an input" in err
    assert (root / "train_df.csv").read_bytes() == before


def test_missing_test_image_is_one_line_naming_it(three_runs, tmp_path, capsys):
    root, d, runs, _ = three_runs
    gone = DataPaths.from_root(root).test_images / d["test_images"][2]
    gone.unlink()
    out = tmp_path / "sub.csv"
    code = ensemble_main(["--runs", *map(str, runs), "--data-root", str(root), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(gone) in err and "sample_submission.csv" in err and "--samples 0" in err
    assert not out.exists()


# ------------------------------------------------- issue 12.6 / 13.1-2: families, weights, person


def table_rows(table):
    return [line.split() for line in table.splitlines()[1:]]


@pytest.mark.parametrize("method", METHODS)
def test_both_families_fuse_with_every_method_grouped_by_family(tmp_path, method):
    root = tmp_path / "data"
    d = make_data_root(root, n_train=12)
    val, truth = d["train_images"][4:], d["train"][4:]
    rng = np.random.default_rng(11)
    spec = [("H1", "heatmap", 0.5), ("R1", "rcnn", 1.5), ("R2", None, 1.5), ("H2", "heatmap", 0.6)]
    runs, preds = [], []
    for name, fam, sigma in spec:  # R2 has no "family" key: a run from before the heatmap family
        preds.append(rounded(truth + rng.normal(0, sigma, truth.shape)))
        scores = np.full((len(val), K), 0.9 if fam == "heatmap" else 12.0)
        runs.append(make_run(tmp_path / name, "val", val, preds[-1], family=fam, val_rmse=sigma,
                             scores=scores))
    summary = run_ensemble(runs, root, "val", method, tmp_path / "v.csv", samples=0,
                           weight_by="rmse", smooth="off")
    assert summary.families == {"H1": "heatmap", "R1": "rcnn", "R2": "rcnn", "H2": "heatmap"}
    rows = table_rows(summary.table)
    assert summary.table.splitlines()[0].split()[:2] == ["member", "family"]
    assert [r[0] for r in rows[:4]] == ["R1", "R2", "H1", "H2"]  # grouped: rcnn, then heatmap
    assert [r[1] for r in rows[:4]] == ["rcnn", "rcnn", "heatmap", "heatmap"]
    assert rows[4][:2] == ["fusion", "rcnn"] and rows[5][:2] == ["fusion", "heatmap"]
    assert rows[-1][:3] == ["ensemble", f"({method})", "rcnn+heatmap"]
    w = rmse_weights([s for _, _, s in spec]) if method == "weighted" else None
    expected = fuse(np.stack(preds), method, weights=w)
    np.testing.assert_allclose(summary.coords, expected)
    assert summary.rmse["ensemble"] == pytest.approx(metrics.rmse(expected, truth))
    heat = fuse(np.stack([preds[0], preds[3]]), method if method != "weighted" else "weighted",
                weights=None if w is None else w[[0, 3]])
    assert summary.rmse["fusion heatmap"] == pytest.approx(metrics.rmse(heat, truth))
    assert rows[5][-1] == f"{summary.rmse['fusion heatmap']:.3f}"


def test_weight_by_score_across_families_rescales_each_member(tmp_path, capsys):
    root = tmp_path / "data"
    d = make_data_root(root, n_train=8)
    val, truth = d["train_images"][4:], d["train"][4:]
    a, b = rounded(truth), rounded(truth + 4.0)
    sa = np.full((len(val), K), 10.0)  # R-CNN: logits around 10
    sb = np.full((len(val), K), 0.5)  # heatmap: maxima around 0.5
    sa[:, 0], sb[:, 0] = 30.0, 0.5  # keypoint 0: the R-CNN member three times as sure
    runs = [make_run(tmp_path / "R", "val", val, a, family="rcnn", scores=sa),
            make_run(tmp_path / "H", "val", val, b, family="heatmap", scores=sb)]
    summary = run_ensemble(runs, root, "val", "weighted", None, weight_by="score", samples=0,
                           smooth="off", echo=print)
    # unscaled, 10 vs 0.5 would put the fusion 95% on R; rescaled, a typical keypoint weighs alike
    np.testing.assert_allclose(summary.coords[:, 1:], rounded(truth + 2.0)[:, 1:], atol=1e-6)
    np.testing.assert_allclose(summary.coords[:, 0], rounded(truth + 1.0)[:, 0], atol=1e-6)
    assert "divided by its median score" in capsys.readouterr().out


def _two_member_runs(tmp_path, n_val=30, n_test=30):
    """A: 0.3 px on the first half of the keypoints, 4 px on the rest; B: 1.5 px everywhere;
    validation and test predictions; test labels present."""
    root = tmp_path / "data"
    d = make_data_root(root, n_train=n_val + 4, n_test=n_test)
    val, vtruth = d["train_images"][4:], d["train"][4:]
    rng = np.random.default_rng(21)
    sigma_a = np.where(np.arange(K) < K // 2, 0.3, 4.0)[None, :, None]
    runs = []
    for name, fam, sig in (("A", "heatmap", sigma_a), ("B", "rcnn", 1.5)):
        pred = rounded(vtruth + rng.normal(0, 1, vtruth.shape) * sig)
        run = make_run(tmp_path / name, "val", val, pred, family=fam,
                       val_rmse=metrics.rmse(pred, vtruth))
        write_predictions(run / "predictions_test.csv", d["test_images"],
                          d["test"] + rng.normal(0, 1, d["test"].shape) * sig)
        runs.append(run)
    return root, d, runs


def test_weight_by_keypoint_uses_each_members_validation_rmse(tmp_path, capsys):
    root, d, runs = _two_member_runs(tmp_path)
    by_kp = run_ensemble(runs, root, "test", "weighted", tmp_path / "kp.csv",
                         weight_by="keypoint", samples=0, smooth="off", echo=print)
    text = capsys.readouterr().out
    vals = [read_predictions(r / "predictions_val.csv") for r in runs]
    vtruth = d["train"][4:]
    per_kp = np.array([list(metrics.per_keypoint_rmse(v["coords"], vtruth).values()) for v in vals])
    np.testing.assert_allclose(by_kp.weights, keypoint_rmse_weights(per_kp))
    assert "mean weight" in by_kp.table.splitlines()[0]
    assert "keypoints where a member weighs most: A 12, B 12" in text.replace(
        f"A {K // 2}, B {K - K // 2}", "A 12, B 12")
    by_member = run_ensemble(runs, root, "test", "weighted", tmp_path / "m.csv",
                             weight_by="rmse", samples=0, smooth="off")
    plain_mean = run_ensemble(runs, root, "test", "mean", None, samples=0, smooth="off")
    print(f"test RMSE: per-keypoint weights {by_kp.rmse['ensemble']:.3f}, per-member "
          f"{by_member.rmse['ensemble']:.3f}, mean {plain_mean.rmse['ensemble']:.3f}, members "
          f"{by_kp.rmse['A']:.3f} / {by_kp.rmse['B']:.3f}")
    assert by_kp.rmse["ensemble"] < 0.8 * by_member.rmse["ensemble"]
    assert by_kp.rmse["ensemble"] < min(by_kp.rmse["A"], by_kp.rmse["B"])


def test_weight_by_keypoint_without_validation_is_a_clear_error(tmp_path):
    root, d, runs = _two_member_runs(tmp_path, n_val=4, n_test=3)
    (runs[1] / "predictions_val.csv").unlink()
    with pytest.raises(EnsembleError, match=r"--weight-by keypoint needs each member's "
                       r"validation predictions: .*predict\.py --run .*B .*--split val"):
        run_ensemble(runs, root, "test", "weighted", weight_by="keypoint", samples=0)
    info = json.loads((runs[1] / "run_info.json").read_text())
    info.update(validated=False, val_rmse=None)
    (runs[1] / "run_info.json").write_text(json.dumps(info))
    with pytest.raises(EnsembleError, match="trained without validation.*--weight-by score"):
        run_ensemble(runs, root, "test", "weighted", weight_by="keypoint", samples=0)
    with pytest.raises(EnsembleError, match="val_rmse.*has None.*--weight-by score"):
        run_ensemble(runs, root, "test", "weighted", weight_by="rmse", samples=0)
    # the unweighted methods do not need validation
    assert run_ensemble(runs, root, "test", "mean", samples=0).rmse["ensemble"] > 0


def test_member_on_a_bystander_is_left_out_and_counted(tmp_path, capsys):
    root = tmp_path / "data"
    d = make_data_root(root, n_test=4)
    imgs, truth = d["test_images"], d["test"]
    person = np.tile([10.0, 4.0, 30.0, 44.0], (4, 1))
    runs, preds = [], []
    for m, name in enumerate("ABC"):
        p = rounded(truth + np.random.default_rng(m).normal(0, 0.3, truth.shape))
        boxes = person + m
        if name == "C":  # C took the bystander on the right in image 2
            boxes[2] = [40.0, 6.0, 62.0, 46.0]
            p[2] = rounded(truth[2] + [25.0, 1.0])
        preds.append(p)
        runs.append(make_run(tmp_path / name, "test", imgs, p, boxes=boxes))
    argv = ["--runs", *map(str, runs), "--data-root", str(root), "--method", "mean",
            "--samples", "0", "--smooth", "off"]
    assert ensemble_main([*argv, "--out", str(tmp_path / "a.csv")]) == 0
    text = capsys.readouterr().out
    assert "C 1 images on another person, left out" in text
    header = text.splitlines()[1].split()
    assert header[4:6] == ["other", "person"]
    c_row = next(line.split() for line in text.splitlines() if line.startswith("C "))
    assert c_row[4] == "1"
    got = pd.read_csv(tmp_path / "a.csv")[list(COORD_COLUMNS)].to_numpy().reshape(-1, K, 2)
    np.testing.assert_allclose(got[2], np.round((preds[0][2] + preds[1][2]) / 2, 10), atol=1e-6)
    np.testing.assert_allclose(got[[0, 1, 3]], fuse(np.stack(preds), "mean")[[0, 1, 3]], atol=1e-6)
    assert ensemble_main([*argv, "--no-align", "--out", str(tmp_path / "b.csv")]) == 0
    assert "other person" not in capsys.readouterr().out
    off = pd.read_csv(tmp_path / "b.csv")[list(COORD_COLUMNS)].to_numpy().reshape(-1, K, 2)
    np.testing.assert_allclose(off[2, :, 0] - truth[2, :, 0], 25.0 / 3, atol=0.5)  # pulled
    assert np.abs(got[2] - truth[2]).max() < 1.5


# --------------------------------------------------------------- issue 13.2: smoothing in one go


def make_clip_root(root, val_frames, test_frames, seed=0):
    """A data root of clip frames (``clip_A-<frame>.jpg``): training/validation frames of clip
    ``v1``, test frames of clip ``t1``, slow smooth motion, test labels."""
    paths = DataPaths.from_root(root)
    rng = np.random.default_rng(seed)
    base = poses(1, seed)[0]
    phase = rng.uniform(0, 2 * np.pi, (K, 2))

    def pose(f):
        return base + 3.0 * np.sin(2 * np.pi * f / 60.0 + phase)

    names = {"train": [f"v1_A-{f:07d}.jpg" for f in val_frames],
             "test": [f"t1_A-{f:07d}.jpg" for f in test_frames]}
    truth = {"train": np.stack([pose(f) for f in val_frames]),
             "test": np.stack([pose(f) for f in test_frames])}
    for split, folder in (("train", paths.train_images), ("test", paths.test_images)):
        folder.mkdir(parents=True)
        for name in names[split]:
            cv2.imwrite(str(folder / name), np.zeros((H, W, 3), np.uint8))
    with editing(paths.root):  # the test builds a data folder by hand
        write_keypoint_csv(keypoints_frame(names["train"], truth["train"]), paths.train_csv)
        write_keypoint_csv(keypoints_frame(names["test"], np.zeros_like(truth["test"])),
                           paths.sample_submission)
        write_keypoint_csv(keypoints_frame(names["test"], truth["test"]), paths.test_labels)
    return names, truth


def clip_runs(tmp_path, root, names, truth, sigma=1.5):
    rng = np.random.default_rng(4)
    runs = []
    for name in "AB":
        run = make_run(tmp_path / name, "val", names["train"],
                       truth["train"] + rng.normal(0, sigma, truth["train"].shape))
        write_predictions(run / "predictions_test.csv", names["test"],
                          truth["test"] + rng.normal(0, sigma, truth["test"].shape))
        runs.append(run)
    return runs


def read_coords(path):
    return pd.read_csv(path)[list(COORD_COLUMNS)].to_numpy().reshape(-1, K, 2)


def test_smooth_auto_chooses_on_validation_and_applies_to_the_test_submission(tmp_path, capsys):
    root = tmp_path / "data"
    names, truth = make_clip_root(root, range(1, 41), range(1, 41))
    runs = clip_runs(tmp_path, root, names, truth)
    argv = ["--runs", *map(str, runs), "--data-root", str(root), "--samples", "0",
            "--method", "mean"]
    assert ensemble_main([*argv, "--smooth", "off", "--out", str(tmp_path / "off.csv")]) == 0
    capsys.readouterr()
    assert ensemble_main([*argv, "--out", str(tmp_path / "auto.csv")]) == 0  # default: auto
    text = capsys.readouterr().out
    assert "smoothing: auto: every member has predictions_val.csv" in text
    line = next(x for x in text.splitlines() if x.startswith("smoothing auto: chose"))
    before, after = (float(v) for v in line.split("validation RMSE ")[1].split(" px")[0]
                     .split(" -> "))
    assert after < before
    test_line = next(x for x in text.splitlines() if x.startswith("test RMSE before / after"))
    t_before, t_after = (float(v) for v in test_line.split(": ")[1].split(" px")[0].split(" / "))
    print(f"validation {before:.3f} -> {after:.3f} px; test {t_before:.3f} -> {t_after:.3f} px")
    assert t_after < 0.85 * t_before
    off, auto = read_coords(tmp_path / "off.csv"), read_coords(tmp_path / "auto.csv")
    assert metrics.rmse(off, truth["test"]) == pytest.approx(t_before, abs=2e-3)
    assert metrics.rmse(auto, truth["test"]) == pytest.approx(t_after, abs=2e-3)
    assert "ensemble (mean) smoothed" in text


def test_smooth_on_the_val_split_reports_before_and_after(tmp_path):
    root = tmp_path / "data"
    names, truth = make_clip_root(root, range(1, 41), range(1, 5))
    runs = clip_runs(tmp_path, root, names, truth)
    s = run_ensemble(runs, root, "val", "mean", tmp_path / "v.csv", samples=0, smooth="auto")
    assert s.smoothing["chosen"] != "off" and s.smoothing["val_after"] < s.smoothing["val_before"]
    assert s.smoothing["before"] == pytest.approx(s.rmse["ensemble"])
    assert s.smoothing["after"] == pytest.approx(s.rmse["ensemble smoothed"])
    assert s.smoothing["after"] < s.smoothing["before"]
    np.testing.assert_allclose(read_coords(tmp_path / "v.csv"), s.coords, atol=1e-3)


def test_smooth_default_leaves_sparse_frames_and_auto_without_gain_is_off(tmp_path, capsys):
    root = tmp_path / "data"
    # frames 8 apart, like the competition's test images: the default smoothing changes nothing
    names, truth = make_clip_root(root, range(1, 200, 8), range(1, 200, 8))
    runs = clip_runs(tmp_path, root, names, truth)
    off = run_ensemble(runs, root, "test", "mean", tmp_path / "o.csv", samples=0, smooth="off")
    dflt = run_ensemble(runs, root, "test", "mean", tmp_path / "d.csv", samples=0,
                        smooth="default")
    np.testing.assert_array_equal(dflt.coords, off.coords)
    assert dflt.smoothing["smoothed_rows"] == 0
    assert (tmp_path / "o.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()
    auto = run_ensemble(runs, root, "test", "mean", tmp_path / "a.csv", samples=0, smooth="auto",
                        echo=print)
    assert auto.smoothing["chosen"] == "off"
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "o.csv").read_bytes()
    assert "no candidate lowers the validation RMSE" in capsys.readouterr().out


def test_smooth_auto_without_validation_predictions(tmp_path, capsys):
    root = tmp_path / "data"
    names, truth = make_clip_root(root, range(1, 11), range(1, 11))
    runs = clip_runs(tmp_path, root, names, truth)
    (runs[0] / "predictions_val.csv").unlink()
    with pytest.raises(EnsembleError, match="--smooth auto needs each member's validation "
                                            "predictions") as exc:
        run_ensemble(runs, root, "test", "mean", samples=0, smooth="auto")
    # the way out is the smoothing's own (issue 20), not an unrelated weighting option
    assert "--smooth default" in str(exc.value) and "--weight-by" not in str(exc.value)
    argv = ["--runs", *map(str, runs), "--data-root", str(root), "--samples", "0",
            "--out", str(tmp_path / "s.csv")]
    assert ensemble_main(argv) == 0  # the default falls back to off, and says so
    assert "smoothing: off: not every member has predictions_val.csv" in capsys.readouterr().out


# ------------------------------------------------- test-time options chosen on validation


def _runs_with_val(tmp_path, spec, n_val=30, n_test=30, seed=31):
    """Runs with validation and test predictions (and ``_noflip`` files): ``spec`` is
    ``[(name, make(truth, rng, split) -> (pred, noflip or None)), ...]``."""
    root = tmp_path / "data"
    d = make_data_root(root, n_train=n_val + 4, n_test=n_test)
    val, vtruth = d["train_images"][4:], d["train"][4:]
    rng = np.random.default_rng(seed)
    runs = []
    for name, make in spec:
        pred, nf = make(vtruth, rng, "val")
        run = make_run(tmp_path / name, "val", val, rounded(pred), noflip=None if nf is None
                       else rounded(nf), val_rmse=metrics.rmse(pred, vtruth))
        pred, nf = make(d["test"], rng, "test")
        write_predictions(run / "predictions_test.csv", d["test_images"], rounded(pred))
        if nf is not None:
            write_predictions(run / "predictions_test_noflip.csv", d["test_images"], rounded(nf))
        runs.append(run)
    return root, d, runs


def _noisy(sigma):
    return lambda t, rng, split: (t + rng.normal(0, sigma, t.shape), None)


def test_method_auto_is_chosen_on_validation_and_a_worse_ensemble_is_said(tmp_path):
    # A is good, B and C are poor: the plain mean is worse than A alone
    root, d, runs = _runs_with_val(tmp_path, [("A", _noisy(0.3)), ("B", _noisy(4.0)),
                                              ("C", _noisy(4.0))])
    mean = run_ensemble(runs, root, "test", "mean", None, samples=0, flip="on", lr_align="off")
    assert mean.rmse["ensemble"] > mean.rmse["A"]
    assert any(line.startswith("WORSE THAN ITS BEST MEMBER") and "A alone" in line
               for line in mean.lines)
    auto = run_ensemble(runs, root, "test", "auto", None, samples=0, flip="on", lr_align="off")
    note = next(line for line in auto.lines if line.startswith("method auto:"))
    assert all(n in note for n in ("mean", "median", "robust", "weighted by rmse",
                                   "weighted by keypoint"))
    scored = auto.plan.method_rmse
    assert min(scored, key=scored.get) in note.split(",")[0]
    assert auto.plan.method == "weighted"
    assert auto.rmse["ensemble"] < mean.rmse["ensemble"]
    # a mean-pose baseline beside the table, and each row's ratio to it
    assert auto.rmse["mean pose (baseline)"] > auto.rmse["A"]
    assert "vs mean pose" in auto.table.splitlines()[0]
    assert any(line.startswith("mean pose (baseline): RMSE") for line in auto.lines)


def test_flip_tta_is_chosen_per_member_on_validation(tmp_path):
    # A's flip TTA helps, B's hurts (B's no-flip predictions are the better ones)
    def a(t, rng, split):
        return t + rng.normal(0, 0.5, t.shape), t + rng.normal(0, 2.0, t.shape)

    def b(t, rng, split):
        return t + rng.normal(0, 3.0, t.shape), t + rng.normal(0, 0.8, t.shape)

    root, d, runs = _runs_with_val(tmp_path, [("A", a), ("B", b)])
    s = run_ensemble(runs, root, "test", "mean", None, samples=0, lr_align="off")
    assert s.plan.flip == [True, False]
    note = next(line for line in s.lines if line.startswith("flip TTA per member"))
    assert "A on (" in note and "B off (" in note
    test_b = read_predictions(runs[1] / "predictions_test_noflip.csv")["coords"]
    test_a = read_predictions(runs[0] / "predictions_test.csv")["coords"]
    np.testing.assert_allclose(s.coords, (test_a + test_b) / 2, atol=1e-9)
    forced = run_ensemble(runs, root, "test", "mean", None, samples=0, flip="on", lr_align="off")
    assert forced.rmse["ensemble"] > s.rmse["ensemble"]
    header = s.table.splitlines()[0]
    rows = {line.split()[0]: line for line in s.table.splitlines()[1:3]}
    start = header.index("flip TTA")
    assert [rows[m][start:start + 8].strip() for m in "AB"] == ["on", "off"]


def _mirrored(share):
    def make(t, rng, split):
        p = t + rng.normal(0, 0.5, t.shape)
        frames = rng.choice(len(t), size=int(share * len(t)), replace=False)
        p[frames] = p[frames][:, list(FLIP_INDEX)]
        return p, None
    return make


def test_left_right_alignment_is_on_only_when_validation_shows_it_helps(tmp_path):
    root, d, runs = _runs_with_val(tmp_path, [("A", _noisy(0.5)), ("B", _mirrored(0.3)),
                                              ("C", _noisy(0.5))])
    s = run_ensemble(runs, root, "test", "mean", None, samples=0)
    assert s.plan.lr
    assert s.lr_swaps["B"] == 9 and s.lr_swaps["A"] == s.lr_swaps["C"] == 0
    assert any(line.startswith("left/right alignment: on, chosen on validation") for line in s.lines)
    assert "left/right exchanged to the consensus side: A 0, B 9, C 0 images" in s.lines
    off = run_ensemble(runs, root, "test", "mean", None, samples=0, lr_align="off")
    print(f"test RMSE with a member mirrored on 30% of the frames: {off.rmse['ensemble']:.2f} px "
          f"plain mean, {s.rmse['ensemble']:.2f} px left/right aligned")
    assert s.rmse["ensemble"] < 0.5 * off.rmse["ensemble"]
    clean_root, _, clean = _runs_with_val(tmp_path / "clean", [("A", _noisy(0.5)),
                                                               ("B", _noisy(0.5))])
    c = run_ensemble(clean, clean_root, "test", "mean", None, samples=0)
    assert not c.plan.lr
    assert any(line.startswith("left/right alignment: off, chosen on validation") for line in c.lines)


def test_median_of_two_is_named_the_mean(tmp_path):
    root, d, runs = _runs_with_val(tmp_path, [("A", _noisy(0.5)), ("B", _noisy(1.0))])
    s = run_ensemble(runs, root, "test", "median", None, samples=0)
    assert "ensemble (median = mean of two)" in s.table
    assert "median of two members: exactly their mean" in s.lines


def test_error_picture_and_html_are_named_after_the_output(tmp_path, capsys):
    root, d, runs = _runs_with_val(tmp_path, [("A", _noisy(0.5)), ("B", _noisy(1.0))])
    base = ["--runs", *map(str, runs), "--data-root", str(root), "--samples", "2", "--smooth", "off"]
    assert ensemble_main([*base, "--out", str(tmp_path / "sub" / "one.csv"), "--html"]) == 0
    assert ensemble_main([*base, "--method", "mean", "--out", str(tmp_path / "sub" / "two.csv")]) == 0
    out = capsys.readouterr().out
    pics = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert pics == ["one.csv", "one_errors.html", "one_errors.png", "samples", "two.csv",
                    "two_errors.png"]
    assert sorted(p.name for p in (tmp_path / "sub" / "samples").iterdir()) == [
        "one_samples.jpg", "two_samples.jpg"]
    img = cv2.imread(str(tmp_path / "sub" / "one_errors.png"))
    assert img is not None and img.shape[0] > 500 and img.shape[1] > 500
    page = (tmp_path / "sub" / "one_errors.html").read_text()
    assert "data:image/png;base64," in page and "RMSE per camera" in page
    assert KEYPOINT_NAMES[5] in page and "mean pose (baseline)" in page
    assert f"error picture: {tmp_path / 'sub' / 'two_errors.png'}" in out


def test_picture_names_without_an_output_file_differ_by_options(tmp_path):
    from motion_keypoints.ensemble.driver import output_stem

    a = output_stem(None, "val", "mean", [tmp_path / "A"], ("rmse", 2.0))
    b = output_stem(None, "val", "mean", [tmp_path / "A"], ("rmse", 3.0))
    c = output_stem(None, "val", "robust", [tmp_path / "A"], ("rmse", 2.0))
    assert len({a, b, c}) == 3 and a == output_stem(None, "val", "mean", [tmp_path / "A"],
                                                     ("rmse", 2.0))
    assert output_stem(tmp_path / "x" / "sub.csv", "test", "mean", []) == (tmp_path / "x", "sub")
