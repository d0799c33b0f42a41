"""Multi-process training on CPU through detectron2's own launcher (patched at build time:
``launch(..., backend="GLOO")``): ``train.py --num-gpus 2 MODEL.DEVICE cpu``.

The slow tests run real 2-process trainings of both families and watch every file write with
an audit hook (a ``sitecustomize`` on PYTHONPATH, so the spawned workers carry it too): the run
folder is written by rank 0 only, each file by one process.
"""

import inspect
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, run_main, run_script

from motion_keypoints.engine.distributed import LaunchError, launch_backend, requested_device

TINY_RCNN = REPO / "configs" / "tiny-cpu.yaml"
TINY_HRNET = REPO / "configs" / "tiny-hrnet.yaml"


# ------------------------------------------------------------------------------------- fast


def test_the_installed_launcher_takes_a_backend_and_defaults_to_nccl():
    import importlib

    launch_module = importlib.import_module("detectron2.engine.launch")
    for fn in (launch_module.launch, launch_module._distributed_worker):
        assert inspect.signature(fn).parameters["backend"].default == "NCCL"
    source = inspect.getsource(launch_module._distributed_worker)
    assert "torch.cuda.set_device(local_rank)" in source  # the CUDA path is still there


def test_cpu_device_runs_gloo_processes_and_gpus_run_nccl():
    assert launch_backend("cpu", 2, gpus_here=0) == "GLOO"
    assert launch_backend("cpu", 1, num_machines=2, gpus_here=0) == "GLOO"
    assert launch_backend("cuda", 2, gpus_here=2) == "NCCL"
    # one process without a GPU: left to setup_cfg's device check
    assert launch_backend("cuda", 1, gpus_here=0) == "NCCL"


@pytest.mark.parametrize("num_gpus,num_machines,gpus_here", [(2, 1, 0), (4, 1, 2), (1, 2, 0)])
def test_more_gpus_than_the_machine_has_names_the_cpu_alternative(num_gpus, num_machines,
                                                                  gpus_here):
    with pytest.raises(LaunchError) as err:
        launch_backend("cuda", num_gpus, num_machines, gpus_here=gpus_here)
    msg = str(err.value)
    assert f"--num-gpus {num_gpus}" in msg and f"has {gpus_here} GPU" in msg
    assert "MODEL.DEVICE cpu" in msg and "\n" not in msg


def test_requested_device_is_the_asked_one_not_the_fallback(tmp_path):
    assert requested_device(str(REPO / "configs" / "R50-reference8.yaml")) == "cuda"
    assert requested_device(str(TINY_RCNN)) == "cpu"
    assert requested_device(str(TINY_RCNN), ["MODEL.DEVICE", "cuda:1"]) == "cuda:1"
    child = tmp_path / "child.yaml"
    child.write_text(f'_BASE_: "{TINY_HRNET}"\nSOLVER:\n  MAX_ITER: 3\n')
    assert requested_device(str(child)) == "cpu"  # through the _BASE_ chain
    assert requested_device(str(child), ["MODEL.DEVICE", "cuda", "MODEL.DEVICE", "cpu"]) == "cpu"


@pytest.mark.skipif(__import__("torch").cuda.device_count() >= 2, reason="this machine has 2 GPUs")
def test_train_num_gpus_without_gpus_is_one_error_line(capsys, tmp_path):
    from motion_keypoints.cli.train import main

    rc = main(["--config-file", str(REPO / "configs" / "R50-reference8.yaml"), "--num-gpus", "2",
               "DATA.ROOT", str(tmp_path / "nowhere"), "OUTPUT_DIR", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1, err
    assert err[0].startswith("error: --num-gpus 2") and "--num-gpus 2 MODEL.DEVICE cpu" in err[0]
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------- slow

#: Written into a folder on the workers' PYTHONPATH: logs (rank, pid, path) of every write
#: (open for writing, rename target, mkdir, remove) under $MK_AUDIT_RUN to $MK_AUDIT_LOG.
SITECUSTOMIZE = '''
import os, sys
_RUN = os.environ.get("MK_AUDIT_RUN")
_LOG = os.environ.get("MK_AUDIT_LOG")
_WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_busy = []

def _rank():
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except Exception:
        pass
    return -1

def _hook(event, args):
    if _busy or not _RUN:
        return
    if event == "open" and isinstance(args[2], int) and args[2] & _WRITE:
        path = args[0]
    elif event == "os.rename":
        path = args[1]
    elif event in ("os.mkdir", "os.remove", "os.rmdir"):
        path = args[0]
    else:
        return
    if not isinstance(path, (str, os.PathLike)):
        return
    path = os.path.abspath(os.fspath(path))
    if not path.startswith(_RUN + os.sep):
        return
    _busy.append(1)
    try:
        with open(_LOG, "a") as f:
            f.write(f"{_rank()}\\t{os.getpid()}\\t{event}\\t{os.path.relpath(path, _RUN)}\\n")
    finally:
        _busy.pop()

if _RUN and _LOG:
    sys.addaudithook(_hook)
'''


def _train(data, out, config, *extra, procs=2, audit=None, check=True):
    """``train.py`` with ``procs`` CPU processes; ``audit`` (a folder) logs the writes."""
    env = {"OMP_NUM_THREADS": "1"}
    if audit is not None:
        audit.mkdir(exist_ok=True)
        (audit / "sitecustomize.py").write_text(SITECUSTOMIZE)
        env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(audit), os.environ.get("PYTHONPATH")])),
                   MK_AUDIT_RUN=str(Path(out).resolve()), MK_AUDIT_LOG=str(audit / "writes.tsv"))
    opts = ["DATA.ROOT", data, "OUTPUT_DIR", out, "DATA.VAL_FRACTION", "0.25",
            "DATA.SPLIT_STRATIFY", "camera", "MODEL.DEVICE", "cpu"]
    return run_script("train", "--config-file", config, "--num-gpus", procs, "--dist-url", "auto",
                      *extra, *opts, env=env, check=check, timeout=900)


