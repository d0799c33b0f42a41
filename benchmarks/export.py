#!/usr/bin/env python
"""CPU images per second: onnxruntime (the ONNX export) vs torch, per family, side by side.

torch:       the run's checkpoint, as ``predict.py`` runs it (``--backend torch``).
onnxruntime: its export (``python code/export.py --run RUN --format onnx``), as
             ``predict.py --backend onnxruntime`` runs it: the same predictor code (reading,
             resizing or cropping, batching, decoding, post-processing); only the network runs in
             onnxruntime, with as many threads as torch.

- Keypoint R-CNN: ``predict_images`` on the images (``--batch-size`` images per call; the
  export runs them one by one).
- heatmap: ``predict_crops`` on one whole-image box per image (crops of the crop size, x4 batch).

Each timing is the predictor with the model loaded (reading, preprocessing, network,
decoding), in rounds whose order alternates (torch, onnxruntime), (onnxruntime, torch), ... after
one untimed warm-up each (``_common.paired_rounds``); the one-off load (torch: build + checkpoint;
onnxruntime: session) is timed apart (median of 3). By default the runs are configs/tiny-cpu.yaml and
configs/tiny-hrnet.yaml with random weights (speed does not depend on training), the R-CNN with
``MODEL.ROI_HEADS.SCORE_THRESH_TEST 0.0`` so every box goes through the keypoint head; they are
exported first (not timed). ``--rcnn-run``/``--heatmap-run`` take trained runs with their
export (``RUN/export``). Also printed: the largest keypoint difference between the backends.

  python benchmarks/export.py
  python benchmarks/export.py --rcnn-run outputs/tiny-cpu --heatmap-run outputs/tiny-hrnet

The machine's other load changes the figures a lot: compare the medians of several rounds, on an
idle machine if you can. There is no goal: the ratio says what onnxruntime buys on this CPU.
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
CONFIGS = {"rcnn": ROOT / "configs" / "tiny-cpu.yaml", "heatmap": ROOT / "configs" / "tiny-hrnet.yaml"}
#: The random R-CNN keeps every box (so the keypoint head always runs).
RCNN_OPTS = ["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rcnn-run", help="trained Keypoint R-CNN run, exported; default: random weights")
    p.add_argument("--heatmap-run", help="trained heatmap run, exported; default: random weights")
    p.add_argument("--families", default="rcnn,heatmap", help="default: rcnn,heatmap")
    p.add_argument("--images", type=int, default=32, help="synthetic images (default 32)")
    p.add_argument("--width", type=int, default=640, help="image width (default 640)")
    p.add_argument("--height", type=int, default=360, help="image height (default 360)")
    p.add_argument("--batch-size", type=int, default=4,
                   help="R-CNN images per batch; heatmap crops per batch x4 (default 4)")
    p.add_argument("--flip-tta", action="store_true", help="flip test in both backends")
    p.add_argument("--rounds", type=int, default=3, help="paired rounds, order alternating")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads of torch and onnxruntime (default: torch's; --quick: 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 8 images at 320x180, 1 round, 1 thread")
    a = p.parse_args(argv)
    if a.quick:
        a.images, a.width, a.height, a.rounds = 8, 320, 180, 1
        a.threads = a.threads or 1
    a.families = [f for f in a.families.split(",") if f]
    if not set(a.families) <= set(CONFIGS) or not a.families:
        p.error(f"--families: choose from {', '.join(CONFIGS)}")
    if a.images < 1 or a.rounds < 1 or a.batch_size < 1:
        p.error("need --images, --rounds and --batch-size >= 1")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    return a


def random_run(family: str, out: Path, data_root: Path) -> Path:
    """A run folder with random weights, as a training leaves it (holding the run's lock)."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.io.lock import RunLock
    from motion_keypoints.io.runs import write_run_info
    from motion_keypoints.models.heatmap import meta_arch  # noqa: F401  (registers it)
    from motion_keypoints.utils import seed_everything

    seed_everything(0)
    cfg = setup_cfg(str(CONFIGS[family]), ["DATA.ROOT", str(data_root), "OUTPUT_DIR", str(out)])
    model = build_model(cfg)
    out.mkdir(parents=True)
    with RunLock(out):
        (out / "config.yaml").write_text(cfg.dump())
        DetectionCheckpointer(model, save_dir=str(out)).save("model_final")
        write_run_info(out, data_root=data_root, aug_set="", n_train=0, n_val=0, max_iter=0,
                       family=family)
    return out


def _persons_rcnn(cfg, files, args, model):
    from motion_keypoints.models.rcnn.predictor import predict_images

    res = predict_images(cfg, files, args.batch_size, 0, args.flip_tta, progress=False,
                         load_model=lambda _cfg: model)
    return res["flip"] if args.flip_tta else res["plain"]


def _persons_heatmap(cfg, files, args, model):
    from motion_keypoints.io.images import image_size
    from motion_keypoints.models.heatmap.predictor import predict_crops

    records = []
    for i, f in enumerate(files):
        w, h = image_size(f)
        records.append({"file_name": str(f), "index": i, "image_id": i,
                        "person_box": np.array([0.0, 0.0, w, h]), "box_score": 1.0})
    res = predict_crops(cfg, model, records, args.batch_size * 4, 0, args.flip_tta, progress=False)
    return res["flip"] if args.flip_tta else res["plain"]


def _load_seconds(load, repeats: int = 3) -> float:
    """Median seconds of loading a model (torch: build + checkpoint; onnxruntime: session)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        load()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def max_gap(a: list, b: list) -> str:
    gaps = [float(np.abs(p["keypoints"] - q["keypoints"]).max())
            for p, q in zip(a, b) if p is not None and q is not None]
    both = sum(p is not None and q is not None for p, q in zip(a, b))
    return f"{max(gaps):.4f} px on {both}/{len(a)} images" if gaps else "n/a (no person)"


def bench_family(family: str, run: Path, files, args, opts) -> dict:
    from motion_keypoints.export.exporters import load_torch_model
    from motion_keypoints.export.manifest import check_export
    from motion_keypoints.export.runtime import load_onnx_model
    from motion_keypoints.models.rcnn.predictor import load_run_config

    cfg = load_run_config(run, "best", opts)
    manifest = check_export(run, None, "best", opts)
    loads = {"torch": lambda: load_torch_model(cfg),
             "onnxruntime": lambda: load_onnx_model(cfg, manifest)}
    models = {name: load() for name, load in loads.items()}
    persons = _persons_rcnn if family == "rcnn" else _persons_heatmap
    paths = {name: (lambda fs, m=m: persons(cfg, fs, args, m)) for name, m in models.items()}
    for fn in paths.values():
        fn(files[: args.batch_size])
    print(f"--- {family}: run {run}", flush=True)
    speed, ratios, results = paired_rounds(paths, files, args.rounds, "torch", "onnxruntime")
    med = {k: statistics.median(v) for k, v in speed.items()}
    return {"speed": med, "ratio": statistics.median(ratios), "range": (min(ratios), max(ratios)),
            "gap": max_gap(results["torch"], results["onnxruntime"]), "rounds": len(ratios),
            "load": {name: _load_seconds(load) for name, load in loads.items()}}


def main(argv=None) -> int:
    args = parse_args(argv)
    from motion_keypoints.data.layout import DataPaths
    from motion_keypoints.data.synthetic.writer import make_synthetic
    from motion_keypoints.export.exporters import export_run

    given = {"rcnn": args.rcnn_run, "heatmap": args.heatmap_run}
    out = {}
    with tempfile.TemporaryDirectory(prefix="mk-bench-export-") as tmp:
        work = Path(tmp)
        make_synthetic(work / "data", 1, args.images, args.width, args.height, seed=0, progress=False)
        files = sorted(DataPaths.from_root(work / "data").test_images.glob("*.jpg"))
        print(f"export benchmark: {len(files)} synthetic images {args.width}x{args.height}, CPU, "
              f"torch {torch.__version__} and onnxruntime with {torch.get_num_threads()} threads, "
              f"flip test {'on' if args.flip_tta else 'off'}; timings: the predictor with the model "
              f"loaded (load timed apart), {args.rounds} rounds, order alternating, after one untimed "
              "warm-up each")
        for family in args.families:
            run, opts = (Path(given[family]), []) if given[family] else (
                random_run(family, work / family, work / "data"),
                RCNN_OPTS if family == "rcnn" else [])
            if not given[family]:
                export_run(run, opts=opts, image=files[0])
            out[family] = bench_family(family, run, files, args, opts)
    for family, r in out.items():
        print(f"{family:8s} torch {r['speed']['torch']:.2f} images/s | onnxruntime "
              f"{r['speed']['onnxruntime']:.2f} images/s | ratio onnxruntime/torch "
              f"{r['ratio']:.2f}x (median of {r['rounds']} paired rounds; range "
              f"{r['range'][0]:.2f}-{r['range'][1]:.2f}) | max keypoint difference {r['gap']} | "
              f"load once: torch {r['load']['torch']:.2f}s, onnxruntime "
              f"{r['load']['onnxruntime']:.2f}s")
    note = load_note()
    if note:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
