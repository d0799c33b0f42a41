"""The validated training labels of a data root (validated once per process) and the run's
leak-free train/validation split."""

from __future__ import annotations

from typing import Dict, Tuple

from ..errors import SetupError

_VALIDATED: Dict[Tuple[str, str], object] = {}


def validated_train_df(cfg):
    """The training labels of ``cfg.DATA.ROOT`` (overrides applied), the data folder validated
    first (:func:`validate_data_root`). Validated once per process and data root."""
    from ..data.layout import DataPaths, load_train_df, validate_data_root

    paths = DataPaths.from_root(cfg.DATA.ROOT)
    key = (str(paths.root.resolve()), str(cfg.DATA.CHECK_IMAGES), str(cfg.DATA.ALLOW_FAR_POINTS))
    if key not in _VALIDATED:
        validate_data_root(
            paths.root,
            check_images=cfg.DATA.CHECK_IMAGES,
            splits=("train",),
            allow_far_points=cfg.DATA.ALLOW_FAR_POINTS,
        )
        _VALIDATED[key] = load_train_df(paths.root)  # label_overrides.csv applied
    return _VALIDATED[key].copy()


def run_split(cfg, train_df=None):
    """The run's leak-free train/validation split of the original frames
    (``DATA.VAL_FRACTION``, ``DATA.SPLIT_SEED``); SetupError when it cannot be made."""
    from ..data.split import split_images

    df = validated_train_df(cfg) if train_df is None else train_df
    try:
        return split_images(list(df["image"]), float(cfg.DATA.VAL_FRACTION), cfg.DATA.SPLIT_SEED,
                            stratify=str(cfg.DATA.get("SPLIT_STRATIFY", "none")))
    except ValueError as exc:
        raise SetupError(f"{cfg.DATA.ROOT}: DATA.VAL_FRACTION {cfg.DATA.VAL_FRACTION}: {exc} "
                         "(train without validation with DATA.VAL_FRACTION 0)") from None