def _writes(audit):
    rows = [line.split("\t") for line in (audit / "writes.tsv").read_text().splitlines()]
    return [(int(rank), pid, event, path) for rank, pid, event, path in rows]


def _assert_rank0_writes_each_file_once(writes, required):
    """Of one launch: every write into the run folder is rank 0's (the launching process takes
    the lock, other ranks write their own log), each file is written by one process, and the
    ``required`` files are among them."""
    assert writes, "the audit hook saw no write"
    bad = [w for w in writes if w[0] != 0 and not (w[0] == -1 and w[3] == ".lock")
           and not (w[0] > 0 and w[3].startswith(f"log.txt.rank{w[0]}"))]
    assert not bad, f"written by another process than rank 0: {bad[:10]}"
    writers = {}
    for _, pid, _, path in writes:
        writers.setdefault(path, set()).add(pid)
    assert {path: pids for path, pids in writers.items() if len(pids) > 1} == {}
    missing = [name for name in required if name not in writers]
    assert not missing, f"not written: {missing}"


#: What a validated run writes.
RUN_FILES = ("run.json", "metrics.json", "split.json", "run_info.json", "last_checkpoint",
             "model_final.pth", "best_checkpoint.json", "model_best.pth", "config.yaml")


def _metrics(run):
    return [json.loads(x) for x in (run / "metrics.json").read_text().splitlines()]


def _rmse_of_predict_and_evaluate(run, data):
    """predict.py on the validation frames with the best checkpoint (in this process:
    conftest.run_main; a heatmap run on the ground-truth boxes, as its validation), scored by
    evaluate.py's library function."""
    from motion_keypoints.evaluation.evaluate import evaluate_files

    run_main("predict", "--run", run, "--data-root", data, "--split", "val", check=True)
    res = evaluate_files(run / "predictions_val.csv", data / "train_df.csv", True)
    split = json.loads((run / "split.json").read_text())
    assert res["images"] == len(split["val"]) >= 4
    return res["rmse"]


#: Keypoint R-CNN overrides that make one iteration's loss independent of how the batch is cut
#: into processes: every anchor and every proposal is sampled (no random subsampling), losses
#: normalised per image (not by the visible keypoints of the process's images), one input size
#: and no flip (no random augmentation, no padding differences under GroupNorm).
RCNN_DETERMINISTIC = [
    "SEED", 7, "SOLVER.IMS_PER_BATCH", 4, "INPUT.MIN_SIZE_TRAIN", "(216,)",
    "INPUT.RANDOM_FLIP", "none", "MODEL.RPN.BATCH_SIZE_PER_IMAGE", 100000,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN", 20, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 512,
    "MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS", False,
    # every proposal is a detection, so validation has a prediction per frame to gather
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,
    "SOLVER.WARMUP_ITERS", 0, "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", 1,
    "TEST.EVAL_PERIOD", 100,
]


