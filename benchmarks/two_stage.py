#!/usr/bin/env python
"""Images per second: two-stage prediction (Keypoint R-CNN boxes, then heatmap crops) vs the
Keypoint R-CNN alone.

r-cnn:     ``motion_keypoints.models.rcnn.predictor.predict_images`` (the kit's batched R-CNN
           predictor; its keypoints are the result).
two-stage: the same R-CNN call for the person boxes, then the heatmap model on the crops of
           those boxes (``models.heatmap.predictor.predict_crops``, what ``python code/predict.py
           --run <heatmap run> --boxes-from <R-CNN run>`` runs; an image without a box uses the
           whole image).

Both run on the same images, side by side in one process, in rounds whose order alternates;
each timing is end to end: model builds and weight loading, reading, inference, decoding.
By default the models are configs/tiny-cpu.yaml and configs/tiny-hrnet.yaml with random weights
(speed does not depend on training) saved to temporary files, with
``MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0`` so every image gets a box; ``--rcnn-run`` and
``--heatmap-run`` use trained runs instead. ``--flip-tta`` flips in both paths.

  python benchmarks/two_stage.py
  python benchmarks/two_stage.py --rcnn-run outputs/tiny-cpu --heatmap-run outputs/tiny-hrnet

The machine's other load changes the figures a lot: compare medians of several rounds, on an
idle machine if you can. There is no goal: the ratio is the price of the second stage.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_note, paired_rounds

ROOT = Path(__file__).resolve().parent.parent
RCNN_CONFIG = ROOT / "configs" / "tiny-cpu.yaml"
HEATMAP_CONFIG = ROOT / "configs" / "tiny-hrnet.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rcnn-config-file", default=str(RCNN_CONFIG), help="default: configs/tiny-cpu.yaml")
    p.add_argument("--heatmap-config-file", default=str(HEATMAP_CONFIG),
                   help="default: configs/tiny-hrnet.yaml")
    p.add_argument("--rcnn-run", help="trained Keypoint R-CNN run folder; default: random weights")
    p.add_argument("--heatmap-run", help="trained heatmap run folder; default: random weights")
    p.add_argument("--images", type=int, default=32, help="synthetic images (default 32)")
    p.add_argument("--width", type=int, default=640, help="image width (default 640)")
    p.add_argument("--height", type=int, default=360, help="image height (default 360)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="R-CNN images per batch; heatmap crops per batch x4 (default 4)")
    p.add_argument(
        "--workers", type=int, default=0,
        help="R-CNN data-loading worker processes (default: 0 = auto, chosen by core count)",
    )
    p.add_argument("--flip-tta", action="store_true", help="flip test in both paths")
    p.add_argument("--rounds", type=int, default=3, help="rounds of (r-cnn, two-stage), order alternating")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument(
        "--threads", type=int, default=0,
        help="torch CPU threads of the main process (default: torch's; --quick: 1)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 8 images at 320x180, 1 round, 1 thread")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.width, a.height, a.rounds = 8, 320, 180, 1
        a.threads = a.threads or 1
    if a.images < 1 or a.rounds < 1 or a.batch_size < 1 or a.workers < 0:
        p.error("need --images, --rounds, --batch-size >= 1 and --workers >= 0")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    if a.device == "auto":
        a.device = "cuda" if torch.cuda.is_available() else "cpu"
    return a


def build_cfg(config_file, run, device: str, work: Path, name: str, opts=()):
    """A frozen config with ``MODEL.WEIGHTS`` pointing at a file (random weights without a run)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.models.heatmap import meta_arch  # noqa: F401  (registers TopDownHeatmap)
    from motion_keypoints.models.rcnn.predictor import load_run_config
    from motion_keypoints.utils import seed_everything

    if run:
        return load_run_config(Path(run), "best", ["MODEL.DEVICE", device, *opts])
    cfg = setup_cfg(str(config_file), ["MODEL.WEIGHTS", "", "MODEL.DEVICE", device, *opts],
                    freeze=False)
    seed_everything(0)
    model = build_model(cfg)
    DetectionCheckpointer(model, save_dir=str(work)).save(name)
    cfg.MODEL.WEIGHTS = str(work / f"{name}.pth")
    cfg.freeze()
    return cfg


def run_rcnn(rcnn_cfg, files, args) -> list:
    from motion_keypoints.models.rcnn.predictor import predict_images

    out = predict_images(rcnn_cfg, files, args.batch_size, args.workers, args.flip_tta,
                         progress=False)
    return out["flip"] if args.flip_tta else out["plain"]


#: Seconds of the second stage (heatmap model load, crops, inference, decoding) of each call.
SECOND_STAGE = []


