#!/usr/bin/env python
"""Images per second: the kit's batched predictor vs detectron2's per-image DefaultPredictor loop.

kit:       ``motion_keypoints.models.rcnn.predictor.predict_images`` (workers and torch threads
           chosen by core count: on a small CPU machine a background thread reads and resizes
           the next batch while torch computes; the model sees batches; fp16 autocast on CUDA).
reference: ``DefaultPredictor(cfg)``, then ``cv2.imread -> predictor(img)`` for each image (the
           reference solution's inference loop).

Both load the same weights and run on the same images, side by side in one process, in rounds
whose order alternates (kit, reference), (reference, kit), ...; each timing is end to end: model
build and weight loading, worker start-up, reading, inference and taking the top person.
By default the model is configs/tiny-cpu.yaml with random weights (speed does not depend on
training) saved to a temporary file, with ``MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0`` so the
boxes always go through the keypoint head; ``--run outputs/<run>`` uses a trained run instead.
Images are synthetic, 640x360 by default (the full 1920x1080 competition size is slow on CPU;
pass --width 1920 --height 1080 for it).

  python benchmarks/predict.py
  python benchmarks/predict.py --run outputs/tiny-cpu --images 64 --batch-size 8 --workers 4

The machine's other load changes the figures a lot (a shared 2-core machine gave ratios from
0.8x to 3.2x within one run): compare medians of several rounds, on an idle machine if you can.
"""


