#!/usr/bin/env python
"""The GPU check: one script, at most ~8 minutes on one GPU, to run the day a GPU is lent.

1. Training per family at real sizes (configs/R50-reference8.yaml at 1920x1080 frames,
   configs/hrnet-w32-256x192.yaml), random weights, the configs' own batches: seconds per
   iteration with and without AMP (``SOLVER.AMP.ENABLED``), their ratio, and the peak GPU memory
   of each (``torch.cuda.max_memory_allocated``). Iterations are timed with the kit's Trainer,
   step by step (benchmarks/train_step.py's ``TimedTrainer``, CUDA synchronised).
2. Prediction: the kit's batched predictor (fp16 autocast on CUDA) vs detectron2's per-image
   ``DefaultPredictor`` loop (benchmarks/predict.py, paired rounds).
3. Two-stage throughput: R-CNN boxes, then HRNet crops, vs the R-CNN alone
   (benchmarks/two_stage.py, paired rounds).

Every figure is printed beside its baseline with its conditions; nothing is asserted.

  python benchmarks/gpu.py                 # on a GPU machine
  python benchmarks/gpu.py --dry-run       # CPU, tiny configs and sizes: the script cannot rot

No GPU figure has been measured yet (docs/cli.md, "Performance on a GPU").
"""

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import load_note

ROOT = Path(__file__).resolve().parent.parent
REAL = {"rcnn": ROOT / "configs" / "R50-reference8.yaml",
        "heatmap": ROOT / "configs" / "hrnet-w32-256x192.yaml"}
TINY = {"rcnn": ROOT / "configs" / "tiny-cpu.yaml", "heatmap": ROOT / "configs" / "tiny-hrnet.yaml"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, tiny configs, 320x180 frames, 1 iteration, 1 round: checks that "
                   "every part runs (its figures mean nothing)")
    p.add_argument("--iters", type=int, default=20, help="timed training iterations (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5)")
    p.add_argument("--images", type=int, default=64, help="prediction images (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="prediction rounds (default 3)")
    p.add_argument("--batch-size", type=int, default=8, help="prediction batch (default 8)")
    a = p.parse_args(argv)
    a.device = "cuda" if torch.cuda.is_available() else "cpu"
    a.width, a.height = 1920, 1080
    a.configs, a.train_opts = REAL, {"rcnn": [], "heatmap": []}
    if a.dry_run:
        a.device, a.iters, a.warmup, a.images, a.rounds, a.batch_size = "cpu", 1, 0, 4, 1, 2
        a.width, a.height, a.configs = 320, 180, TINY
        a.train_opts = {"rcnn": ["SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(96,)",
                                 "INPUT.MAX_SIZE_TRAIN", "192"],
                        "heatmap": ["SOLVER.IMS_PER_BATCH", "2"]}
        torch.set_num_threads(1)
    elif a.device != "cuda":
        p.error("no GPU here: run with --dry-run (CPU smoke) or on a GPU machine")
    return a


def peak_memory_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def train_speed(args, family: str, amp: bool, data_root: Path, work: Path):
    """(median s/it, peak memory MiB, images per batch) of the kit's Trainer on ``family``."""
    from train_step import TimedTrainer

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.engine.datasets import register_run_datasets
    from motion_keypoints.utils import seed_everything

    never = str(10**8)
    out = work / f"{family}-amp{int(amp)}"
    opts = ["DATA.ROOT", str(data_root), "OUTPUT_DIR", str(out), "MODEL.WEIGHTS", "",
            "MODEL.DEVICE", args.device, "SOLVER.AMP.ENABLED", str(amp),
            "DATA.AUG_SET", "", "DATA.VAL_FRACTION", "0", "SOLVER.MAX_ITER", never,
            "TEST.EVAL_PERIOD", "0", "SOLVER.CHECKPOINT_PERIOD", never, *args.train_opts[family]]
    cfg = setup_cfg(str(args.configs[family]), opts)
    if family == "heatmap":
        from motion_keypoints.models.heatmap.trainer import HeatmapTrainer as cls
    else:
        from motion_keypoints.models.rcnn.trainer import Trainer as cls
    from motion_keypoints.models.rcnn.trainer import without_validation

    register_run_datasets(cfg)
    cfg = without_validation(cfg)
    seed_everything(0)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = cls(cfg)
    trainer.resume_or_load(resume=False)
    timed = TimedTrainer(f"{family} amp={amp}", trainer, args.device)
    times = timed.run(args.warmup, args.iters)
    timed.close()
    peak = peak_memory_mib(args.device)
    del trainer, timed
    return statistics.median(times), peak, cfg.SOLVER.IMS_PER_BATCH


def training_section(args, data_root: Path, work: Path) -> None:
    print(f"== 1. training at {'tiny (dry run)' if args.dry_run else 'real'} sizes, random "
          f"weights, {args.warmup} warm-up + {args.iters} timed iterations, device {args.device}")
    for family, config in args.configs.items():
        rows = {}
        for amp in ((False, True) if args.device.startswith("cuda") else (False,)):
            rows[amp] = train_speed(args, family, amp, data_root, work)
            s, peak, batch = rows[amp]
            print(f"{family:8s} {config.name}: AMP {'on ' if amp else 'off'} {1 / s:7.3f} it/s "
                  f"({s:.3f} s/it, batch {batch}), peak memory {peak:,.0f} MiB", flush=True)
        if True in rows:
            print(f"{family:8s} ratio AMP/fp32 it/s: {rows[False][0] / rows[True][0]:.2f}x; "
                  f"peak memory AMP/fp32: {rows[True][1] / rows[False][1]:.2f}")
        else:
            print(f"{family:8s} AMP: needs CUDA (detectron2's AMPTrainer), not run on {args.device}")


def prediction_sections(args) -> None:
    import predict as predict_bench
    import two_stage as two_stage_bench

    size = ["--images", str(args.images), "--width", str(args.width), "--height",
            str(args.height), "--rounds", str(args.rounds), "--batch-size", str(args.batch_size),
            "--device", args.device]
    if args.dry_run:
        size += ["--threads", "1"]
    print("== 2. prediction: batched (fp16 on CUDA) vs detectron2's per-image DefaultPredictor",
          flush=True)
    predict_bench.main(["--config-file", str(args.configs["rcnn"]), *size])
    print("== 3. two-stage throughput: R-CNN boxes + HRNet crops vs the R-CNN alone", flush=True)
    two_stage_bench.main(["--rcnn-config-file", str(args.configs["rcnn"]),
                          "--heatmap-config-file", str(args.configs["heatmap"]), *size])


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    from motion_keypoints.data.synthetic.writer import make_synthetic

    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    print(f"gpu check on {name}{' (DRY RUN: tiny configs, figures mean nothing)' if args.dry_run else ''}; "
          f"torch {torch.__version__}")
    with tempfile.TemporaryDirectory(prefix="mk-bench-gpu-") as tmp:
        work = Path(tmp)
        n_train = 8 if args.dry_run else 64
        make_synthetic(work / "data", n_train, 0, args.width, args.height, seed=0, progress=False)
        training_section(args, work / "data", work)
    prediction_sections(args)
    note = load_note()
    if note:
        print(note)
    print(f"gpu check done in {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
