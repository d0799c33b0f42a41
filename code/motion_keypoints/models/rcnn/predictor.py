"""Batched prediction of a trained run, with optional horizontal-flip test-time augmentation.

Writes ``<run>/predictions_<split>.csv`` (:mod:`motion_keypoints.io.predictions`): per image the
top-scoring person's keypoints, keypoint scores, box, score and a ``detected`` flag (0: nobody
found above ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``; coordinates NaN). With flip TTA the
un-augmented predictions are kept in ``predictions_<split>_noflip.csv``.

Images are read with the kit's one reader (:func:`motion_keypoints.io.images.read_image`).
CPU speed: data-loading workers compete with torch's threads for the cores, so the number of
workers and torch threads is chosen by core count (:func:`loading_plan`); on a small machine the
images are decoded and resized in a background thread while torch computes the previous batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ...data.layout import DataPaths, validate_data_root
from ...geometry import box_iou, flip_box, flip_points
from ...io.predictions import PREDICTION_SPLITS, prediction_frame, write_predictions
from ...io.runs import CHECKPOINTS, split_val_images
from ...io.tables import read_keypoint_csv
from ...meta import FLIP_INDEX
from .evaluator import top_person
from .mapper import read_image_as

logger = logging.getLogger("motion_keypoints")


def unflip_keypoints(kps: np.ndarray, width: int, flip_index: Sequence[int] = FLIP_INDEX) -> np.ndarray:
    """Map keypoints predicted on a horizontally mirrored image back to the original.

    ``kps`` is (..., K, 2+) in pixel-index coordinates: x is mirrored
    (:func:`motion_keypoints.geometry.flip_points`), and left/right keypoints swap places through
    the flip map. Extra columns (scores) are permuted along.
    """
    out = np.array(kps, dtype=np.float64, copy=True)[..., list(flip_index), :]
    out[..., :2] = flip_points(out[..., :2], width)
    return out


def unflip_box(box: np.ndarray, width: int) -> np.ndarray:
    """Mirror an (x1, y1, x2, y2) box in continuous coordinates back to the original image."""
    return flip_box(box, width)


def merge_flip(person: Optional[dict], flipped: Optional[dict], width: int, min_iou: float = 0.5):
    """Average the top person of the image with the (mapped-back) top person of its mirror when
    their boxes match (IoU >= ``min_iou``); otherwise keep the better-scored one."""
    if flipped is not None:
        kp = unflip_keypoints(
            np.concatenate([flipped["keypoints"], flipped["keypoint_scores"][:, None]], 1), width
        )
        flipped = {
            "keypoints": kp[:, :2],
            "keypoint_scores": kp[:, 2],
            "box": unflip_box(flipped["box"], width),
            "score": flipped["score"],
        }
    if person is None or flipped is None:
        return person if flipped is None else flipped
    if box_iou(person["box"], flipped["box"]) < min_iou:
        return person if person["score"] >= flipped["score"] else flipped
    return {
        "keypoints": (person["keypoints"] + flipped["keypoints"]) / 2,
        "keypoint_scores": (person["keypoint_scores"] + flipped["keypoint_scores"]) / 2,
        "box": (person["box"] + flipped["box"]) / 2,
        "score": (person["score"] + flipped["score"]) / 2,
    }


class _ImageDataset(torch.utils.data.Dataset):
    """Reads and resizes images in worker processes, as DefaultPredictor would one by one."""

    def __init__(self, files: List[Path], min_size: int, max_size: int, fmt: str):
        self.files, self.min_size, self.max_size, self.fmt = files, min_size, max_size, fmt

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from detectron2.data import transforms as T

        img = read_image_as(self.files[i], self.fmt)
        h, w = img.shape[:2]
        resized = T.ResizeShortestEdge([self.min_size] * 2, self.max_size).get_transform(img)
        resized = resized.apply_image(img)
        tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
        return {"image": tensor, "height": h, "width": w, "index": i}


def _collate(batch):
    return batch


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask; ``os.cpu_count()`` elsewhere)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def loading_plan(num_workers: int = 0, device: str = "cpu", cores: int | None = None):
    """``(data-loading worker processes, torch threads)`` for prediction.

    ``num_workers`` > 0 is taken as given (torch threads: the cores the workers leave, at least
    1). 0 = auto: on CUDA, up to 4 workers (the GPU computes, the CPU decodes); on CPU, every
    worker process takes a core from torch, so up to 4 cores use no worker process (a background
    thread decodes the next batch: measured fastest on 2 cores), and larger machines give 1
    worker per 8 cores (at most 4) and the rest to torch.
    """
    cores = cores or available_cores()
    if num_workers > 0:
        workers = num_workers
    elif device.startswith("cuda"):
        workers = min(4, max(1, cores - 1))
    else:
        workers = 0 if cores <= 4 else min(4, max(1, cores // 8))
    threads = cores if device.startswith("cuda") else max(1, cores - workers)
    return workers, threads


def _thread_prefetch(ds, batch_size: int):
    """Batches of ``ds`` read in one background thread, one batch ahead of the caller (OpenCV
    and PIL release the GIL while decoding and resizing)."""
    starts = range(0, len(ds), batch_size)

    def load(start):
        return [ds[i] for i in range(start, min(start + batch_size, len(ds)))]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict-read") as pool:
        pending = None
        for start in starts:
            nxt = pool.submit(load, start)
            if pending is not None:
                yield pending.result()
            pending = nxt
        if pending is not None:
            yield pending.result()


@contextlib.contextmanager
def _torch_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_run_config(run: Path, checkpoint: str = "best", opts: Sequence[str] = ()):
    """Config and weights file of a trained run folder."""
    from .config import setup_cfg

    run = Path(run)
    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(
            f"{run} is not a training run ({cfg_file} missing): train it with "
            f"python code/train.py --config-file CONFIG OUTPUT_DIR {run}"
        )
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"unknown checkpoint {checkpoint!r}; valid: {', '.join(CHECKPOINTS)}")
    weights = run / CHECKPOINTS[checkpoint]
    if checkpoint == "best" and not weights.is_file():
        logger.warning("%s has no model_best.pth (no validation?): using model_final.pth", run)
        weights = run / CHECKPOINTS["final"]
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} missing: has the training of {run} finished?")
    cfg = setup_cfg(str(cfg_file), ["MODEL.WEIGHTS", str(weights), *opts], freeze=False)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def images_of_split(run: Path, data_root: Path, split: str) -> tuple:
    """(image names, image folder) of a prediction split: test = sample_submission order, val =
    the run's validation frames (its split.json)."""
    paths = DataPaths.from_root(data_root)
    if split == "test":
        sub = read_keypoint_csv(paths.sample_submission)
        return list(sub["image"]), paths.test_images
    if split == "val":
        return split_val_images(run), paths.train_images
    raise ValueError(f"unknown split {split!r}; valid: {', '.join(PREDICTION_SPLITS)}")


