"""Leak-free train/validation split of the original training frames.

Frames of one clip seen by one camera are near-identical neighbours, so they are split as a
group: competition names look like ``001-1-1-01-Z17_A-0000001.jpg`` (clip ``001-1-1-01-Z17``,
camera ``A``, frame ``0000001``) and all frames of ``001-1-1-01-Z17_A`` land on the same side.
A name that does not follow that pattern is its own group. Validation holds original frames
only; :func:`filter_training_rows` removes every augmented copy whose ``source_image`` belongs to
a validation group from the training rows.

The validation groups are chosen so that the validation share is as close to the requested
fraction as the groups allow without exceeding it (a subset sum over the group sizes, seeded);
only when no group fits is the smallest one taken. When grouping forces the share far from the
request (:data:`FAR_OFF`), :meth:`Split.warning` says so in one line with the options.
``stratify="camera"`` (the 2nd-place solution's subject + camera split) picks validation groups
per camera, from every camera that has at least two groups, and never a camera's last group,
so that no viewpoint is left out of training. :meth:`Split.camera_counts` gives train and
validation images per camera (also in ``split.json``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np
import pandas as pd

from ..utils import PathLike, atomic_write_text
from .naming import GROUP_PATTERN, GROUP_RULE, group_images, group_key

#: Ways to stratify the split: ``none`` (groups drawn from all images) or ``camera`` (per camera).
STRATIFY: Tuple[str, ...] = ("none", "camera")
#: A validation share this far (relative) from the requested fraction is reported.
FAR_OFF = 0.25
#: Camera of a name outside the competition pattern.
NO_CAMERA = "-"


def camera_of(image_name: str) -> str:
    """The camera of a competition-style frame name (``..._A-0000001.jpg``: ``A``), else
    :data:`NO_CAMERA`."""
    match = GROUP_PATTERN.match(image_name)
    return NO_CAMERA if match is None else match["camera"]


@dataclass
class Split:
    """A grouped split: ``groups`` maps every group to its images (both sides)."""

    train: List[str]
    val: List[str]
    groups: Dict[str, List[str]]
    seed: int = 0
    val_fraction: float = 0.0
    group_rule: str = field(default=GROUP_RULE)
    stratify: str = "none"

    @property
    def val_groups(self) -> List[str]:
        return sorted({group_key(name) for name in self.val})

    @property
    def train_groups(self) -> List[str]:
        return sorted({group_key(name) for name in self.train})

    def counts(self) -> Dict[str, int]:
        return {
            "images": len(self.train) + len(self.val),
            "train_images": len(self.train),
            "val_images": len(self.val),
            "groups": len(self.groups),
            "train_groups": len(self.train_groups),
            "val_groups": len(self.val_groups),
        }

    @property
    def val_share(self) -> float:
        """The fraction of the images on the validation side."""
        n = len(self.train) + len(self.val)
        return len(self.val) / n if n else 0.0

    def camera_counts(self) -> Dict[str, Dict[str, int]]:
        """``{camera: {"train": images, "val": images}}`` in camera order."""
        out: Dict[str, Dict[str, int]] = {}
        for side, names in (("train", self.train), ("val", self.val)):
            for name in names:
                out.setdefault(camera_of(name), {"train": 0, "val": 0})[side] += 1
        return dict(sorted(out.items()))

    def cameras_line(self) -> str:
        """``per camera (train/val): A 90/10, B 95/0`` for the training summary."""
        return "per camera (train/val): " + ", ".join(
            f"{cam} {c['train']}/{c['val']}" for cam, c in self.camera_counts().items())

    def warning(self) -> str | None:
        """One line when the validation share is far from the requested fraction, or when a
        camera has no training image, with the options; None when the split is as asked."""
        notes = []
        if self.val_fraction > 0 and abs(self.val_share - self.val_fraction) > FAR_OFF * self.val_fraction:
            notes.append(
                f"validation holds {100 * self.val_share:.0f} % of the images "
                f"({len(self.val)} of {len(self.train) + len(self.val)}), not the "
                f"{100 * self.val_fraction:.0f} % asked: the {len(self.groups)} clip/camera "
                "groups allow no closer split")
        gone = [cam for cam, c in self.camera_counts().items() if c["val"] and not c["train"]]
        if gone:
            notes.append(f"camera(s) {', '.join(gone)} have no training image (validation only)")
        if not notes:
            return None
        options = ["DATA.VAL_FRACTION 0 (train on every frame, no validation)",
                   f"DATA.VAL_FRACTION {self.val_share:.2f} (accept this share)",
                   "more clips per camera"]
        if self.stratify != "camera":
            options.insert(0, 'DATA.SPLIT_STRATIFY "camera" (validation from every camera)')
        return "split: " + "; ".join(notes) + "; options: " + ", ".join(options)

    def to_json(self, path: PathLike) -> None:
        """Write the split (atomically) so a run folder records exactly which frames validated."""
        record = {
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "group_rule": self.group_rule,
            "stratify": self.stratify,
            "val_share": self.val_share,
            "counts": self.counts(),
            "cameras": self.camera_counts(),
            "train": self.train,
            "val": self.val,
            "groups": self.groups,
        }
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")

    @classmethod
    def from_json(cls, path: PathLike) -> Split:
        """Read a split written by :meth:`to_json`; a file whose sides overlap is refused."""
        with open(path) as f:
            record = json.load(f)
        split = cls(
            train=list(record["train"]),
            val=list(record["val"]),
            groups={g: list(names) for g, names in record["groups"].items()},
            seed=int(record["seed"]),
            val_fraction=float(record["val_fraction"]),
            group_rule=record.get("group_rule", GROUP_RULE),
            stratify=record.get("stratify", "none"),
        )
        shared = set(split.train_groups) & set(split.val_groups)
        if shared:
            raise ValueError(
                f"{path}: groups {sorted(shared)[:5]} are on both sides of the split; "
                "delete the file and let the trainer write a new split"
            )
        return split


def closest_subset(sizes: Sequence[int], target: float, order: Sequence[int]) -> List[int]:
    """Indices of items whose ``sizes`` sum as close to ``target`` as possible without exceeding
    it (a subset sum; among equal sums, the one that the item ``order`` reaches first). Empty
    when no item fits."""
    limit = int(np.floor(target + 1e-9))
    if limit <= 0:
        return []
    reach = np.zeros(limit + 1, bool)
    reach[0] = True
    parent = np.full(limit + 1, -1)
    for i in order:
        size = int(sizes[i])
        if size <= 0 or size > limit:
            continue
        new = np.zeros_like(reach)
        new[size:] = reach[:-size] if size else reach
        new &= ~reach
        parent[new] = i
        reach |= new
    best = int(np.nonzero(reach)[0].max())
    chosen = []
    while best > 0:
        i = int(parent[best])
        chosen.append(i)
        best -= int(sizes[i])
    return chosen


def _pick_groups(groups: Dict[str, List[str]], names: Sequence[str], target: float,
                 rng: random.Random, keep_one: bool) -> List[str]:
    """Groups ``names`` (keys of ``groups``) for validation: the subset sum closest to ``target``
    images from below, else the smallest group; ``keep_one`` leaves at least one group out."""
    order = list(names)
    rng.shuffle(order)
    sizes = [len(groups[g]) for g in order]
    if keep_one and len(order) < 2:
        return []
    picked = [order[i] for i in closest_subset(sizes, target, range(len(order)))]
    if keep_one and len(picked) == len(order):
        picked.remove(max(picked, key=lambda g: len(groups[g])))
    if not picked:
        picked = [min(order, key=lambda g: len(groups[g]))]
    return picked


def split_images(images: Iterable[str], val_fraction: float, seed: int,
                 stratify: str = "none") -> Split:
    """Split image names into train/val by group, deterministically for ``seed``.

    The result does not depend on the input order. The validation groups sum as close to
    ``val_fraction`` of the images as the group sizes allow without exceeding it (seeded among
    equal sums); when no group fits, the smallest group is taken, so ``val_fraction > 0`` always
    gives at least one validation image and at least one training image. ``stratify="camera"``
    does this per camera, for each camera with at least two groups, and never takes a camera's
    last group (ValueError when no camera has two groups).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if stratify not in STRATIFY:
        raise ValueError(f"unknown stratify {stratify!r}; valid: {', '.join(STRATIFY)}")
    names = sorted(images)
    duplicates = sorted({n for n, m in zip(names, names[1:]) if n == m})
    if duplicates:
        raise ValueError(f"image names must be unique; repeated: {duplicates[:5]}")
    groups = group_images(names)
    val_set: set = set()
    if val_fraction > 0:
        if len(groups) < 2:
            raise ValueError(
                f"all {len(names)} images are in {len(groups)} group(s) ({GROUP_RULE}); a "
                "leak-free validation split needs at least two groups: set the validation "
                "fraction to 0 or add frames of another clip/camera"
            )
        rng = random.Random(seed)
        if stratify == "camera":
            by_camera: Dict[str, List[str]] = {}
            for g, imgs in groups.items():
                by_camera.setdefault(camera_of(imgs[0]), []).append(g)
            for _cam, gs in sorted(by_camera.items()):
                n_cam = sum(len(groups[g]) for g in gs)
                val_set.update(_pick_groups(groups, gs, val_fraction * n_cam, rng, keep_one=True))
            if not val_set:
                raise ValueError(
                    f"stratified by camera, no camera has two clip/camera groups "
                    f"({len(groups)} groups, cameras {', '.join(sorted(by_camera))}): validating "
                    "would leave a viewpoint out of training; set DATA.SPLIT_STRATIFY \"none\", "
                    "DATA.VAL_FRACTION 0, or add clips"
                )
        else:
            val_set.update(_pick_groups(groups, list(groups), val_fraction * len(names), rng,
                                        keep_one=False))
    val = [n for g in groups if g in val_set for n in groups[g]]
    train = [n for g in groups if g not in val_set for n in groups[g]]
    return Split(
        train=sorted(train), val=sorted(val), groups=groups, seed=seed, val_fraction=val_fraction,
        stratify=stratify,
    )


def filter_training_rows(
    aug_df: pd.DataFrame, val_images: Iterable[str]
) -> Tuple[pd.DataFrame, int]:
    """Drop augmented rows derived from validation frames: ``(kept rows, number dropped)``.

    A row is dropped when the *group* of its ``source_image`` is the group of any validation
    image, not only when the source is itself a validation frame: an augmented copy of a
    neighbouring frame of the same clip and camera would leak just as much.
    """
    if "source_image" not in aug_df.columns:
        raise ValueError(
            "augmented rows need a 'source_image' column naming the original frame of each row; "
            "re-create the augmented set with the kit's augmentation script"
        )
    sources = aug_df["source_image"]
    missing = [i for i, s in enumerate(sources) if not isinstance(s, str) or not s]
    if missing:
        raise ValueError(
            f"augmented rows {missing[:10]} (0-based) have an empty 'source_image'; "
            "every augmented row must name the original frame it was made from"
        )
    val_groups = {group_key(name) for name in val_images}
    drop = sources.map(lambda s: group_key(s) in val_groups).to_numpy(dtype=bool)
    kept = aug_df.loc[~drop].reset_index(drop=True)
    return kept, int(drop.sum())
