"""Augmentation sets: named albumentations transforms rendered into image folders.

A *set* (declared in ``configs/augmentation.yaml``) is a list of transform names, a number of
copies and a seed. :func:`build_sets` renders every training image through every transform of
the set into ``OUT/<set>/images/<stem>__<transform>__<copy>.jpg`` and writes
``OUT/<set>/annotations.csv`` (the train CSV columns plus ``source_image`` and ``transform``) and
``OUT/<set>/manifest.json``.

Transform names resolve, in this order, to an entry of the config's ``transforms:`` section, a
built-in name (:data:`BUILTIN_TRANSFORMS`), or a parametrised name: ``random_crop_<H>x<W>``,
``center_crop_<H>x<W>`` (height x width, as albumentations) and ``rotate<DEG>``. ``A+B`` applies
A then B. Horizontal flips also swap the left/right keypoint labels (``meta.FLIP_INDEX``), so
``left_*`` stays the person's left. Keypoints that leave the frame keep their coordinates.
Coordinates are the kit's continuous pixel coordinates (see :mod:`motion_keypoints.geometry`),
rounded to 1/1000 px after a transform.

Reproducibility: every output's randomness comes from (set seed, source image, transform, copy)
only, so results do not depend on the number of workers or their order.

Resume: a source image is finished when all its JPEGs exist (each written to a temporary name,
then renamed) and its record ``OUT/<set>/records/<image>.json`` (the keypoints of its outputs,
written after the JPEGs) exists. A re-run skips finished images and rebuilds ``annotations.csv``
from the records. The manifest holds a hash of the resolved set definition, the source CSV and
the library versions; when it differs, the set is rebuilt from scratch.

``--limit K`` (only the first K training images) never touches the complete set: a limited build
is its own set, ``OUT/<set>-limit<K>/``, whose manifest says ``"limit": K`` and names the set it
was made from (``"base_set"``).

The manifest records what training checks before it uses a set: ``"complete"`` (true only after
every image and ``annotations.csv`` are written), ``"data_root"`` (resolved), the source
``train_df.csv`` sha256 (``source.train_csv_sha256``), the ``label_overrides.csv`` sha256
(``source.overrides_sha256``, null without the file), the hash of the set definition alone
(``definition_hash``), ``hash`` (definition + sources + library versions) and the sha256 of
the finished ``annotations.csv`` (``annotations_sha256``: training refuses a set whose
annotations were edited after the build).

Configs are :mod:`.config`, transforms :mod:`.ops`, a set's folder and manifest :mod:`.setdir`;
the command line is :mod:`motion_keypoints.cli.augmentation`.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

import numpy as np

from ..data.layout import DataPaths, load_train_df, validate_data_root
from ..io.images import write_jpeg
from ..io.outputs import remove_output
from ..io.tables import keypoints_array, keypoints_frame, write_keypoint_csv
from ..meta import KEYPOINT_NAMES
from ..utils import atomic_path, atomic_write_text, file_sha256
from .config import AugmentationConfig, SetDef, load_augmentation_config
from .ops import (
    AugmentationError,
    Chain,
    _albu_ops,
    _apply_chain,
    _compose,
    is_deterministic,
    read_source_image,
    task_seed,
)
from .setdir import (
    complete_manifest,
    library_versions,
    limited_set_name,
    reset_set_dir,
    running_manifest,
    set_definition,
    set_hash,
    stale_reason,
)

logger = logging.getLogger(__name__)

EXTRA_COLUMNS = ("source_image", "transform")

# --------------------------------------------------------------------------- one image


def transform_dict(
    config: AugmentationConfig | None = None,
    image_size: Tuple[int, int] = (1920, 1080),
    fuse: bool = True,
) -> Dict[str, Any]:
    """Every named transform of a config (built-ins, its ``transforms:`` section and the names
    its sets use) as an ``A.Compose`` with keypoints, for a ``(width, height)`` image.

    Flips mirror x only here; :func:`augment_image` also swaps the left/right labels.
    ``fuse=False`` keeps a rotation and the crop after it as two transforms (plain albumentations).
    """
    config = config or load_augmentation_config()
    width, height = image_size
    out = {}
    names = config.known_names() + [t for s in config.sets.values() for t in s.transforms]
    for name in dict.fromkeys(names):
        ops, _ = _albu_ops(config.resolve(name), (height, width), config.oversize, fuse)
        out[name] = _compose(ops)
    return out


def augment_image(
    image: np.ndarray,
    keypoints,
    transform: str,
    seed: int = 0,
    config: AugmentationConfig | None = None,
    label: str = "image",
):
    """Apply one named transform: ``(image, keypoints (K, 2), notes)``.

    Keypoints follow the pixels (a flip also swaps the left/right labels); keypoints that leave
    the frame keep their coordinates. Raises :class:`AugmentationError` on NaN keypoints.
    """
    config = config or load_augmentation_config()
    chain = config.resolve(transform)
    return _apply_chain(
        image, keypoints, chain, seed, config.oversize, f"{label}: transform {transform!r}"
    )


# --------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class _Output:
    image: str
    transform: str
    copy: int
    chain: Chain
    seed: int


@dataclass(frozen=True)
class _Task:
    source: str
    image: str
    keypoints: Tuple[Tuple[float, float], ...]
    outputs: Tuple[_Output, ...]
    images_dir: str
    records_dir: str
    jpeg_quality: int
    oversize: str


def _render_source(task: _Task) -> dict:
    """Render all outputs of one source image, then write its record. Runs in a worker."""

    image = None
    outputs = []
    for out in task.outputs:
        dst = Path(task.images_dir) / out.image
        if all(kind == "identity" for kind, _ in out.chain) and task.source.lower().endswith(
            (".jpg", ".jpeg")
        ):
            with atomic_path(dst, kind="image") as tmp:
                shutil.copyfile(task.source, tmp)
            kps, notes = np.asarray(task.keypoints, np.float64), []
        else:
            if image is None:
                image = read_source_image(task.source)  # the kit's one image reader
            label = f"{task.source}: transform {out.transform!r} (copy {out.copy})"
            img, kps, notes = _apply_chain(
                image, task.keypoints, out.chain, out.seed, task.oversize, label
            )
            write_jpeg(dst, img, task.jpeg_quality)
        outputs.append(
            {
                "image": out.image,
                "transform": out.transform,
                "copy": out.copy,
                "keypoints": kps.tolist(),
                "notes": notes,
            }
        )
    record = {"source_image": task.image, "outputs": outputs}
    atomic_write_text(Path(task.records_dir) / f"{task.image}.json", json.dumps(record),
                      kind="augmentation record")
    return record


def _init_worker() -> None:
    """One image per process: OpenCV runs single-threaded. 0 (not 1) also keeps a forked child
    away from the parent's OpenCV thread pool, which it inherits without its threads."""
    import cv2

    cv2.setNumThreads(0)


