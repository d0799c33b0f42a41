"""Stage 1 of the ensemble: the members' predictions (run folders of any family), checked
compatible and aligned on the same images, with the labels (:func:`load_members` →
:class:`Loaded`); their validation predictions on demand (:meth:`Loaded.val`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from ..data.layout import DataPaths, load_train_df
from ..evaluation import metrics
from ..evaluation.evaluate import short_list, training_mean_pose, truth_for
from ..io.predictions import PREDICTION_SPLITS, RunPredictions, load_member_predictions
from ..io.runs import SPLIT_FILE, family_of_info, split_val_images
from ..meta import FLIP_PAIRS, KEYPOINT_NAMES
from ..models.registry import family_names
from ..utils import PathLike
from .fuse import EnsembleError
from .options import Plan


def _names_difference(a: Sequence[str], b: Sequence[str]) -> str | None:
    a, b = list(a), list(b)
    if a == b:
        return None
    only_a, only_b = [n for n in a if n not in b], [n for n in b if n not in a]
    if only_a or only_b:
        return (f"{len(a)} vs {len(b)} keypoints; only in the first: {short_list(only_a) or '-'}; "
                f"only in the second: {short_list(only_b) or '-'}")
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"same keypoints in another order (position {i}: {a[i]!r} vs {b[i]!r})"


def check_compatible(runs: Sequence[RunPredictions], split: str = "test") -> None:
    """Refuse runs with other keypoint definitions, image sets or image sizes, naming the
    difference."""
    ref = runs[0]
    kit_pairs = {tuple(p) for p in FLIP_PAIRS}
    for run in runs:
        names = run.info["keypoint_names"]
        diff = _names_difference(ref.info["keypoint_names"], names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} and {ref.run_dir} have different keypoint definitions: {diff}"
            )
        diff = _names_difference(KEYPOINT_NAMES, names)
        if diff:
            raise EnsembleError(
                f"{run.run_dir} uses other keypoints than this kit (keypoints.KEYPOINT_NAMES): {diff}"
            )
        pairs = {tuple(p) for p in run.info["flip_pairs"]}
        if pairs != kit_pairs:
            raise EnsembleError(
                f"{run.run_dir}/run_info.json has other flip pairs than the kit: "
                f"extra {sorted(pairs - kit_pairs)}, missing {sorted(kit_pairs - pairs)}"
            )
        if set(run.images) != set(ref.images):
            lacks = sorted(set(ref.images) - set(run.images))
            extra = sorted(set(run.images) - set(ref.images))
            raise EnsembleError(
                f"{run.file} and {ref.file} predict different image sets: "
                f"{len(lacks)} missing ({short_list(lacks) or '-'}), {len(extra)} extra "
                f"({short_list(extra) or '-'}); "
                + ("the runs hold out different validation images: train them with the same "
                   "DATA.SPLIT_SEED and DATA.VAL_FRACTION" if split == "val"
                   else "predict all runs on the same data")
            )
        aligned = run.aligned(ref.images)
        bad = np.nonzero(np.any(aligned.sizes != ref.sizes, axis=1))[0]
        if bad.size:
            i = int(bad[0])
            raise EnsembleError(
                f"{run.file} and {ref.file} disagree on the size of {bad.size} images, e.g. "
                f"{ref.images[i]}: {aligned.sizes[i].tolist()} vs {ref.sizes[i].tolist()}"
            )


@dataclass
class Loaded:
    """The members' predictions of one split, aligned on the same images: ``main``
    (``predictions_<split>.csv``), ``noflip`` (``_noflip.csv`` or None), labels, families and the
    labels (``truth``, None without them)."""

    runs: List[Path]
    data_root: Path
    split: str
    labels: List[str]
    families: List[str]
    main: List[RunPredictions]
    noflip: List[RunPredictions | None]
    truth: np.ndarray | None = None
    cache: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def paths(self) -> DataPaths:
        return DataPaths.from_root(self.data_root)

    @property
    def images(self) -> List[str]:
        return self.main[0].images

    @property
    def mixed(self) -> bool:
        return len(set(self.families)) > 1

    def train_df(self):
        if "train_df" not in self.cache:
            self.cache["train_df"] = load_train_df(self.paths.root)
        return self.cache["train_df"]

    def mean_pose(self) -> np.ndarray:
        """The kit's one mean pose (the training rows of the members' split) in these images."""
        if "mean_pose" not in self.cache:
            split_file = self.main[0].run_dir / SPLIT_FILE
            val = split_val_images(self.main[0].run_dir) if split_file.is_file() else (
                self.images if self.split == "val" else ())
            rel = training_mean_pose(self.data_root, exclude=val)
            self.cache["mean_pose"] = metrics.scale_pose(rel, self.main[0].sizes)
        return self.cache["mean_pose"]

    def chosen(self, plan: Plan) -> List[RunPredictions]:
        """Each member's predictions as the plan uses them (flip TTA or not)."""
        return [m if f or nf is None else nf for m, nf, f in zip(self.main, self.noflip, plan.flip)]

    def val(self, why: str | None = None) -> Loaded | None:
        """The members' validation predictions (this object on the val split); None when not
        every member has them, or EnsembleError naming the run and the fix when ``why`` needs
        them."""
        if self.split == "val":
            return self
        if "val" not in self.cache:
            self.cache["val"] = (_load_val(self) if has_val_predictions(self.runs) else None)
        if self.cache["val"] is None and why is not None:
            _val_members(self.runs, self.data_root, why)  # raises, naming the run
        return self.cache["val"]


