"""What a user sees (issue 9.3): known library warnings filtered by exact message, the kit's own
warnings visible, the kit's lines plain on the console, detectron2's log in the run's log.txt."""

import io
import logging
import subprocess
import sys
import warnings
from contextlib import redirect_stdout
from types import SimpleNamespace

import pytest
from conftest import REPO

from motion_keypoints.console import (
    LIBRARY_WARNINGS,
    quiet_library_warnings,
    setup_console,
    setup_run_logging,
)
from motion_keypoints.engine.progress import evaluation_summary


def test_known_library_warnings_are_filtered_and_the_kits_own_stay_visible():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_warnings()
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the "
                      "indexing argument.", UserWarning, stacklevel=2)
        warnings.warn("pkg_resources is deprecated as an API. See https://x", UserWarning, stacklevel=2)
        warnings.warn("`torch.jit.script` is deprecated. Please switch", FutureWarning, stacklevel=2)
        # the kit's own, and a library warning with another message, stay visible
        warnings.warn("keypoints outside the image", UserWarning, stacklevel=2)
        warnings.warn("torch.meshgrid is great", UserWarning, stacklevel=2)
        warnings.warn("unclosed file <_io.TextIOWrapper name='x'>", ResourceWarning, stacklevel=2)
    assert [str(w.message) for w in caught] == [
        "keypoints outside the image", "torch.meshgrid is great",
        "unclosed file <_io.TextIOWrapper name='x'>",  # only detectron2's is filtered
    ]
    assert all(len(entry) in (3, 4) and entry[2] for entry in LIBRARY_WARNINGS)  # each says why


def test_kit_lines_are_plain_and_libraries_log_only_to_the_run_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    out = io.StringIO()
    with redirect_stdout(out):
        setup_console()
        setup_run_logging(str(run))
        logging.getLogger("motion_keypoints").info("kit line")
        logging.getLogger("motion_keypoints").warning("kit warning")
        logging.getLogger("detectron2.engine.train_loop").info("library chatter")
        logging.getLogger("fvcore.common.checkpoint").info("fvcore chatter")
    for h in logging.getLogger("detectron2").handlers + logging.getLogger("fvcore").handlers:
        h.flush()
    assert out.getvalue().splitlines() == ["kit line", "warning: kit warning"]
    log = (run / "log.txt").read_text()
    for line in ("kit line", "kit warning", "library chatter", "fvcore chatter"):
        assert line in log


def test_evaluation_summary_is_one_line():
    res = {"keypoints_rmse": {"rmse": 12.345, "detection_rate": 0.5}, "keypoints": {"AP": 31.07}}
    # COCO AP with the kit's OKS sigmas of 1.0 says nothing: it stays off the console (issue 19)
    assert evaluation_summary(6, res) == (
        "evaluation at iteration 6: validation RMSE 12.35 px, detected 50.0 %")
    res["keypoints_rmse"].update(mean_pose_rmse=40.0, rmse_ratio=12.345 / 40, pck10=0.875,
                                 **{"rmse_camera/A": 10.0, "rmse_camera/B": 14.5})
    assert evaluation_summary(6, res) == (
        "evaluation at iteration 6: validation RMSE 12.35 px (mean pose 40.00 px, ratio 0.31), "
        "PCK@0.1 87.5 %, detected 50.0 %, per camera A 10.00, B 14.50")
    assert evaluation_summary(None, {}) == "evaluation: no results"


def test_progress_hook_reports_each_evaluation_once(capsys):
    from detectron2.utils.events import EventStorage

    from motion_keypoints.engine.progress import ProgressHook

    setup_console()
    hook = ProgressHook(4, enabled=True)
    with EventStorage(0) as storage:
        trainer = SimpleNamespace(start_iter=0, iter=0, storage=storage)
        hook.trainer = trainer
        hook.before_train()
        for it in range(4):
            trainer.iter = it
            storage.put_scalars(total_loss=1.0 / (it + 1), lr=0.01)
            if it == 1:
                trainer._last_eval_results = {"keypoints_rmse": {"rmse": 5.0}}
            hook.after_step()
        trainer.iter = 4  # where the loop leaves it
        trainer._last_eval_results = {"keypoints_rmse": {"rmse": 4.0}}  # the final evaluation
        hook.after_train()
    out = capsys.readouterr()
    lines = [x for x in out.out.splitlines() if x.startswith("evaluation")]
    assert lines == ["evaluation at iteration 2: validation RMSE 5.00 px",
                     "evaluation at iteration 4: validation RMSE 4.00 px"]
    assert "4/4" in out.err and "loss=" in out.err and "lr=" in out.err


@pytest.mark.slow
def test_train_help_describes_the_kit_without_warnings():
    proc = subprocess.run([sys.executable, "-W", "default", str(REPO / "code" / "train.py"),
                           "--help"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == ""
    text = proc.stdout
    for opt in ("--config-file", "--resume", "--eval-only", "--num-gpus", "--num-machines",
                "--machine-rank", "--dist-url", "--clear", "DATA.ROOT", "OUTPUT_DIR"):
        assert opt in text, opt
    assert "LazyConfig" not in text and "Warning" not in text
    assert text.count("(default:") >= 9