def _read_record(path: Path, outputs: Sequence[_Output], images_dir: Path) -> dict | None:
    """The record of a finished source image, or None when it must be (re)rendered."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = [o["image"] for o in record.get("outputs", [])]
    if names != [o.image for o in outputs]:
        return None
    if not all((images_dir / n).is_file() for n in names):
        return None
    return record


def _plan(df, set_def: SetDef, config: AugmentationConfig) -> List[Tuple[str, List[_Output]]]:
    """Per source image (CSV order): its outputs in set order, then copy order."""
    chains = {t: config.resolve(t) for t in set_def.transforms}
    plan = []
    for image in df["image"]:
        stem = Path(image).stem
        outs = []
        for t in set_def.transforms:
            copies = 1 if is_deterministic(chains[t]) else set_def.copies
            for c in range(copies):
                seed = task_seed(set_def.seed, image, t, c)
                outs.append(_Output(f"{stem}__{t}__{c}.jpg", t, c, chains[t], seed))
        plan.append((image, outs))
    return plan


def _run_tasks(tasks: List[_Task], workers: int, name: str, progress: bool) -> List[dict]:
    from tqdm import tqdm

    records = []
    total = sum(len(t.outputs) for t in tasks)
    progress = progress and total > 0
    if workers <= 1 or len(tasks) <= 1:
        with tqdm(total=total, unit="img", desc=name, disable=not progress) as bar:
            for task in tasks:
                records.append(_render_source(task))
                bar.update(len(task.outputs))
        return records
    # fork starts workers at once (the parent has albumentations loaded); elsewhere spawn.
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(min(workers, len(tasks)), initializer=_init_worker) as pool:
        with tqdm(total=total, unit="img", desc=name, disable=not progress) as bar:
            for record in pool.imap_unordered(_render_source, tasks, chunksize=1):
                records.append(record)
                bar.update(len(record["outputs"]))
    return records


def _summarise_notes(records: Iterable[dict]) -> Dict[str, Dict[str, int]]:
    adjusted: Dict[str, Dict[str, int]] = {}
    for record in records:
        for out in record["outputs"]:
            for note in out["notes"]:
                per = adjusted.setdefault(out["transform"], {})
                per[note] = per.get(note, 0) + 1
    return {t: dict(sorted(v.items())) for t, v in sorted(adjusted.items())}


def build_set(
    data_root,
    out,
    set_name: str,
    config: AugmentationConfig,
    df,
    csv_sha256: str,
    workers: int,
    limit: int | None = None,
    progress: bool = True,
    sources: Dict[str, Any] | None = None,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Render one set of an already validated data root; see :func:`build_sets`. With
    ``limit``, the set goes to its own folder ``<set>-limit<K>`` (a complete set is never
    shrunk). A set rebuilt from scratch is said in one line (to ``echo``, else logged)."""
    t0 = time.perf_counter()
    paths = DataPaths.from_root(data_root)
    set_def = config.get_set(set_name)
    out_name = limited_set_name(set_name, limit)
    set_dir = Path(out) / out_name
    images_dir, records_dir = set_dir / "images", set_dir / "records"
    versions = library_versions()
    definition = set_definition(config, set_def)
    digest = set_hash(definition, csv_sha256, versions)

    reason = stale_reason(set_dir, digest, limit)
    if reason:
        _say(echo, f"{out_name}: {reason}: rebuilding the set from scratch")
        reset_set_dir(set_dir)
    images_dir.mkdir(parents=True, exist_ok=True)
    records_dir.mkdir(parents=True, exist_ok=True)
    manifest = running_manifest(paths, out_name, set_name, digest, definition, csv_sha256,
                                 sources or {}, limit, versions)  # fmt: skip
    atomic_write_text(set_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n",
                      kind="set manifest")
    for leftover in [*images_dir.glob(".*.tmp*"), *records_dir.glob(".*.tmp*")]:
        leftover.unlink()

    rows = df if limit is None else df.iloc[:limit]
    plan = _plan(rows, set_def, config)
    records, tasks = _pending(plan, keypoints_array(rows), paths, images_dir, records_dir, config)
    t_render = time.perf_counter()
    for record in _run_tasks(tasks, workers, set_name, progress):
        records[record["source_image"]] = record
    render_seconds = time.perf_counter() - t_render
    stale = _remove_stale(plan, images_dir, records_dir)
    n_outputs = _write_annotations(plan, records, set_dir / "annotations.csv")
    adjusted = _summarise_notes(records[image] for image, _ in plan)
    n_rendered = sum(len(t.outputs) for t in tasks)
    summary = {
        "set": out_name,
        "dir": str(set_dir),
        "source_images": len(plan),
        "outputs": n_outputs,
        "rendered": n_rendered,
        "skipped": n_outputs - n_rendered,
        "stale_removed": len(stale),
        "rebuilt": reason,
        "workers": workers,
        "wall_seconds": round(time.perf_counter() - t0, 3),
        "render_seconds": round(render_seconds, 3),
        "images_per_second": round(n_rendered / render_seconds, 2) if n_rendered else None,
        "adjusted": adjusted,
    }
    complete_manifest(manifest, summary, set_dir)
    return summary


