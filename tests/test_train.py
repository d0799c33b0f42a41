"""Training: the learning test, the run folder, resume, tracking and bad input.

Tests marked slow train tiny models on CPU for minutes; CI runs them.
"""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_main, run_script, tiny_opts

from motion_keypoints.data.layout import DataPaths
from motion_keypoints.evaluation.metrics import mean_pose_baseline, rmse
from motion_keypoints.io.images import image_size
from motion_keypoints.io.tables import keypoints_array, read_keypoint_csv
from motion_keypoints.meta import COORD_COLUMNS


def _metrics_lines(run):
    return [json.loads(x) for x in (run / "metrics.json").read_text().splitlines()]


def _validation_truth_and_baseline(run, learn_data):
    """(validation rows, their keypoints (N, K, 2), the mean-pose baseline RMSE on them from the
    run's training rows) for a run of learn_data."""
    split = json.loads((run / "split.json").read_text())
    paths = DataPaths.from_root(learn_data)
    df = read_keypoint_csv(paths.train_csv)
    val = df[df["image"].isin(split["val"])]
    train = df[~df["image"].isin(split["val"])]
    size = lambda rows: np.array([image_size(paths.train_images / n) for n in rows["image"]], float)  # noqa: E731
    truth = keypoints_array(val)
    return val, truth, rmse(mean_pose_baseline(keypoints_array(train), size(train), size(val)), truth)


def _predicted_rmse(run, val, truth, name="predictions_val.csv"):
    pred = pd.read_csv(run / name).set_index("image").loc[list(val["image"])]
    assert pred["detected"].all()
    return rmse(pred[list(COORD_COLUMNS)].to_numpy().reshape(truth.shape), truth)


@pytest.mark.slow
@pytest.mark.long
def test_learning_tiny_cpu_beats_the_mean_pose_baseline(long_learned_run, learn_data):
    """tiny-cpu trained from scratch on synthetic data reaches a validation RMSE of at most 25 %
    of the mean-pose baseline with the kit's inference (predict.py with flip TTA), and the raw
    model alone (the trainer's evaluator, no TTA) at most 30 %. (Long tier: a 1000-iteration
    Keypoint R-CNN; the CI tier proves learning with the cheapest models, below.)"""
    learned_run = long_learned_run
    info = json.loads((learned_run / "run_info.json").read_text())
    val, truth, baseline = _validation_truth_and_baseline(learned_run, learn_data)

    run_script("predict", "--run", learned_run, "--data-root", learn_data, "--split", "val", "--flip-tta")
    kit_rmse = _predicted_rmse(learned_run, val, truth)
    print(f"validation RMSE: model {info['val_rmse']:.2f} px, with flip TTA {kit_rmse:.2f} px; "
          f"mean-pose baseline {baseline:.2f} px")
    assert kit_rmse <= 0.25 * baseline
    assert info["val_rmse"] <= 0.30 * baseline
    # the independent evaluation of the best checkpoint agrees with what the hook recorded
    best = json.loads((learned_run / "best_checkpoint.json").read_text())
    assert best["val_rmse"] == pytest.approx(info["val_rmse"])


@pytest.mark.slow
def test_learning_from_scratch_two_stage_beats_the_mean_pose_baseline(learned_predictions, heatmap_run,
                                                                      heatmap_predictions, learn_data):
    """The kit learns, shown with the cheapest models (CI tier): the shared tiny-cpu R-CNN
    (conftest.LEARN_ITERS iterations) finds every validation person and reaches at most 40 % of
    the mean-pose baseline with predict.py's flip TTA; the tiny HRNet on its boxes reaches at
    most 25 %, the long tier's standard for the R-CNN (predict.py, flip TTA)."""
    learned_run, hrun = learned_predictions, heatmap_run[0]
    val, truth, baseline = _validation_truth_and_baseline(learned_run, learn_data)
    r_rmse = _predicted_rmse(learned_run, val, truth)
    h_rmse = _predicted_rmse(hrun, val, truth)
    info = {r: json.loads((r / "run_info.json").read_text()) for r in (learned_run, hrun)}
    print(f"validation RMSE with flip TTA: R-CNN ({info[learned_run]['max_iter']} it) {r_rmse:.2f} px, "
          f"HRNet on its boxes ({info[hrun]['max_iter']} it) {h_rmse:.2f} px; mean-pose baseline "
          f"{baseline:.2f} px (ratios {r_rmse / baseline:.3f}, {h_rmse / baseline:.3f})")
    assert r_rmse <= 0.40 * baseline
    assert h_rmse <= 0.25 * baseline
    for run in (learned_run, hrun):
        best = json.loads((run / "best_checkpoint.json").read_text())
        assert best["val_rmse"] == pytest.approx(info[run]["val_rmse"])