def _load_val(loaded: Loaded) -> Loaded:
    main = _val_members(loaded.runs, loaded.data_root, "validation choices")
    images = main[0].images
    noflip = [load_member_predictions(r, "val", loaded.data_root, noflip=True) for r in loaded.runs]
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    val = Loaded(loaded.runs, loaded.data_root, "val", loaded.labels, loaded.families, main, noflip)
    val.cache["train_df"] = loaded.train_df()
    val.truth = truth_for(images, val.paths.train_csv, val.train_df())
    return val


def load_members(runs: Sequence[PathLike], data_root: PathLike, split: str, out=None,
                 samples: int = 0) -> Loaded:
    """Stage 1: the members' predictions of ``split`` (and ``_noflip``), checked compatible and
    aligned on the same images, with the labels when they exist. ``out`` is refused before any
    work when it would write over an input; with ``samples`` a missing image is named."""
    paths = DataPaths.from_root(data_root)
    if out is not None:  # before any work: never write over an input (the data, the runs)
        from ..io.outputs import check_output_file, register_inputs

        member_files = [Path(r) / f"predictions_{s}{tail}.csv" for r in runs
                        for s in PREDICTION_SPLITS for tail in ("", "_noflip")]
        register_inputs(paths.train_csv, paths.sample_submission, paths.test_labels,
                        *[f for f in member_files if f.is_file()])
        check_output_file(out, "submission" if split == "test" else "fused predictions", "--out")
    members = [load_member_predictions(r, split, data_root) for r in runs]
    check_compatible(members, split)
    images = members[0].images
    if samples > 0:  # the pictures need the images: a missing one is named before any work
        _check_images(paths, split, images)
    members = [m.aligned(images) for m in members]
    noflip = [load_member_predictions(r, split, data_root, noflip=True) for r in runs]
    for main_run, nf in zip(members, noflip):
        if nf is not None:
            check_compatible([main_run, nf], split)
    noflip = [None if nf is None else nf.aligned(images) for nf in noflip]
    loaded = Loaded([Path(r) for r in runs], Path(data_root), split, _labels(runs),
                    [member_family(m.info) for m in members], members, noflip)
    if split == "val":
        loaded.truth = truth_for(images, paths.train_csv, loaded.train_df())
    elif paths.test_labels.is_file():
        loaded.truth = truth_for(images, paths.test_labels)
    return loaded


def _check_images(paths: DataPaths, split: str, images: Sequence[str]) -> None:
    image_dir = paths.test_images if split == "test" else paths.train_images
    listed_in = paths.sample_submission if split == "test" else paths.train_csv
    gone = [i for i in images if not (image_dir / i).is_file()]
    if gone:
        raise EnsembleError(
            f"{image_dir / gone[0]}: image listed in {listed_in} is missing"
            + (f" ({len(gone)} images missing)" if len(gone) > 1 else "")
            + "; restore it (python code/check_data.py --data-root "
            f"{paths.root} lists them) or run with --samples 0"
        )


def _labels(runs: Sequence[PathLike]) -> List[str]:
    names = [Path(r).name for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def member_family(info: dict) -> str:
    """The model family of a run (``run_info.json`` "family", :func:`..io.runs.family_of_info`:
    runs written before the heatmap family have no key and are R-CNN runs)."""
    return family_of_info(info)


def family_order(families: Sequence[str]) -> List[int]:
    """Member indices grouped by family (the registry's families first, in its order), given
    order within one."""
    order = family_names()
    rank = {f: i for i, f in enumerate(order)}
    firsts: Dict[str, int] = {}
    for i, f in enumerate(families):
        firsts.setdefault(f, len(order) + i)
    return sorted(range(len(families)), key=lambda i: (rank.get(families[i], firsts[families[i]]), i))


def member_keypoint_rmse(member: RunPredictions, train_df, train_csv: PathLike) -> np.ndarray:
    """RMSE ``(K,)`` of each keypoint of one member's validation predictions against the
    training labels (images where it detected nobody are left out)."""
    ok = np.asarray(member.detected, bool)
    if not ok.any():
        raise EnsembleError(f"{member.file}: no image with a detection; per-keypoint weights "
                            "need validation predictions (use --weight-by score)")
    kept = [img for img, good in zip(member.images, ok) if good]
    truth = truth_for(kept, train_csv, train_df)
    return np.array(list(metrics.per_keypoint_rmse(member.coords[ok], truth).values()))


def _val_members(runs: Sequence[PathLike], data_root: PathLike, why: str) -> List[RunPredictions]:
    """The members' validation predictions (same images, same order), or EnsembleError saying
    which run lacks them and how to get them."""
    members = []
    for r in runs:
        info_file = Path(r) / "run_info.json"
        try:
            members.append(load_member_predictions(r, "val", data_root))
        except FileNotFoundError as exc:
            if info_file.is_file():
                from ..io.runs import load_run_info

                if load_run_info(r).get("validated") is False:
                    raise EnsembleError(
                        f"{why} needs each member's validation predictions; {r} was trained "
                        f"without validation ({info_file}: validated false): {_without_val(why)}"
                    ) from None
            raise EnsembleError(f"{why} needs each member's validation predictions: {exc}; "
                                f"or {_without_val(why)}") from None
    check_compatible(members, "val")
    return [m.aligned(members[0].images) for m in members]


_WITHOUT_VAL = "use --weight-by score or another --method (and --smooth default or off)"


def _without_val(why: str) -> str:
    """The way out without validation predictions for the option ``why`` that needs them."""
    if why.startswith("--smooth"):  # only the smoothing's choice needs them: not the weights
        return "use --smooth default (chosen on realistic clips, no validation needed) or off"
    return _WITHOUT_VAL


def has_val_predictions(runs: Sequence[PathLike]) -> bool:
    return all((Path(r) / "predictions_val.csv").is_file() for r in runs)
