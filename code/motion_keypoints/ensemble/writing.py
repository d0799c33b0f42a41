"""Stage 5 of the ensemble: the submission or fused CSV (:func:`write_outputs`), the sample
pictures (:func:`write_samples`) and the error picture (:func:`write_error_picture`), named after
the output (:func:`output_stem`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..io.tables import keypoints_frame, write_keypoint_csv
from ..submission import write_submission
from ..utils import PathLike
from .fusing import fuse_group
from .members import Loaded
from .options import MEAN_POSE_ROW, FuseOptions, Plan, method_name
from .scoring import Scores


def output_stem(out: PathLike | None, split: str, method: str, runs: Sequence[PathLike],
                options: Sequence[object] = ()) -> Tuple[Path, str]:
    """``(folder, stem)`` of this invocation's pictures: the output file's folder and stem, or
    without one ``outputs/ensemble`` and a stem from the options and runs (a short hash), so two
    ensembles with other options never write the same picture names."""
    if out is not None:
        return Path(out).parent, Path(out).stem
    key = "|".join([split, method] + [str(Path(r).resolve()) for r in runs]
                   + [str(o) for o in options])
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Path("outputs/ensemble"), f"ensemble_{method}_{split}_{digest}"


def write_outputs(loaded: Loaded, final: np.ndarray, out: Path | None) -> List[str]:
    """Stage 5a: the submission (test) or the fused keypoint CSV (val)."""
    if out is None:
        return []
    n, paths = len(loaded.images), loaded.paths
    if loaded.split == "test":
        write_submission(loaded.images, final, paths.sample_submission, out)
        return [f"wrote {out} ({n} rows; checked against {paths.sample_submission})"]
    write_keypoint_csv(keypoints_frame(loaded.images, final), out, kind="fused predictions")
    return [f"wrote {out} ({n} rows)"]


def write_samples(loaded: Loaded, plan: Plan, final: np.ndarray, folder: Path, stem: str,
                  samples: int, seed: int) -> List[Path]:
    """Stage 5b: a sample grid per member (``<run>/samples/``) and of the ensemble
    (``<folder>/<stem>_samples.jpg``)."""
    from ..visualize import save_samples

    paths = loaded.paths
    image_dir = paths.test_images if loaded.split == "test" else paths.train_images
    written = []
    for lab, m, fam in zip(loaded.labels, loaded.chosen(plan), loaded.families):
        written.append(save_samples(
            image_dir, loaded.images, m.coords, m.run_dir / "samples" / f"{loaded.split}_samples.jpg",
            n=samples, seed=seed, boxes=m.boxes, title=f"{lab} ({fam}, {loaded.split})",
        ))
    written.append(save_samples(
        image_dir, loaded.images, final, folder / f"{stem}_samples.jpg", n=samples, seed=seed,
        title=f"ensemble ({method_name(plan, len(loaded.main))}, {loaded.split})",
    ))
    return written


def write_error_picture(loaded: Loaded, plan: Plan, sc: Scores, final: np.ndarray, folder: Path,
                        stem: str, html: bool = False, worst: int = 4) -> List[Path]:
    """Stage 5c: the error picture ``<folder>/<stem>_errors.png`` (and ``_errors.html``):
    per-keypoint RMSE of each member, the fusion and the mean pose, per-camera RMSE, and the
    ``worst`` images of the fusion with truth and prediction drawn."""
    from ..visualize import ErrorReport, save_error_report

    paths = loaded.paths
    image_dir = paths.test_images if loaded.split == "test" else paths.train_images
    preds = {lab: fuse_group([m], plan, FuseOptions(), [i], loaded.mean_pose)[0].coords
             for i, (lab, m) in enumerate(zip(loaded.labels, loaded.chosen(plan)))}
    preds[f"ensemble ({method_name(plan, len(loaded.main))})"] = final
    preds[MEAN_POSE_ROW] = loaded.mean_pose()
    report = ErrorReport.from_arrays(
        f"ensemble on {loaded.split} ({len(loaded.images)} images)", loaded.images, loaded.truth,
        preds, fused=final, image_dir=image_dir, worst=worst)
    return save_error_report(report, folder / f"{stem}_errors.png",
                             folder / f"{stem}_errors.html" if html else None)