import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import load_note, paired_rounds

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
GOAL = {"cpu": 1.3, "cuda": 3.0}
#: Top boxes overlapping at least this much count as the same detection.
SAME_BOX_IOU = 0.9


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", default=str(DEFAULT_CONFIG), help="default: configs/tiny-cpu.yaml")
    p.add_argument("--run", help="trained run folder (outputs/<run>); default: random weights")
    p.add_argument("--checkpoint", choices=("best", "final"), default="best", help="with --run")
    p.add_argument("--images", type=int, default=32, help="synthetic images (default 32)")
    p.add_argument("--width", type=int, default=640, help="image width (default 640)")
    p.add_argument("--height", type=int, default=360, help="image height (default 360)")
    p.add_argument("--batch-size", type=int, default=4, help="kit batch size (default 4)")
    p.add_argument(
        "--workers", type=int, default=0,
        help="kit data-loading worker processes (default: 0 = auto, chosen by core count)",
    )
    p.add_argument("--rounds", type=int, default=3, help="rounds of (kit, reference), order alternating")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads of the main process (default: torch's; --quick: 1)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 8 images at 320x180, 1 round, 1 thread")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.width, a.height, a.rounds = 8, 320, 180, 1
        a.threads = a.threads or 1
    if a.images < 1 or a.rounds < 1 or a.batch_size < 1 or a.workers < 0:
        p.error("need --images, --rounds, --batch-size >= 1 and --workers >= 0")
    if len(a.opts) % 2:
        p.error(f"config overrides come in KEY VALUE pairs, got {a.opts}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    return a


def build_cfg(args, work: Path):
    """The config both paths use, with ``MODEL.WEIGHTS`` pointing at a file."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.models.rcnn.predictor import load_run_config
    from motion_keypoints.utils import seed_everything

    if args.run:
        return load_run_config(Path(args.run), args.checkpoint, ["MODEL.DEVICE", args.device, *args.opts])
    opts = ["MODEL.WEIGHTS", "", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]
    cfg = setup_cfg(args.config_file, [*opts, "MODEL.DEVICE", args.device, *args.opts], freeze=False)
    if cfg.MODEL.WEIGHTS:  # given as an override
        cfg.freeze()
        return cfg
    seed_everything(0)
    model = build_model(cfg)
    DetectionCheckpointer(model, save_dir=str(work)).save("model_random")
    cfg.MODEL.WEIGHTS = str(work / "model_random.pth")
    cfg.freeze()
    return cfg


def run_kit(cfg, files, args) -> list:
    from motion_keypoints.models.rcnn.predictor import predict_images

    return predict_images(cfg, files, args.batch_size, args.workers, progress=False)["plain"]


def run_reference(cfg, files, args) -> list:
    from detectron2.engine import DefaultPredictor

    from motion_keypoints.engine.evaluator import top_person

    predictor = DefaultPredictor(cfg)
    out = []
    for f in files:
        img = cv2.imread(str(f))
        out.append(top_person(predictor(img)["instances"].to("cpu")))
    return out


def compare(kit: list, ref: list) -> str:
    """How many images have the same top detection in both, and their largest keypoint gap."""
    from motion_keypoints.geometry import box_iou

    same, gaps = 0, []
    for a, b in zip(kit, ref):
        if a is None or b is None:
            same += a is None and b is None
            continue
        if box_iou(a["box"], b["box"]) >= SAME_BOX_IOU:
            same += 1
            gaps.append(float(np.abs(a["keypoints"] - b["keypoints"]).max()))
    gap = f"{max(gaps):.3f} px" if gaps else "n/a (no shared detection)"
    none = sum(p is None for p in kit), sum(p is None for p in ref)
    return (
        f"sanity: same top detection (box IoU >= {SAME_BOX_IOU}) on {same}/{len(kit)} images; "
        f"max keypoint difference on those {gap}; images without detection kit {none[0]}, "
        f"reference {none[1]}"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    from motion_keypoints.data.layout import DataPaths
    from motion_keypoints.data.synthetic.writer import make_synthetic

    paths = {"kit": run_kit, "reference": run_reference}
    with tempfile.TemporaryDirectory(prefix="mk-bench-predict-") as tmp:
        work = Path(tmp)
        make_synthetic(work / "data", 1, args.images, args.width, args.height, seed=0, progress=False)
        files = sorted(DataPaths.from_root(work / "data").test_images.glob("*.jpg"))
        cfg = build_cfg(args, work)
        source = f"run {args.run} ({args.checkpoint})" if args.run else args.config_file
        if not args.run and cfg.MODEL.WEIGHTS.endswith("model_random.pth"):
            source += ", random weights"
        print(
            f"predict benchmark: {len(files)} synthetic images {args.width}x{args.height} "
            f"(resized to MIN_SIZE_TEST {cfg.INPUT.MIN_SIZE_TEST} / MAX {cfg.INPUT.MAX_SIZE_TEST}), "
            f"model {source}, SCORE_THRESH_TEST {cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST}, "
            f"device {cfg.MODEL.DEVICE}, torch threads {torch.get_num_threads()}"
        )
        from motion_keypoints.models.rcnn.predictor import loading_plan

        workers, threads = loading_plan(args.workers, cfg.MODEL.DEVICE)
        loading = (
            f"{workers} worker processes" if workers else "a background reading thread"
        ) + f", {threads} torch threads"
        print(
            f"kit: predict_images batch {args.batch_size}, {loading}"
            f"{', fp16 autocast' if cfg.MODEL.DEVICE.startswith('cuda') else ''}; reference: "
            "DefaultPredictor, cv2.imread -> predictor(img) per image; timings end to end (model "
            f"load included), {args.rounds} rounds, order alternating, after one untimed warm-up each"
        )
        warm = files[: args.batch_size]
        for fn in paths.values():
            fn(cfg, warm, args)
        speed, ratios, results = paired_rounds(
            {n: (lambda fs, fn=fn: fn(cfg, fs, args)) for n, fn in paths.items()},
            files, args.rounds, "reference", "kit",
        )
    kit_s, ref_s, ratio = (statistics.median(x) for x in (speed["kit"], speed["reference"], ratios))
    print(compare(results["kit"], results["reference"]))
    print(f"kit predict_images:          {kit_s:.2f} images/s (median of rounds)")
    print(f"reference DefaultPredictor:  {ref_s:.2f} images/s (median of rounds)")
    print(
        f"ratio kit/reference images/s: {ratio:.2f}x (median of {len(ratios)} paired rounds; "
        f"range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    note = load_note()
    if note:
        print(note)
    kind = "cuda" if cfg.MODEL.DEVICE.startswith("cuda") else "cpu"
    met = "MET" if ratio >= GOAL[kind] else "NOT MET"
    if min(ratios) < GOAL[kind] <= max(ratios):
        met += " (noisy: the rounds straddle the goal; rerun with more --rounds or on an idle machine)"
    print(f"verdict: kit {ratio:.2f}x the reference's speed (goal >= {GOAL[kind]}x on {kind}): {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
