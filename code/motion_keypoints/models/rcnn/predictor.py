"""Batched prediction of a trained run, with optional horizontal-flip test-time augmentation.

Writes ``<run>/predictions_<split>.csv`` (:mod:`motion_keypoints.io.predictions`): per image the
chosen person's keypoints, keypoint scores, box, score and a ``detected`` flag (0: nobody found
above ``MODEL.ROI_HEADS.SCORE_THRESH_TEST``, or the ``track`` rule judged the followed person
missing; coordinates NaN). With flip TTA the un-augmented predictions are kept in
``predictions_<split>_noflip.csv``.

Every detected person of an image is kept until the person is chosen (:data:`PERSON_RULES`, see
:func:`choose_persons`): ``score`` (the highest detection score, the default), ``area`` (the
largest box), ``center`` (closest to the image centre) or ``track`` (continuity with the
neighbouring frames of the same clip and camera, :func:`motion_keypoints.motion.select.select_track`).
Flip TTA is merged per person (:func:`merge_flip_instances`) before the choice.
:func:`predict_frames` does the same on in-memory frames (the video pipeline).

Images are read with the kit's one reader (:func:`motion_keypoints.io.images.read_image`).
CPU speed: data-loading workers compete with torch's threads for the cores, so the number of
workers and torch threads is chosen by core count (:func:`loading_plan`); on a small machine the
images are decoded and resized in a background thread while torch computes the previous batch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ...engine.inference import (
    check_prediction_data,
    images_of_split,
    load_run_config,
    predictions_file,
)
from ...geometry import box_iou, flip_box, flip_points, from_continuous
from ...meta import FLIP_INDEX
from ...motion.select import IDENTITY_RULES, select_person, select_track
from ...motion.select import RULES as _RULES
from ...motion.smooth import parse_frame_name
from ...utils import thread_budget
from .mapper import read_image_as, to_format

#: predict.py's person rules (``at`` needs a point in a video's first frame: predict_video only).
PERSON_RULES = tuple(r for r in _RULES if r != "at")
#: Rules that follow a person through each clip and camera's frames.
SEQUENCE_RULES = ("track",) + tuple(r for r in IDENTITY_RULES if r != "at")

logger = logging.getLogger("motion_keypoints")

#: An instance (one detected person): ``keypoints`` (K, 2) pixel-index coordinates,
#: ``keypoint_scores`` (K,), ``box`` (4,) continuous coordinates, ``score``.
Instance = Dict[str, object]
DEFAULT_PERSON_RULE = "score"


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


def instances_to_dicts(instances) -> List[Instance]:
    """Every person of a detectron2 ``Instances`` as instance dicts, highest score first
    (keypoints in the kit's pixel-index coordinates, boxes continuous like the predictions CSV)."""
    if instances is None or len(instances) == 0:
        return []
    kps = instances.pred_keypoints.detach().cpu().numpy().astype(np.float64)
    boxes = instances.pred_boxes.tensor.detach().cpu().numpy().astype(np.float64)
    scores = instances.scores.detach().cpu().numpy().astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    return [
        {"keypoints": from_continuous(kps[i, :, :2]), "keypoint_scores": kps[i, :, 2],
         "box": boxes[i], "score": float(scores[i])}
        for i in order
    ]  # fmt: skip


def merge_flip_instances(
    plain: Sequence[Instance], mirrored: Sequence[Instance], width: int, min_iou: float = 0.5
) -> List[Instance]:
    """Flip TTA for every person of an image (:func:`merge_flip` per person): each mirrored
    instance is mapped back (:func:`unflip_keypoints`, :func:`unflip_box`) and averaged with the
    plain instance it overlaps most (box IoU >= ``min_iou``; plain instances by decreasing score,
    each mirrored one used once); unmatched instances of either pass are kept as they are.
    Returned highest score first."""
    back = [merge_flip(None, m, width) for m in mirrored]
    used: set = set()
    out = []
    for p in sorted(plain, key=lambda d: -d["score"]):
        best, best_iou = None, min_iou
        for j, b in enumerate(back):
            if j not in used:
                iou = box_iou(p["box"], b["box"])
                if iou >= best_iou:
                    best, best_iou = j, iou
        if best is None:
            out.append(p)
            continue
        used.add(best)
        out.append(_average(p, back[best]))
    out += [b for j, b in enumerate(back) if j not in used]
    return sorted(out, key=lambda d: -d["score"])


def _average(a: Instance, b: Instance) -> Instance:
    return {
        "keypoints": (np.asarray(a["keypoints"]) + np.asarray(b["keypoints"])) / 2,
        "keypoint_scores": (np.asarray(a["keypoint_scores"]) + np.asarray(b["keypoint_scores"])) / 2,
        "box": (np.asarray(a["box"]) + np.asarray(b["box"])) / 2,
        "score": (a["score"] + b["score"]) / 2,
    }


def choose_persons(
    names: Sequence[str],
    instances: Sequence[Sequence[Instance]],
    sizes: Sequence[tuple],
    rule: str = DEFAULT_PERSON_RULE,
) -> tuple:
    """``(persons, fallback)``: the chosen instance of each image (None: nobody) by ``rule``
    (:data:`PERSON_RULES`), and how many images fell back to ``score``.

    ``track`` groups the images by clip and camera (``<clip>_<camera>-<frame>.<ext>``,
    :func:`motion_keypoints.motion.smooth.parse_frame_name`), orders each group by frame and
    follows the person through it (:func:`motion_keypoints.motion.select.select_track`; it may
    give None where the followed person was missed and only someone else was detected).
    Images whose names do not parse are chosen by ``score`` and counted in ``fallback``."""
    if rule not in PERSON_RULES:
        raise ValueError(f"unknown person rule {rule!r}; choose one of {', '.join(PERSON_RULES)}")
    n = len(instances)
    persons: List[Optional[Instance]] = [None] * n
    by_frame = []
    groups: Dict[tuple, List[tuple]] = {}
    for i in range(n):
        parsed = parse_frame_name(Path(str(names[i])).name) if rule in SEQUENCE_RULES else None
        if parsed is not None:
            groups.setdefault(parsed[:2], []).append((parsed[2], i))
        else:
            by_frame.append(i)
    for i in by_frame:
        w, h = sizes[i]
        j = select_person(instances[i], "score" if rule in SEQUENCE_RULES else rule, w, h)
        persons[i] = None if j is None else instances[i][j]
    for members in groups.values():
        order = [i for _, i in sorted(members)]
        w, h = sizes[order[0]]
        chosen = select_track([instances[i] for i in order], rule, w, h)
        for i, j in zip(order, chosen):
            persons[i] = None if j is None else instances[i][j]
    return persons, (len(by_frame) if rule in SEQUENCE_RULES else 0)


def _model_input(image: np.ndarray, resize) -> dict:
    """One detectron2 model input of an image already in ``cfg.INPUT.FORMAT``: resized by
    ``resize`` (``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``, as DefaultPredictor), CHW."""
    h, w = image.shape[:2]
    resized = resize.get_transform(image).apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    return {"image": tensor, "height": h, "width": w}


def _test_resize(min_size: int, max_size: int):
    from detectron2.data import transforms as T

    return T.ResizeShortestEdge([min_size] * 2, max_size)


def _infer(model, inputs: List[dict], flip_tta: bool) -> tuple:
    """``(plain, merged)``: every person per input without and with flip TTA (merged is None
    without it). Runs under the caller's inference/autocast context."""
    batch = list(inputs)
    if flip_tta:
        batch += [dict(b, image=torch.flip(b["image"], dims=[2])) for b in inputs]
    outputs = model(batch)
    n = len(inputs)
    plain = [instances_to_dicts(outputs[j]["instances"].to("cpu")) for j in range(n)]
    if not flip_tta:
        return plain, None
    merged = [
        merge_flip_instances(plain[j], instances_to_dicts(outputs[n + j]["instances"].to("cpu")),
                             inputs[j]["width"])
        for j in range(n)
    ]  # fmt: skip
    return plain, merged


def _inference_context(on_gpu: bool):
    amp = torch.autocast("cuda", dtype=torch.float16) if on_gpu else contextlib.nullcontext()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(amp)
    return stack


def predict_frames(
    cfg, model, frames: Sequence[np.ndarray], flip_tta: bool = False
) -> List[List[Instance]]:
    """Every detected person of each in-memory frame (HxWx3 uint8 **BGR**, as
    :func:`motion_keypoints.io.images.read_image` and the video reader give), in one batch:
    the predictor's preprocessing (``cfg.INPUT.FORMAT``, resize to ``INPUT.MIN_SIZE_TEST``),
    flip TTA merged per person. Instances as :func:`instances_to_dicts` (keypoints in
    pixel-index coordinates, boxes continuous), highest score first. ``model`` is built and
    loaded by the caller (``build_model(cfg)``, eval mode, weights loaded)."""
    if not len(frames):
        return []
    resize = _test_resize(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    inputs = []
    for img in frames:
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"a frame must be HxWx3 uint8 BGR, got {img.dtype} {img.shape}")
        inputs.append(_model_input(to_format(img, cfg.INPUT.FORMAT), resize))
    with _inference_context(cfg.MODEL.DEVICE.startswith("cuda")):
        plain, merged = _infer(model, inputs, flip_tta)
    return merged if flip_tta else plain


class _ImageDataset(torch.utils.data.Dataset):
    """Reads and resizes images in worker processes, as DefaultPredictor would one by one."""

    def __init__(self, files: List[Path], min_size: int, max_size: int, fmt: str):
        self.files, self.min_size, self.max_size, self.fmt = files, min_size, max_size, fmt

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        img = read_image_as(self.files[i], self.fmt)
        item = _model_input(img, _test_resize(self.min_size, self.max_size))
        item["index"] = i
        return item


def _collate(batch):
    return batch


def loading_plan(num_workers: int = 0, device: str = "cpu", cores: int | None = None):
    """``(data-loading worker processes, torch threads)`` for prediction.

    ``num_workers`` > 0 is taken as given (torch threads: the cores the workers leave, at least
    1). 0 = auto: on CUDA, up to 4 workers (the GPU computes, the CPU decodes); on CPU, every
    worker process takes a core from torch, so up to 4 cores use no worker process (a background
    thread decodes the next batch: measured fastest on 2 cores), and larger machines give 1
    worker per 8 cores (at most 4) and the rest to torch. ``cores``: default
    :func:`~motion_keypoints.utils.thread_budget` (the affinity mask, no more than
    ``OMP_NUM_THREADS`` where that is set).
    """
    cores = cores or thread_budget()
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


def predict_images(
    cfg, files: List[Path], batch_size: int = 4, num_workers: int = 0, flip_tta: bool = False,
    progress: bool = True, person_rule: str = DEFAULT_PERSON_RULE, load_model=None,
) -> Dict[str, object]:
    """Run the model on image files and choose one person per image by ``person_rule``
    (:func:`choose_persons`; ``track`` groups the files by clip and camera from their names).

    Returns ``plain`` / ``flip`` (the chosen person per image without / with flip TTA; ``flip``
    None without it), ``instances`` (every person per image: ``{"plain": [...], "flip": [...]}``),
    ``sizes`` ((width, height) per image), ``person_rule`` and ``fallback`` (images ``track``
    chose by score because their names do not parse).
    ``num_workers``: data-loading worker processes; 0 = auto by core count (:func:`loading_plan`).
    ``load_model``: ``cfg -> model`` of another backend (the ONNX export:
    :class:`motion_keypoints.export.runtime.OnnxLoader`); default the run's torch checkpoint.
    """
    from ...engine.checkpoint import build_eval_model

    if person_rule not in PERSON_RULES:
        raise ValueError(f"unknown person rule {person_rule!r}; choose one of "
                         f"{', '.join(PERSON_RULES)}")
    on_gpu = cfg.MODEL.DEVICE.startswith("cuda")
    workers, threads = loading_plan(num_workers, cfg.MODEL.DEVICE)
    with _torch_threads(threads):
        model = build_eval_model(cfg, load_model)  # load_model: another backend (export.runtime)
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
        res = _run_model(model, loader, len(files), -(-len(files) // batch_size), on_gpu,
                         flip_tta, progress)
    names = [Path(f).name for f in files]
    res["plain"], fallback = choose_persons(names, res["instances"]["plain"], res["sizes"],
                                            person_rule)
    if flip_tta:
        res["flip"], _ = choose_persons(names, res["instances"]["flip"], res["sizes"],
                                        person_rule)
    res["person_rule"], res["fallback"] = person_rule, fallback
    return res


def _run_model(model, loader, n: int, n_batches: int, on_gpu: bool, flip_tta: bool,
               progress: bool) -> Dict[str, object]:
    plain: List[List[Instance]] = [[] for _ in range(n)]
    merged: List[List[Instance]] = [[] for _ in range(n)]
    sizes = [(0, 0)] * n
    with _inference_context(on_gpu):
        for batch in tqdm(loader, desc="predict", unit="batch", total=n_batches,
                          disable=not progress):
            batch = list(batch)
            p, m = _infer(model, batch, flip_tta)
            for j, b in enumerate(batch):
                i = b["index"]
                sizes[i] = (b["width"], b["height"])
                plain[i] = p[j]
                if flip_tta:
                    merged[i] = m[j]
    return {"plain": None, "flip": None, "sizes": sizes,
            "instances": {"plain": plain, "flip": merged if flip_tta else None}}


def predict_run(
    run, data_root, split: str = "test", checkpoint: str = "best", flip_tta: bool = False,
    batch_size: int = 4, num_workers: int = 0, opts: Sequence[str] = (), progress: bool = True,
    person_rule: str = DEFAULT_PERSON_RULE, out=None, tag=None, load_model=None,
) -> dict:
    """Predict a split with a trained run and write its predictions CSV(s) (``out``, else
    ``<run>/predictions_<split>[_<tag>].csv``), one person per image
    chosen by ``person_rule`` (:data:`PERSON_RULES`). Returns a summary (with the rule, the
    images ``track`` chose by score because their names do not parse, and the images where
    ``track`` judged the followed person missing although someone was detected)."""
    run, data_root = Path(run), Path(data_root)
    if person_rule not in PERSON_RULES:
        raise ValueError(f"unknown person rule {person_rule!r}; choose one of "
                         f"{', '.join(PERSON_RULES)}")
    check_prediction_data(data_root)
    cfg = load_run_config(run, checkpoint, opts)
    files = predictions_file(run, split, out, tag, flip_tta, data_root)
    out = files.out
    names, image_dir = images_of_split(run, data_root, split)
    t0 = time.perf_counter()
    res = predict_images(
        cfg, [image_dir / n for n in names], batch_size, num_workers, flip_tta, progress,
        person_rule=person_rule, load_model=load_model,
    )
    seconds = time.perf_counter() - t0
    files.write(names, res["plain"], res["flip"], res["sizes"])
    final, instances = (res["flip"], res["instances"]["flip"]) if flip_tta else (
        res["plain"], res["instances"]["plain"])
    missed = sum(p is None for p in final)
    dropped = sum(p is None and len(inst) > 0 for p, inst in zip(final, instances))
    several = sum(len(inst) > 1 for inst in instances)
    summary = {
        "run": str(run), "split": split, "images": len(names), "missed": missed,
        "flip_tta": flip_tta, "seconds": seconds, "out": str(out), "person_rule": person_rule,
        "several_persons": several, "rule_fallback": res["fallback"], "track_dropped": dropped,
    }
    rule_note = f"person rule {person_rule}"
    if person_rule == "track":
        rule_note += (f" ({res['fallback']} images by score: name not <clip>_<camera>-<frame>; "
                      f"{dropped} where the followed person was missed)")
    logger.info(
        "predicted %d %s images with %s (%s%s) in %.1fs: %d without a person, %d with several; "
        "%s -> %s", len(names), split, run.name, checkpoint, ", flip TTA" if flip_tta else "",
        seconds, missed, several, rule_note, out,
    )
    return summary