def run_two_stage(rcnn_cfg, heatmap_cfg, files, args) -> list:
    """R-CNN boxes, then the heatmap model on their crops (end to end, model load included)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.io.images import image_size
    from motion_keypoints.models.heatmap.predictor import predict_crops

    persons = run_rcnn(rcnn_cfg, files, args)
    start = time.perf_counter()
    model = build_model(heatmap_cfg)
    model.eval()
    DetectionCheckpointer(model).load(heatmap_cfg.MODEL.WEIGHTS)
    records = []
    for i, (f, p) in enumerate(zip(files, persons)):
        if p is None:  # nobody found: the whole image (continuous coordinates)
            w, h = image_size(f)
            box, score = np.array([0.0, 0.0, w, h]), 0.0
        else:
            box, score = p["box"], p["score"]
        records.append({"file_name": str(f), "index": i, "image_id": i, "person_box": box,
                        "box_score": float(score)})
    res = predict_crops(heatmap_cfg, model, records, args.batch_size * 4, 0, args.flip_tta,
                        progress=False)
    SECOND_STAGE.append(time.perf_counter() - start)
    return res["flip"] if args.flip_tta else res["plain"]


def sanity(rcnn: list, two: list) -> str:
    """Both paths give one pose per image with finite keypoints, on the same boxes."""
    n = len(rcnn)
    finite = sum(p is not None and np.isfinite(p["keypoints"]).all() for p in two)
    same = sum(a is not None and b is not None and np.allclose(a["box"], b["box"])
               for a, b in zip(rcnn, two))
    found = sum(p is not None for p in rcnn)
    return (f"sanity: two-stage poses with finite keypoints {finite}/{n}; on the R-CNN's box "
            f"{same}/{found} (images with an R-CNN detection {found}/{n})")


def main(argv=None) -> int:
    args = parse_args(argv)
    from motion_keypoints.data.layout import DataPaths
    from motion_keypoints.data.synthetic.writer import make_synthetic

    with tempfile.TemporaryDirectory(prefix="mk-bench-two-stage-") as tmp:
        work = Path(tmp)
        make_synthetic(work / "data", 1, args.images, args.width, args.height, seed=0, progress=False)
        files = sorted(DataPaths.from_root(work / "data").test_images.glob("*.jpg"))
        rcnn_cfg = build_cfg(args.rcnn_config_file, args.rcnn_run, args.device, work, "rcnn_random",
                             ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
        heatmap_cfg = build_cfg(args.heatmap_config_file, args.heatmap_run, args.device, work,
                                "heatmap_random")
        from motion_keypoints.models.heatmap.data import input_size_of

        w, h = input_size_of(heatmap_cfg)
        print(
            f"two-stage benchmark: {len(files)} synthetic images {args.width}x{args.height}, "
            f"R-CNN {args.rcnn_run or Path(args.rcnn_config_file).name + ' (random weights)'}, "
            f"heatmap {args.heatmap_run or Path(args.heatmap_config_file).name + ' (random weights)'}"
            f" on {w}x{h} crops, flip test {'on' if args.flip_tta else 'off'}, device "
            f"{args.device}, torch threads {torch.get_num_threads()}; timings end to end (model "
            f"loads included), {args.rounds} rounds, order alternating, after one untimed warm-up each"
        )
        paths = {
            "r-cnn": lambda fs: run_rcnn(rcnn_cfg, fs, args),
            "two-stage": lambda fs: run_two_stage(rcnn_cfg, heatmap_cfg, fs, args),
        }
        for fn in paths.values():
            fn(files[: args.batch_size])
        SECOND_STAGE.clear()
        speed, ratios, results = paired_rounds(paths, files, args.rounds, "r-cnn", "two-stage")
    rcnn_s, two_s, ratio = (statistics.median(x) for x in (speed["r-cnn"], speed["two-stage"], ratios))
    print(sanity(results["r-cnn"], results["two-stage"]))
    print(f"r-cnn alone (predict_images):  {rcnn_s:.2f} images/s (median of rounds)")
    print(f"two-stage (r-cnn + heatmap):   {two_s:.2f} images/s (median of rounds)")
    print(
        f"ratio two-stage/r-cnn images/s: {ratio:.2f}x (median of {len(ratios)} paired rounds; "
        f"range {min(ratios):.2f}-{max(ratios):.2f})"
    )
    print(f"second stage alone (heatmap load, crops, model, decoding): "
          f"{1000 * statistics.median(SECOND_STAGE) / len(files):.0f} ms per image (median of rounds)")
    note = load_note()
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