@pytest.mark.slow
def test_run_folder_is_complete(learned_run):
    for name in ("config.yaml", "metrics.json", "model_final.pth", "model_best.pth",
                 "split.json", "run_info.json", "best_checkpoint.json", "last_checkpoint"):
        assert (learned_run / name).is_file(), name
    assert list(learned_run.glob("events.out.tfevents.*")), "no TensorBoard events"
    split = json.loads((learned_run / "split.json").read_text())
    assert split["val"] and not set(split["val"]) & set(split["train"])
    lines = _metrics_lines(learned_run)
    evals = [x for x in lines if "keypoints_rmse/rmse" in x]
    assert len(evals) == 2 and all("keypoints/AP" in x for x in evals)  # COCO OKS AP too
    assert all(0.0 <= x["keypoints_rmse/detection_rate"] <= 1.0 for x in evals)
    info = json.loads((learned_run / "run_info.json").read_text())
    assert info["val_rmse"] == min(x["keypoints_rmse/rmse"] for x in evals)
    assert info["final_val_rmse"] == pytest.approx(evals[-1]["keypoints_rmse/rmse"])
    # best_iteration is the 0-based index of the best evaluation's last iteration: detectron2
    # stores the final (after-train) evaluation one step past it, at max_iter
    best = min(evals, key=lambda x: x["keypoints_rmse/rmse"])
    assert info["best_iteration"] == min(best["iteration"], info["max_iter"] - 1)


