"""Leak-free train/validation split of the original training frames.

Frames of one clip seen by one camera are near-identical neighbours, so they are split as a
group: competition names look like ``001-1-1-01-Z17_A-0000001.jpg`` (clip ``001-1-1-01-Z17``,
camera ``A``, frame ``0000001``) and all frames of ``001-1-1-01-Z17_A`` land on the same side.
A name that does not follow that pattern is its own group. Validation holds original frames
only; :func:`filter_training_rows` removes every augmented copy whose ``source_image`` belongs to
a validation group from the training rows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

import pandas as pd

from ..utils import PathLike, atomic_write_text
from .naming import GROUP_RULE, group_images, group_key


@dataclass
class Split:
    """A grouped split: ``groups`` maps every group to its images (both sides)."""

    train: List[str]
    val: List[str]
    groups: Dict[str, List[str]]
    seed: int = 0
    val_fraction: float = 0.0
    group_rule: str = field(default=GROUP_RULE)

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

    def to_json(self, path: PathLike) -> None:
        """Write the split (atomically) so a run folder records exactly which frames validated."""
        record = {
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "group_rule": self.group_rule,
            "counts": self.counts(),
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
        )
        shared = set(split.train_groups) & set(split.val_groups)
        if shared:
            raise ValueError(
                f"{path}: groups {sorted(shared)[:5]} are on both sides of the split; "
                "delete the file and let the trainer write a new split"
            )
        return split


def split_images(images: Iterable[str], val_fraction: float, seed: int) -> Split:
    """Split image names into train/val by group, deterministically for ``seed``.

    The result does not depend on the input order. Groups are shuffled with ``seed`` and taken
    greedily while the validation side stays within ``val_fraction`` of the images; when that
    leaves validation empty the smallest group is taken, so ``val_fraction > 0`` always gives at
    least one validation image and at least one training image.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
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
        order = list(groups)
        random.Random(seed).shuffle(order)
        target = val_fraction * len(names)
        count = 0
        for g in order:
            if count + len(groups[g]) <= target:
                val_set.add(g)
                count += len(groups[g])
        if not val_set:
            val_set.add(min(order, key=lambda g: len(groups[g])))
    val = [n for g in groups if g in val_set for n in groups[g]]
    train = [n for g in groups if g not in val_set for n in groups[g]]
    return Split(
        train=sorted(train), val=sorted(val), groups=groups, seed=seed, val_fraction=val_fraction
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
