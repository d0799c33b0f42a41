"""Augmentation throughput: the kit's worker processes against a plain serial loop.

Renders the same set from the same synthetic images twice in one run: ``build_sets`` with its
workers (validation of the data root included), and the reference solution's loop
(``cv2.imread`` -> albumentations -> ``cv2.imwrite``, one image after the other). Prints the
images/s of each and their ratio (goal: >= 1.8x with 2 workers on 2 cores).

    python benchmarks/augmentation.py --n-images 40 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2

from motion_keypoints.augment.config import (
    AugmentationConfig,
    default_config_path,
    load_augmentation_config,
)
from motion_keypoints.augment.ops import is_deterministic
from motion_keypoints.augment.render import build_sets, transform_dict
from motion_keypoints.data.layout import DataPaths
from motion_keypoints.data.synthetic.writer import make_synthetic
from motion_keypoints.io.tables import keypoints_array, read_keypoint_csv

GOAL = 1.8


def serial_loop(root: Path, out: Path, set_name: str, config: AugmentationConfig) -> int:
    """The reference's loop: read, transform, write, one image and one transform at a time."""
    paths = DataPaths.from_root(root)
    df = read_keypoint_csv(paths.train_csv)
    set_def = config.get_set(set_name)
    transforms = transform_dict(config, fuse=False)  # plain albumentations, as the reference
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for image, kps in zip(df["image"], keypoints_array(df)):
        img = cv2.imread(str(paths.train_images / image))
        for name in set_def.transforms:
            copies = 1 if is_deterministic(config.resolve(name)) else set_def.copies
            for c in range(copies):
                result = transforms[name](image=img, keypoints=kps)
                dst = out / f"{Path(image).stem}__{name}__{c}.jpg"
                cv2.imwrite(
                    str(dst), result["image"], [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality]
                )
                n += 1
    return n


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the kit's workers), all threads."""
    return sum(
        r.ru_utime + r.ru_stime
        for r in (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=40, help="synthetic source images")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--workers", type=int, default=2, help="the kit's worker processes")
    parser.add_argument("--set", default="reference8", help="set of configs/augmentation.yaml")
    parser.add_argument("--config", default=str(default_config_path()))
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs; best kept")
    parser.add_argument(
        "--work-dir", default=None, help="keep data and outputs here (default: temp)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 images, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_images, args.repeats = 4, 1

    config = load_augmentation_config(args.config)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-augmentation-"))
    kit, serial = [], []  # (wall s, CPU s, images, render-stage img/s)
    try:
        root = make_synthetic(
            work / "data",
            n_train=args.n_images,
            n_test=1,
            width=args.width,
            height=args.height,
            seed=0,
            progress=False,
        )
        for p in DataPaths.from_root(root).train_images.iterdir():
            p.read_bytes()  # both contenders start from a warm page cache
        for _ in range(args.repeats):
            for d in ("kit", "serial"):
                shutil.rmtree(work / d, ignore_errors=True)
            t0, c0 = time.perf_counter(), cpu_seconds()
            [summary] = build_sets(
                root, work / "kit", [args.set], workers=args.workers, config=config, progress=False
            )
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            kit.append((wall, cpu, summary["outputs"], summary["images_per_second"]))
            t0, c0 = time.perf_counter(), cpu_seconds()
            n = serial_loop(root, work / "serial", args.set, config)
            serial.append((time.perf_counter() - t0, cpu_seconds() - c0, n, None))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    kit_s, kit_cpu, n_kit, render_rate = min(kit)
    serial_s, serial_cpu, n_serial, _ = min(serial)
    if n_kit != n_serial:
        print(f"error: the kit wrote {n_kit} images, the serial loop {n_serial}", file=sys.stderr)
        return 1
    kit_rate, serial_rate = n_kit / kit_s, n_serial / serial_s
    print(
        f"set {args.set!r}: {args.n_images} source images {args.width}x{args.height} -> "
        f"{n_kit} images; best of {args.repeats} alternating runs; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"kit, {args.workers} workers: {kit_s:6.2f} s {kit_rate:6.1f} img/s end to end, "
        f"{kit_cpu:5.2f} CPU s (validation included; render stage {render_rate:.1f} img/s)"
    )
    print(
        f"serial loop:        {serial_s:6.2f} s {serial_rate:6.1f} img/s, {serial_cpu:5.2f} CPU s"
    )
    ratio = kit_rate / serial_rate
    print(
        f"ratio kit/serial images/s: {ratio:.2f}x end to end, "
        f"{render_rate / serial_rate:.2f}x render stage"
    )
    verdict = "MET" if ratio >= GOAL else "NOT MET"
    print(
        f"verdict: {ratio:.2f}x (goal >= {GOAL}x with 2 workers on 2 idle cores; here "
        f"{args.workers} workers, {os.cpu_count()} CPUs): {verdict}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
