"""Real-size smoke of both families: every shipped real config (``R50-*``, ``X101-*``,
``hrnet-w32-*``, ``hrnet-w48-*``) builds, trains 2 iterations on CPU at its own input sizes on
1920x1080 synthetic frames (with its own augmentation set), predicts the test frames with flip
TTA (the heatmap family on the R50 run's boxes), and the six runs ensemble into a submission.

The configs run as shipped; the only overrides are what a CPU smoke needs and do not change the
model: ``MODEL.WEIGHTS ''`` (random initialisation: the COCO checkpoint is a download),
``MODEL.DEVICE cpu``, ``SOLVER.MAX_ITER 2``, ``SOLVER.IMS_PER_BATCH 2`` (CPU time and memory;
benchmarks/gpu.py measures the configs' own batches on a GPU), ``DATALOADER.NUM_WORKERS 0`` and
``DATA.VAL_FRACTION 0`` (no validation pass). No GroupNorm / ``FREEZE_AT 0``: the R-CNN configs
keep their frozen BatchNorm. That pair is what *training from scratch to convergence* needs
(frozen BatchNorm diverges within a few hundred iterations without pretrained weights); it is
the user's override for that case (see the SCRATCH_HINT of engine/run.py and
configs/tiny-cpu.yaml), not something a config needs to build, train or predict.

Each command runs under a wrapper that reports its peak resident memory (``ru_maxrss`` of the
child) and metrics.json gives detectron2's time per iteration; the table is printed (``-s``)
and written to ``real_size.json`` in the test's folder.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_script

#: The real-size tier (``make test-real-size``, ``pytest --real-size`` or ``MK_REAL_SIZE=1``; CI runs
#: it after the full suite, ``.ci/run``): ~10 min on 2 idle cores (R50 27-32 s/iter, X101 58
#: s/iter at 2 threads), half the full suite's 20-minute budget on its own, so it is a stage of its
#: own rather than part of ``make test``. ``pytest --real-size tests/test_real_size.py -s``
#: prints the table.
pytestmark = [pytest.mark.slow, pytest.mark.real_size]

RCNN = ("R50-reference6", "R50-reference8", "X101-reference8")
HEATMAP = ("hrnet-w32-256x192", "hrnet-w48-384x288")
BOXES_FROM = "R50-reference8"

#: Runs a command and prints its peak resident memory (KiB on Linux) as the last line.
PEAK = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def _measured(script, *args):
    """``python code/<script>.py args`` -> (peak RSS in MiB, stdout)."""
    cmd = [sys.executable, "-c", PEAK, sys.executable, str(REPO / "code" / f"{script}.py"),
           *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    if proc.returncode != 0:
        raise AssertionError(f"{script}.py {' '.join(map(str, args))} exited {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    *out, peak = proc.stdout.strip().splitlines()
    return int(peak) / 1024, "\n".join(out)


def _seconds_per_iter(run):
    """From the run's summary line: ``done: 2 iterations in 271s`` (detectron2 records no
    per-iteration time in metrics.json for a 2-iteration run)."""
    import re

    n, s = re.search(r"done: (\d+) iterations in (\d+)s", (run / "log.txt").read_text()).groups()
    return int(s) / int(n)


@pytest.fixture(scope="module")
def real_size(tmp_path_factory):
    """Data, augmentation sets, the six runs and their test predictions, and the measures."""
    root = tmp_path_factory.mktemp("real_size")
    data, aug = root / "data", root / "augmented"
    run_script("make_synthetic", "--out", data, "--train", 8, "--test", 2, "--width", 1920,
               "--height", 1080, "--quiet")
    run_script("augmentation", "--data-root", data, "--out", aug, "--sets",
               "reference6,reference8", "--workers", 1, "--quiet")
    measures = {}
    for name in RCNN + HEATMAP:
        run = root / name
        peak, _ = _measured(
            "train", "--config-file", REPO / "configs" / f"{name}.yaml",
            "DATA.ROOT", data, "DATA.AUGMENTED_DIR", aug, "OUTPUT_DIR", run,
            "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", 2,
            "SOLVER.IMS_PER_BATCH", 2, "DATALOADER.NUM_WORKERS", 0, "DATA.VAL_FRACTION", 0,
        )
        boxes = () if name in RCNN else ("--boxes-from", root / BOXES_FROM)
        peak_predict, _ = _measured("predict", "--run", run, "--data-root", data, "--split",
                                    "test", "--flip-tta", *boxes)
        measures[name] = {"train_peak_mib": round(peak), "s_per_iter": _seconds_per_iter(run),
                          "predict_peak_mib": round(peak_predict)}
        print(f"\nreal size {name}: {measures[name]}", flush=True)
    sub = root / "submission.csv"
    run_script("ensemble", "--runs", *[root / n for n in RCNN + HEATMAP], "--data-root", data,
               "--split", "test", "--out", sub, "--no-picture")
    (root / "real_size.json").write_text(json.dumps(measures, indent=1))
    print("\nreal-size smoke (CPU, batch 2, 1920x1080 frames):")
    for name, m in measures.items():
        print(f"  {name:20s} train peak {m['train_peak_mib']:6d} MiB  {m['s_per_iter']:6.1f} s/iter  "
              f"predict (flip TTA) peak {m['predict_peak_mib']:6d} MiB")
    return root, data, sub, measures


@pytest.mark.slow
@pytest.mark.parametrize("name", RCNN + HEATMAP)
def test_real_config_trains_and_predicts_at_real_size(real_size, name):
    import torch

    root, data, _, measures = real_size
    run = root / name
    ckpt = torch.load(run / "model_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["iteration"] == 1  # two iterations: 0 and 1
    config = (run / "config.yaml").read_text()
    assert "WEIGHTS: ''" in config or 'WEIGHTS: ""' in config
    info = json.loads((run / "run_info.json").read_text())
    assert info["family"] == ("rcnn" if name in RCNN else "heatmap")
    pred = pd.read_csv(run / "predictions_test.csv")
    assert len(pred) == len(pd.read_csv(data / "sample_submission.csv"))
    assert (run / "predictions_test_noflip.csv").is_file()  # flip TTA ran
    assert np.isfinite(measures[name]["s_per_iter"]) and measures[name]["train_peak_mib"] > 0


@pytest.mark.slow
def test_real_size_runs_ensemble_into_a_submission(real_size):
    _, data, sub, _ = real_size
    got = pd.read_csv(sub)
    sample = pd.read_csv(data / "sample_submission.csv")
    assert list(got.columns) == list(sample.columns) and len(got) == len(sample)
    assert np.isfinite(got.drop(columns=[sample.columns[0]]).to_numpy(float)).all()