def _say(echo: Callable[[str], None] | None, line: str) -> None:
    """A console line of the build: to ``echo`` (a command's printer) when given, else logged."""
    if echo is not None:
        echo(line)
    else:
        logger.info(line)


def _pending(plan, kps: np.ndarray, paths: DataPaths, images_dir: Path, records_dir: Path,
             config: AugmentationConfig) -> Tuple[Dict[str, dict], List[_Task]]:  # fmt: skip
    """The records of the source images already finished, and the tasks of the others."""
    records: Dict[str, dict] = {}
    tasks: List[_Task] = []
    for (image, outs), pts in zip(plan, kps):
        record = _read_record(records_dir / f"{image}.json", outs, images_dir)
        if record is not None:
            records[image] = record
            continue
        tasks.append(_Task(str(paths.train_images / image), image,
                           tuple(map(tuple, pts.tolist())), tuple(outs), str(images_dir),
                           str(records_dir), config.jpeg_quality, config.oversize))  # fmt: skip
    return records, tasks


def _remove_stale(plan, images_dir: Path, records_dir: Path) -> List[Path]:
    """Remove the images and records the plan does not make (an older definition's)."""
    expected_images = {o.image for _, outs in plan for o in outs}
    expected_records = {f"{image}.json" for image, _ in plan}
    stale = [p for p in images_dir.iterdir() if p.name not in expected_images]
    stale += [p for p in records_dir.iterdir() if p.name not in expected_records]
    for p in stale:
        remove_output(p)
    return stale


def _write_annotations(plan, records: Dict[str, dict], path: Path) -> int:
    """Write ``annotations.csv`` from the records, in plan order; returns its row count."""
    rows_out = [
        (records[image]["source_image"], o) for image, _ in plan for o in records[image]["outputs"]
    ]
    frame = keypoints_frame(
        [o["image"] for _, o in rows_out],
        np.array([o["keypoints"] for _, o in rows_out], np.float64).reshape(
            len(rows_out), len(KEYPOINT_NAMES), 2
        ),
        extra={
            "source_image": [source for source, _ in rows_out],
            "transform": [o["transform"] for _, o in rows_out],
        },
    )
    write_keypoint_csv(frame, path)
    return len(rows_out)