@pytest.mark.slow
def test_a_killed_run_is_refused_without_resume_then_resumes_once_without_duplicates(synthetic_data,
                                                                                   tmp_path):
    """One kill scenario (the kill/resume and refused-rerun tests merged, the fewest iterations
    that show it): killed after the checkpoint before the half-way evaluation, a rerun with
    another config or without --resume is refused and costs no finished work, --resume ends
    with the same iterations and evaluations once each, and a second --resume is a no-op."""
    from motion_keypoints.io.runs import RUN_FILE

    out = tmp_path / "resumed"
    iters = 12  # checkpoints every 3 iterations, evaluations at 6 and 12
    args = ["--config-file", "configs/tiny-cpu.yaml",
            *tiny_opts(synthetic_data, out, iters, **{"SOLVER.CHECKPOINT_PERIOD": 3})]
    proc = subprocess.Popen([sys.executable, str(REPO / "code/train.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "model_0000005.pth"
    deadline = time.time() + 600
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file() and not (out / "model_final.pth").exists(), "killed too late"
    saved = {p.name: p.read_bytes() for p in out.glob("*.pth")}
    # another config into the same folder: refused before training, nothing touched
    other = run_script("train", *args, "SOLVER.BASE_LR", "0.01", check=False)
    assert other.returncode == 1 and "another run" in other.stderr
    assert "--resume" in other.stderr and "--clear" in other.stderr
    # the same run without --resume: refused too (no silent overwrite)
    same = run_script("train", *args, check=False)
    assert same.returncode == 1 and "--resume" in same.stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.pth")} == saved

    resumed = run_script("train", "--resume", *args)
    started = re.search(r"resuming at iteration (\d+)", resumed.stdout + resumed.stderr)
    assert started and 0 < int(started.group(1)) < iters
    again = run_script("train", "--resume", *args)  # a finished run resumes to a no-op
    assert "already trained" in again.stdout + again.stderr
    lines = _metrics_lines(out)
    iterations = [x["iteration"] for x in lines if "total_loss" in x]
    assert len(iterations) == len(set(iterations)), "metrics.json has duplicated iterations"
    assert max(iterations) == iters - 1
    evals = [x["iteration"] for x in lines if "keypoints_rmse/rmse" in x]
    assert len(evals) == len(set(evals)) and evals[-1] == iters, "evaluations duplicated or missing"
    assert (out / "model_final.pth").is_file()
    ckpt = (out / "last_checkpoint").read_text().strip()
    assert ckpt == "model_final.pth"
    info = json.loads((out / "run_info.json").read_text())
    assert info["fingerprint"] == json.loads((out / RUN_FILE).read_text())["fingerprint"]


@pytest.mark.slow
def test_neptune_enabled_without_token_trains_offline(synthetic_data, tmp_path):
    out = tmp_path / "neptune"
    token = "do-not-print-this-token"
    proc = run_script(
        "train", "--config-file", "configs/tiny-cpu.yaml",
        *tiny_opts(synthetic_data, out, 4, **{"TRACKING.NEPTUNE": True, "TEST.EVAL_PERIOD": 0}),
        unset=("NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT", "NEPTUNE_DATA_DIRECTORY", "NEPTUNE_MODE"),
    )
    text = proc.stdout + proc.stderr
    assert "offline" in text.lower()
    assert (out / "model_final.pth").is_file()
    assert (out / ".neptune").is_dir(), "offline Neptune data belongs in the run folder"
    proc = run_script(
        "train", "--config-file", "configs/tiny-cpu.yaml",
        *tiny_opts(synthetic_data, tmp_path / "n2", 2, **{"TEST.EVAL_PERIOD": 0}),
        env={"MOTION_KEYPOINTS_NEPTUNE": "1", "NEPTUNE_API_TOKEN": token},
    )
    assert token not in proc.stdout + proc.stderr


def test_missing_augmentation_set_says_how_to_build_it(synthetic_data, tmp_path):
    proc = run_main("train", "--config-file", "configs/tiny-cpu.yaml",
                    "DATA.ROOT", synthetic_data, "OUTPUT_DIR", tmp_path / "r",
                    "DATA.AUG_SET", "demo", "DATA.AUGMENTED_DIR", tmp_path / "aug")
    assert proc.returncode == 1
    assert "python code/augmentation.py" in proc.stderr and "--sets demo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_data_fails_before_training(synthetic_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    csv = data / "train_df.csv"
    lines = csv.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    proc = run_main("train", "--config-file", "configs/tiny-cpu.yaml", "DATA.ROOT", data,
                    "OUTPUT_DIR", tmp_path / "r")
    assert proc.returncode == 1
    assert "train_df.csv" in proc.stderr and "line 4" in proc.stderr
    assert not (tmp_path / "r" / "model_final.pth").exists()


def test_offline_weights_error_says_how_to_proceed(synthetic_data, tmp_path):
    proc = run_main("train", "--config-file", "configs/tiny-cpu.yaml", "DATA.ROOT", synthetic_data,
                    "OUTPUT_DIR", tmp_path / "r", "MODEL.WEIGHTS", tmp_path / "missing.pkl")
    assert proc.returncode == 1
    assert "MODEL.WEIGHTS" in proc.stderr and "from scratch" in proc.stderr


@pytest.mark.slow
def test_diverging_loss_stops_with_the_scratch_hint(synthetic_data, tmp_path):
    proc = run_script(
        "train", "--config-file", "configs/tiny-cpu.yaml", "DATA.ROOT", synthetic_data,
        "OUTPUT_DIR", tmp_path / "r", "SOLVER.BASE_LR", "1e6", "SOLVER.WARMUP_ITERS", "0",
        "SOLVER.MAX_ITER", "30", "TEST.EVAL_PERIOD", "0", check=False,
    )
    assert proc.returncode == 1
    assert "diverged" in proc.stderr and "MODEL.RESNETS.NORM GN" in proc.stderr


@pytest.mark.slow
def test_short_training_prints_only_the_kits_lines(synthetic_data, tmp_path):
    """12 iterations: setup lines, one progress bar, a line per evaluation and a summary; no
    library warning (even with -W default); detectron2's complete log in log.txt."""
    out = tmp_path / "r"
    args = ["--config-file", "configs/tiny-cpu.yaml",
            # 3 of 24 frames: a fraction the clip/camera groups allow exactly (no split warning)
            *tiny_opts(synthetic_data, out, 12, **{"TEST.EVAL_PERIOD": 6,
                                                   "DATA.VAL_FRACTION": 0.125})]
    proc = subprocess.run([sys.executable, "-W", "default", str(REPO / "code/train.py"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    assert "Warning" not in text and "warnings.warn" not in text, text[-3000:]
    lines = [x for x in text.replace("\r", "\n").splitlines() if x.strip() and "it/s" not in x
             and "s/it" not in x and not x.startswith("train:")]
    assert len(lines) <= 6, lines
    assert [x for x in lines if x.startswith("evaluation at iteration")] == [
        x for x in lines if "evaluation" in x and "RMSE" in x]
    assert len([x for x in lines if x.startswith("evaluation at iteration")]) == 2
    assert lines[-1].startswith("run r done:")
    assert "12/12" in proc.stderr  # the progress bar
    log = (out / "log.txt").read_text()
    for needed in ("Environment info", "Starting training from iteration 0", "eta:",
                   "Average Precision", "run r done:"):
        assert needed in log, needed


@pytest.mark.slow
def test_training_without_validation(synthetic_data, tmp_path):
    """DATA.VAL_FRACTION 0 (an integer) with TEST.EVAL_PERIOD 0: no evaluation, model_final.pth
    is the model, run_info.json says so; predict and ensemble work on the run."""
    out = tmp_path / "noval"
    proc = run_script("train", "--config-file", "configs/tiny-cpu.yaml",
                      *tiny_opts(synthetic_data, out, 4, **{"DATA.VAL_FRACTION": 0,
                                                           "TEST.EVAL_PERIOD": 0}))
    assert "evaluation at" not in proc.stdout
    info = json.loads((out / "run_info.json").read_text())
    assert info["validated"] is False and info["val_rmse"] is None
    assert info["checkpoint"] == "model_final.pth" and (out / "model_final.pth").is_file()
    assert not (out / "model_best.pth").exists()
    assert info["fingerprint"] == json.loads((out / "run.json").read_text())["fingerprint"]
    run_script("predict", "--run", out, "--data-root", synthetic_data, "--split", "test")
    assert (out / "predictions_test.csv").is_file()
    # its validation split is refused in one line, and no (empty) predictions file is written
    val = run_script("predict", "--run", out, "--data-root", synthetic_data, "--split", "val",
                     check=False)
    assert val.returncode == 1 and "Traceback" not in val.stderr, val.stderr[-2000:]
    assert "without validation" in val.stderr and not list(out.glob("predictions_val*"))
    # ... and ensemble: unweighted methods work, RMSE weights are refused with the run's name.
    sub = tmp_path / "submission.csv"
    proc = run_script("ensemble", "--runs", out, "--data-root", synthetic_data, "--split", "test",
                      "--method", "mean", "--smooth", "off", "--samples", "0", "--out", sub)
    assert sub.is_file()
    run_script("check_submission", "--data-root", synthetic_data, sub)
    bad = run_script("ensemble", "--runs", out, "--data-root", synthetic_data, "--split",
                     "test", "--method", "weighted", "--weight-by", "rmse", "--samples", "0",
                     "--out", tmp_path / "w.csv", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "noval" in bad.stderr and not (tmp_path / "w.csv").exists()