def predict_images(
    cfg, files: List[Path], batch_size: int = 4, num_workers: int = 0, flip_tta: bool = False,
    progress: bool = True,
) -> Dict[str, list]:
    """Run the model on image files; returns per-image top persons without and with flip TTA.

    ``num_workers``: data-loading worker processes; 0 = auto by core count (:func:`loading_plan`).
    """
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    on_gpu = cfg.MODEL.DEVICE.startswith("cuda")
    workers, threads = loading_plan(num_workers, cfg.MODEL.DEVICE)
    with _torch_threads(threads):
        model = build_model(cfg)
        model.eval()
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        ds = _ImageDataset(
            files, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.INPUT.FORMAT
        )
        if workers > 0:
            loader = torch.utils.data.DataLoader(
                ds, batch_size=batch_size, num_workers=min(workers, len(files)),
                collate_fn=_collate, persistent_workers=False,
            )  # fmt: skip
        else:
            loader = _thread_prefetch(ds, batch_size)
        return _run_model(model, loader, len(files), -(-len(files) // batch_size), on_gpu,
                          flip_tta, progress)


def _run_model(model, loader, n: int, n_batches: int, on_gpu: bool, flip_tta: bool,
               progress: bool) -> Dict[str, list]:
    amp = torch.autocast("cuda", dtype=torch.float16) if on_gpu else contextlib.nullcontext()
    plain: List[Optional[dict]] = [None] * n
    merged: List[Optional[dict]] = [None] * n
    sizes = [(0, 0)] * n
    with torch.inference_mode(), amp:
        for batch in tqdm(loader, desc="predict", unit="batch", total=n_batches,
                          disable=not progress):
            inputs = list(batch)
            if flip_tta:
                inputs += [dict(b, image=torch.flip(b["image"], dims=[2])) for b in batch]
            outputs = model(inputs)
            for j, b in enumerate(batch):
                i = b["index"]
                sizes[i] = (b["width"], b["height"])
                plain[i] = top_person(outputs[j]["instances"].to("cpu"))
                if flip_tta:
                    mirrored = top_person(outputs[len(batch) + j]["instances"].to("cpu"))
                    merged[i] = merge_flip(plain[i], mirrored, b["width"])
    return {"plain": plain, "flip": merged if flip_tta else None, "sizes": sizes}


def predict_run(
    run, data_root, split: str = "test", checkpoint: str = "best", flip_tta: bool = False,
    batch_size: int = 4, num_workers: int = 0, opts: Sequence[str] = (), progress: bool = True,
) -> dict:
    """Predict a split with a trained run and write its predictions CSV(s). Returns a summary."""
    run, data_root = Path(run), Path(data_root)
    validate_data_root(data_root, check_images=False, splits=("train", "test"))
    cfg = load_run_config(run, checkpoint, opts)
    names, image_dir = images_of_split(run, data_root, split)
    t0 = time.perf_counter()
    res = predict_images(
        cfg, [image_dir / n for n in names], batch_size, num_workers, flip_tta, progress
    )
    seconds = time.perf_counter() - t0
    out = run / f"predictions_{split}.csv"
    if flip_tta:
        write_predictions(prediction_frame(names, res["plain"], res["sizes"]), run / f"predictions_{split}_noflip.csv")
        final = res["flip"]
    else:
        final = res["plain"]
        stale = run / f"predictions_{split}_noflip.csv"
        stale.unlink(missing_ok=True)
    write_predictions(prediction_frame(names, final, res["sizes"]), out)
    missed = sum(p is None for p in final)
    summary = {
        "run": str(run), "split": split, "images": len(names), "missed": missed,
        "flip_tta": flip_tta, "seconds": seconds, "out": str(out),
    }
    print(
        f"predicted {len(names)} {split} images with {run.name} ({checkpoint}"
        f"{', flip TTA' if flip_tta else ''}) in {seconds:.1f}s: {missed} without detection -> {out}"
    )
    return summary
