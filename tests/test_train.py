"""Training: resume, tracking and bad input (the learning tests: tests/test_learning.py).

Tests marked slow train tiny models on CPU for minutes; CI runs them.
"""

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_main, run_script, tiny_opts


def _metrics_lines(run):
    return [json.loads(x) for x in (run / "metrics.json").read_text().splitlines()]


@pytest.mark.slow
def test_a_killed_run_is_refused_without_resume_then_resumes_once_without_duplicates(synthetic_data,
                                                                                   tmp_path):
    """One kill scenario (the kill/resume and refused-rerun tests merged, the fewest iterations
    that show it): killed after the checkpoint before the half-way evaluation, a rerun with
    another config or without --resume is refused and costs no finished work, --resume ends
    with the same iterations and evaluations once each, and a second --resume is a no-op."""
    from motion_keypoints.io.runs import RUN_FILE

    out = tmp_path / "resumed"
    iters = 6  # a checkpoint at iteration 3, then the half-way evaluation; the end at 6
    args = ["--config-file", "configs/tiny-cpu.yaml",
            *tiny_opts(synthetic_data, out, iters, **{"SOLVER.CHECKPOINT_PERIOD": 3})]
    proc = subprocess.Popen([sys.executable, str(REPO / "code/train.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "model_0000002.pth"
    deadline = time.time() + 600
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first.is_file() and not (out / "model_final.pth").exists(), "killed too late"
    saved = {p.name: p.read_bytes() for p in out.glob("*.pth")}
    # another config into the same folder: refused before training (in this process:
    # conftest.run_main), nothing touched
    other = run_main("train", *args, "SOLVER.BASE_LR", "0.01")
    assert other.returncode == 1 and "another run" in other.stderr
    assert "--resume" in other.stderr and "--clear" in other.stderr
    # the same run without --resume: refused too (no silent overwrite)
    same = run_main("train", *args)
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
        *tiny_opts(synthetic_data, out, 2, **{"TRACKING.NEPTUNE": True, "TEST.EVAL_PERIOD": 0}),
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
    """4 iterations: setup lines, one progress bar, a line per evaluation and a summary; no
    library warning (even with -W default); detectron2's complete log in log.txt."""
    out = tmp_path / "r"
    args = ["--config-file", "configs/tiny-cpu.yaml",
            # 3 of 24 frames: a fraction the clip/camera groups allow exactly (no split warning)
            # every box kept: a 4-iteration model's scores may all be under the default 0.05,
            # and without a prediction there is no COCO table to log
            *tiny_opts(synthetic_data, out, 4, **{"TEST.EVAL_PERIOD": 2,
                                                  "DATA.VAL_FRACTION": 0.125,
                                                  "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.0})]
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
    assert "4/4" in proc.stderr  # the progress bar
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
    run_main("predict", "--run", out, "--data-root", synthetic_data, "--split", "test", check=True)
    assert (out / "predictions_test.csv").is_file()
    # its validation split is refused in one line, and no (empty) predictions file is written
    val = run_main("predict", "--run", out, "--data-root", synthetic_data, "--split", "val")
    assert val.returncode == 1 and "Traceback" not in val.stderr, val.stderr[-2000:]
    assert "without validation" in val.stderr and not list(out.glob("predictions_val*"))
    # ... and ensemble: unweighted methods work, RMSE weights are refused with the run's name.
    sub = tmp_path / "submission.csv"
    run_main("ensemble", "--runs", out, "--data-root", synthetic_data, "--split", "test",
             "--method", "mean", "--smooth", "off", "--samples", "0", "--out", sub, check=True)
    assert sub.is_file()
    run_main("check_submission", "--data-root", synthetic_data, sub, check=True)
    bad = run_main("ensemble", "--runs", out, "--data-root", synthetic_data, "--split",
                   "test", "--method", "weighted", "--weight-by", "rmse", "--samples", "0",
                   "--out", tmp_path / "w.csv")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "noval" in bad.stderr and not (tmp_path / "w.csv").exists()