def default_workers() -> int:
    """Render processes of ``--workers 0`` (auto): the cores this process may use."""
    from ..utils import available_cores

    return available_cores()


def check_out_folder(data_root, out) -> Path:
    """``out`` (the sets' parent folder) is a writable folder, not inside the data folder's
    images nor one of its CSVs, nor inside an augmentation set (a folder with manifest.json)."""
    from ..io.outputs import OutputError, check_output_dir, register_inputs

    register_inputs(data_root)
    check_output_dir(out, "augmentation sets")
    probe = Path(os.path.realpath(os.path.abspath(out)))
    for folder in (probe, *probe.parents):
        if (folder / "manifest.json").is_file() and (folder / "annotations.csv").is_file():
            raise OutputError(
                f"--out {out} is inside the augmentation set {folder}; give the folder that "
                f"holds the sets, e.g. {folder.parent}"
            )
    return Path(out)


def build_sets(
    data_root,
    out="augmented",
    set_names: Sequence[str] = ("demo",),
    workers: int | None = None,
    limit: int | None = None,
    config=None,
    progress: bool = True,
    allow_far_points: bool = False,
    echo: Callable[[str], None] | None = None,
) -> List[dict]:
    """Validate the data root, then render each named set into ``out/<set>`` (with ``limit``:
    ``out/<set>-limit<K>``, from the first K training images; a complete set is never shrunk).

    ``workers`` None or 0: one per core. Returns one summary dict per set (counts,
    ``rendered``/``skipped``, wall time, adjustments). Unknown set names and a bad ``out``
    fail before any work, with the closest known name / the way out. One line per set (and
    per set rebuilt from scratch) goes to ``echo`` (a command's printer), else to the log.
    """
    if not isinstance(config, AugmentationConfig):
        config = load_augmentation_config(config)
    for name in set_names:
        config.get_set(name)
    if limit is not None and limit < 1:
        raise AugmentationError(f"--limit must be a positive number of images, got {limit}")
    workers = default_workers() if not workers else workers
    if workers < 1:
        raise AugmentationError(f"--workers must be at least 0 (0: one per core), got {workers}")
    paths = DataPaths.from_root(data_root)
    check_out_folder(paths.root, out)
    validate_data_root(paths.root, splits=("train",), allow_far_points=allow_far_points)
    df = load_train_df(paths.root)  # label_overrides.csv applied
    stems = [Path(i).stem for i in df["image"]]
    clash = sorted(s for s, n in Counter(stems).items() if n > 1)
    if clash:
        raise AugmentationError(
            f"{paths.train_csv}: images {', '.join(clash[:5])} share a file stem with another "
            "image; rename them so that output names stay unique"
        )
    # The labels the set is made from: the CSV and, when present, its overrides.
    csv_sha256 = file_sha256(paths.train_csv)
    sources: Dict[str, Any] = {"train_csv_sha256": csv_sha256, "overrides_csv": None,
                               "overrides_sha256": None}
    if paths.overrides.is_file():
        sources.update(overrides_csv=str(paths.overrides),
                       overrides_sha256=file_sha256(paths.overrides))
        csv_sha256 = f"{csv_sha256}+{sources['overrides_sha256']}"
    summaries = []
    from ..io.outputs import output_dir

    for name in set_names:
        with output_dir(out, "augmentation sets"), output_dir(
                Path(out) / limited_set_name(name, limit), "augmentation set"):
            s = build_set(paths.root, out, name, config, df, csv_sha256, workers, limit,
                          progress, sources, echo)
        _say(echo, describe_set(s))
        summaries.append(s)
    return summaries


def describe_set(s: dict) -> str:
    """The one-line summary of a built set (a :func:`build_set` summary)."""
    rate = f", {s['images_per_second']:.1f} img/s" if s["images_per_second"] else ""
    n_adjusted = sum(sum(v.values()) for v in s["adjusted"].values())
    adjusted = (
        f"; {n_adjusted} outputs adjusted (crop larger than the image, see manifest.json)"
        if n_adjusted
        else ""
    )
    return (
        f"{s['set']}: {s['outputs']} images from {s['source_images']} sources "
        f"({s['rendered']} rendered, {s['skipped']} already done) in {s['wall_seconds']:.1f}s "
        f"with {s['workers']} worker(s){rate} -> {s['dir']}{adjusted}"
    )