@pytest.fixture(scope="module")
def rcnn_two_process(synthetic_data, tmp_path_factory):
    """A 2-process Keypoint R-CNN run: 1 iteration, then ``--resume`` to 3 (audited writes)."""
    root = tmp_path_factory.mktemp("mp_rcnn")
    run, audits = root / "run", (root / "audit-first", root / "audit-resumed")
    first = _train(synthetic_data, run, TINY_RCNN, *RCNN_DETERMINISTIC, "SOLVER.MAX_ITER", 1,
                   audit=audits[0])
    first_metrics = _metrics(run)
    resumed = _train(synthetic_data, run, TINY_RCNN, "--resume", *RCNN_DETERMINISTIC,
                     "SOLVER.MAX_ITER", 3, audit=audits[1])
    return run, audits, first_metrics, first.stdout + resumed.stdout


@pytest.mark.slow
def test_two_process_rcnn_run_is_written_once_by_rank_0(rcnn_two_process):
    run, audits, _, stdout = rcnn_two_process
    _assert_rank0_writes_each_file_once(_writes(audits[0]), RUN_FILES)
    _assert_rank0_writes_each_file_once(_writes(audits[1]), ("metrics.json", "model_final.pth"))
    assert stdout.count("training run to iteration 1") == 1  # one console: rank 0's
    assert (run / "log.txt.rank1").is_file()


@pytest.mark.slow
def test_two_process_rcnn_run_resumes(rcnn_two_process):
    import torch

    run, _, first_metrics, stdout = rcnn_two_process
    assert [m["iteration"] for m in first_metrics if "total_loss" in m] == [0]
    metrics = _metrics(run)
    losses = [m["iteration"] for m in metrics if "total_loss" in m]
    assert losses == [0, 2]  # iteration 0 kept once, the resumed run wrote its last one
    assert metrics[0] == first_metrics[0]
    assert (run / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert torch.load(run / "model_final.pth", weights_only=False)["iteration"] == 2
    log = (run / "log.txt").read_text()
    assert "resuming at iteration 1" in log
    assert json.loads((run / "run_info.json").read_text())["max_iter"] == 3


@pytest.mark.slow
def test_two_process_validation_gathers_every_rank(rcnn_two_process, synthetic_data):
    run, *_ = rcnn_two_process
    best = json.loads((run / "best_checkpoint.json").read_text())
    assert best["val_rmse"] == pytest.approx(_rmse_of_predict_and_evaluate(run, synthetic_data),
                                             abs=1e-3)


@pytest.mark.slow
def test_two_processes_of_batch_b_match_one_process_of_batch_2b(rcnn_two_process,
                                                               synthetic_data, tmp_path):
    """Same seed, so the same initial weights (DDP broadcasts rank 0's) and the same sampler
    permutation: rank r takes its every 2nd image, so the two processes see the 4 images the
    single process sees; the logged loss is the mean over the processes."""
    _, _, first_metrics, _ = rcnn_two_process
    single = tmp_path / "single"
    _train(synthetic_data, single, TINY_RCNN, *RCNN_DETERMINISTIC, "SOLVER.MAX_ITER", 1, procs=1)
    one = [m for m in _metrics(single) if "total_loss" in m][0]
    two = [m for m in first_metrics if "total_loss" in m][0]
    for key in ("total_loss", "loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg",
                "loss_keypoint"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key


@pytest.mark.slow
def test_two_process_heatmap_run(synthetic_data, tmp_path):
    """Written once by rank 0; the in-training validation (frames sharded over the two
    processes, gathered on rank 0) equals a one-process --eval-only of model_best.pth and
    predict.py + evaluate.py on it."""
    run, audit = tmp_path / "run", tmp_path / "audit"
    opts = ["SOLVER.MAX_ITER", 4, "SOLVER.IMS_PER_BATCH", 8, "SOLVER.CHECKPOINT_PERIOD", 2,
            "TEST.EVAL_PERIOD", 2]
    _train(synthetic_data, run, TINY_HRNET, *opts, audit=audit)
    _assert_rank0_writes_each_file_once(_writes(audit), RUN_FILES)
    info = json.loads((run / "run_info.json").read_text())
    assert info["family"] == "heatmap" and np.isfinite(info["val_rmse"])
    best = json.loads((run / "best_checkpoint.json").read_text())
    # the same checkpoint validated by one process, which sees every frame itself
    _train(synthetic_data, run, TINY_HRNET, "--eval-only", *opts, procs=1)
    (single,) = run.glob("inference/*/keypoints_rmse.json")
    assert best["val_rmse"] == pytest.approx(json.loads(single.read_text())["metrics"]["rmse"],
                                             abs=1e-3)
    assert best["val_rmse"] == pytest.approx(_rmse_of_predict_and_evaluate(run, synthetic_data),
                                             abs=1e-3)
