"""Smoke runs of the speed benchmarks: they run end to end and print their ratio and verdict.

Timings are never asserted here (the benchmarks print them; see benchmarks/*.py).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# every test starts a benchmark script (trainings, predictions): the full suite only
pytestmark = pytest.mark.slow


def run_benchmark(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", ["train_step.py", "predict.py", "two_stage.py"])
def test_help(name):
    out = run_benchmark(name, "--help")
    assert "--quick" in out and "--device" in out


def test_train_step_quick():
    out = run_benchmark("train_step.py", "--quick")
    assert re.search(r"^ratio kit/d2 s/it: \d+\.\d{3} ", out, re.M), out
    assert re.search(r"^kit Trainer .*: \d+\.\d+ s/it", out, re.M), out
    assert re.search(r"^detectron2 DefaultTrainer: +\d+\.\d+ s/it", out, re.M), out
    assert re.search(r"^verdict: kit overhead [+-]\d+\.\d% .*: (MET|NOT MET)", out, re.M), out
    assert "evaluation: off for both" in out


def test_predict_quick():
    out = run_benchmark("predict.py", "--quick")
    assert re.search(r"^ratio kit/reference images/s: \d+\.\d{2}x ", out, re.M), out
    assert re.search(r"^verdict: .*\(goal >= [\d.]+x on (cpu|cuda)\): (MET|NOT MET)", out, re.M), out
    # Same weights, same images: the batched path finds the same top person as the loop.
    sanity = re.search(
        r"^sanity: same top detection .* on (\d+)/(\d+) images; max keypoint difference on "
        r"those ([\d.]+) px", out, re.M,
    )  # fmt: skip
    assert sanity, out
    same, total, gap = int(sanity.group(1)), int(sanity.group(2)), float(sanity.group(3))
    assert total == 8 and same >= total // 2 and gap < 1.0, out


def test_two_stage_quick():
    out = run_benchmark("two_stage.py", "--quick")
    assert re.search(r"^r-cnn alone .*: +\d+\.\d+ images/s", out, re.M), out
    assert re.search(r"^two-stage .*: +\d+\.\d+ images/s", out, re.M), out
    assert re.search(r"^ratio two-stage/r-cnn images/s: \d+\.\d{2}x ", out, re.M), out
    assert re.search(r"^second stage alone .*: \d+ ms per image", out, re.M), out
    # every image gets a pose from the heatmap stage, cropped on the R-CNN's own box
    sanity = re.search(r"^sanity: two-stage poses with finite keypoints (\d+)/(\d+); on the "
                       r"R-CNN's box (\d+)/(\d+)", out, re.M)
    assert sanity, out
    finite, total, same, found = map(int, sanity.groups())
    assert total == 8 and finite == total and same == found, out


def test_bad_overrides_are_refused():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--quick", "SOLVER.BASE_LR"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "KEY VALUE pairs" in proc.stderr
