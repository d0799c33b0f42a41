#!/usr/bin/env python
"""Seconds per training iteration: the kit's Trainer vs detectron2's plain DefaultTrainer.

Both trainers are built from the same config and train on the same registered datasets
(``register_run_datasets``: synthetic data in a temporary folder unless ``DATA.ROOT`` is given).
They run side by side in one process, in rounds of W warmup + N timed iterations each, the order
alternating (kit, d2), (d2, kit), ... so load from other processes hits both alike. An iteration is
timed around ``before_step + run_step + after_step``, so every hook's cost is counted.

Evaluation cannot run in detectron2's DefaultTrainer (it has no evaluator), so it is off for both:
``TEST.EVAL_PERIOD`` and ``SOLVER.CHECKPOINT_PERIOD`` are set beyond the run, so the kit's
evaluation and best-checkpoint hooks are installed but never fire.

  python benchmarks/train_step.py                       # tiny-cpu on synthetic data
  python benchmarks/train_step.py --iters 20 --rounds 6 SOLVER.IMS_PER_BATCH 2
"""


import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import load_note

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
GOAL_OVERHEAD = 0.05
#: Far beyond any benchmark run: evaluation, checkpoints and the final evaluation never fire.
NEVER = 10**8
QUICK_OPTS = ("SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "192")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG), help="default: configs/tiny-cpu.yaml")
    p.add_argument("--iters", type=int, default=10, help="timed iterations per trainer and round")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations before each timed run")
    p.add_argument("--rounds", type=int, default=4, help="rounds of (kit, d2), order alternating")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--images", type=int, default=40, help="synthetic training images (default 40)")
    p.add_argument("--width", type=int, default=384, help="synthetic image width (default 384)")
    p.add_argument("--height", type=int, default=216, help="synthetic image height (default 216)")
    p.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads (default: torch's; --quick: 1). On a busy machine 1 is far steadier",
    )
    p.add_argument(
        "--quick", action="store_true",
        help="smoke run: 12 images, 1 round of 1 + 1 iterations, batch 2 at 96 px, 1 thread",
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    if a.quick:
        a.iters, a.warmup, a.rounds, a.images = 1, 1, 1, 12
        a.opts = [*QUICK_OPTS, *a.opts]
        a.threads = a.threads or 1
    if a.iters < 1 or a.warmup < 0 or a.rounds < 1:
        p.error("need --iters >= 1, --warmup >= 0 and --rounds >= 1")
    if len(a.opts) % 2:
        p.error(f"config overrides come in KEY VALUE pairs, got {a.opts}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    return a


class TimedTrainer:
    """Drives a detectron2 trainer step by step (what ``TrainerBase.train`` does), so two
    trainers can take turns; each keeps its own EventStorage."""

    def __init__(self, name: str, trainer, device: str):
        from detectron2.utils.events import EventStorage

        self.name, self.trainer, self.sync = name, trainer, device.startswith("cuda")
        self.hook_seconds: list = []  # before_step + after_step of each timed iteration
        trainer.iter = trainer.start_iter
        trainer.storage = EventStorage(trainer.start_iter)
        with trainer.storage:
            trainer.before_train()

    def run(self, warmup: int, iters: int) -> list:
        """Seconds of each of ``iters`` iterations, after ``warmup`` untimed ones."""
        t = self.trainer
        times = []
        with t.storage:
            for i in range(warmup + iters):
                start = time.perf_counter()
                t.before_step()
                hooks = time.perf_counter() - start
                t.run_step()
                if self.sync:
                    torch.cuda.synchronize()
                mid = time.perf_counter()
                t.after_step()
                if self.sync:
                    torch.cuda.synchronize()
                end = time.perf_counter()
                if i >= warmup:
                    times.append(end - start)
                    self.hook_seconds.append(hooks + end - mid)
                t.iter += 1
        return times

    def close(self) -> None:
        with self.trainer.storage:
            self.trainer.after_train()


def build_cfg(args, data_root: str, output_dir: Path):
    from motion_keypoints.engine.config import setup_cfg

    opts = ["MODEL.DEVICE", args.device, "DATA.ROOT", data_root, *args.opts]
    opts += [
        "OUTPUT_DIR", str(output_dir), "SOLVER.MAX_ITER", str(NEVER),
        "TEST.EVAL_PERIOD", str(NEVER), "SOLVER.CHECKPOINT_PERIOD", str(NEVER),
    ]  # fmt: skip
    return setup_cfg(args.config_file, opts)


def build_trainers(args, work: Path):
    """The kit's Trainer and detectron2's DefaultTrainer on the same config, data and init."""
    from detectron2.engine import DefaultTrainer
    from detectron2.utils.logger import setup_logger

    from motion_keypoints.models.rcnn.trainer import Trainer, register_run_datasets
    from motion_keypoints.utils import seed_everything

    setup_logger()  # detectron2's trainers call it when not done; then quiet its metric printing
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    logging.getLogger("fvcore").setLevel(logging.WARNING)

    data_root = dict(zip(args.opts[::2], args.opts[1::2])).get("DATA.ROOT")
    if data_root is None:
        from motion_keypoints.data.synthetic.writer import make_synthetic

        data_root = str(work / "data")
        make_synthetic(data_root, args.images, 0, args.width, args.height, seed=0, progress=False)
    kit_cfg = build_cfg(args, data_root, work / "kit")
    d2_cfg = build_cfg(args, data_root, work / "d2")
    run_data = register_run_datasets(kit_cfg)
    seed = kit_cfg.SEED if kit_cfg.SEED >= 0 else 0
    trainers = []
    for name, cls, cfg in (("kit", Trainer, kit_cfg), ("d2", DefaultTrainer, d2_cfg)):
        seed_everything(seed)  # same initial weights and sampler order
        trainer = cls(cfg)
        trainer.resume_or_load(resume=False)
        trainers.append(TimedTrainer(name, trainer, args.device))
    return kit_cfg, run_data, trainers


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mk-bench-train-") as tmp:
        cfg, run_data, (kit, d2) = build_trainers(args, Path(tmp))
        print(
            f"train_step benchmark: {args.config_file} on {args.device}, "
            f"{run_data.n_train} training images from {cfg.DATA.ROOT}, "
            f"SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH}, "
            f"DATALOADER.NUM_WORKERS {cfg.DATALOADER.NUM_WORKERS}, torch threads {torch.get_num_threads()}"
        )
        print(
            "evaluation: off for both during timing (TEST.EVAL_PERIOD and SOLVER.CHECKPOINT_PERIOD "
            "set beyond the run: the kit's evaluation and best-checkpoint hooks are installed but "
            "never fire)"
        )
        print(
            f"{args.rounds} rounds x ({args.warmup} warmup + {args.iters} timed iterations) per "
            "trainer, order alternating kit/d2, d2/kit; an iteration = before_step + run_step + "
            "after_step (all hooks)"
        )
        means = {"kit": [], "d2": []}
        ratios = []
        for r in range(args.rounds):
            order = (kit, d2) if r % 2 == 0 else (d2, kit)
            for t in order:
                means[t.name].append(statistics.fmean(t.run(args.warmup, args.iters)))
            ratios.append(means["kit"][-1] / means["d2"][-1])
            print(
                f"round {r + 1}/{args.rounds}: kit {means['kit'][-1]:.4f} s/it, "
                f"d2 {means['d2'][-1]:.4f} s/it, ratio {ratios[-1]:.3f}",
                flush=True,
            )
        kit.close()
        d2.close()
    kit_s, d2_s, ratio = (statistics.median(x) for x in (means["kit"], means["d2"], ratios))
    hooks = {t.name: 1000 * statistics.fmean(t.hook_seconds) for t in (kit, d2)}
    print(
        f"kit Trainer (motion_keypoints): {kit_s:.4f} s/it (median of per-round means; "
        f"hooks {hooks['kit']:.2f} ms/it)"
    )
    print(
        f"detectron2 DefaultTrainer:      {d2_s:.4f} s/it (median of per-round means; "
        f"hooks {hooks['d2']:.2f} ms/it)"
    )
    print(
        f"ratio kit/d2 s/it: {ratio:.3f} (median of {len(ratios)} paired rounds; "
        f"range {min(ratios):.3f}-{max(ratios):.3f})"
    )
    note = load_note()
    if note:
        print(note)
    overhead = ratio - 1.0
    met = "MET" if overhead <= GOAL_OVERHEAD else "NOT MET"
    if min(ratios) <= 1.0 + GOAL_OVERHEAD < max(ratios):
        met += " (noisy: the rounds straddle the goal; rerun with more --rounds or on an idle machine)"
    print(f"verdict: kit overhead {overhead:+.1%} per iteration (goal <= {GOAL_OVERHEAD:.0%}): {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
