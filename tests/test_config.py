import pytest

from motion_keypoints.config import ConfigError, add_kit_config, setup_cfg
from motion_keypoints.keypoints import DEFAULT_OKS_SIGMAS, KEYPOINT_NAMES

NEW_KEYS = {
    "DATA.ROOT", "DATA.AUG_SET", "DATA.AUGMENTED_DIR", "DATA.VAL_FRACTION", "DATA.SPLIT_SEED",
    "DATA.BBOX_MARGIN", "DATA.CHECK_IMAGES", "TRACKING.NEPTUNE", "TRACKING.TAGS",
    "TRACKING.PERIOD", "TEST.BEST_METRIC",
}


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def test_every_new_key_has_a_default_and_a_comment():
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_kit_config(cfg)
    for key in NEW_KEYS:
        _get(cfg, key)  # exists
    import inspect

    from motion_keypoints import config as C

    src = inspect.getsource(C.add_kit_config).splitlines()
    for key in NEW_KEYS:
        line = next(i for i, s in enumerate(src) if f"_C.{key} =" in s)
        assert src[line - 1].strip().startswith("#"), f"{key} has no comment above it"


def test_kit_defaults_follow_the_keypoint_metadata():
    cfg = setup_cfg(None)
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == len(KEYPOINT_NAMES)
    assert list(cfg.TEST.KEYPOINT_OKS_SIGMAS) == DEFAULT_OKS_SIGMAS


def test_merge_order_file_then_opts_and_model_zoo_base():
    cfg = setup_cfg("configs/tiny-cpu.yaml", ["SOLVER.BASE_LR", "0.5", "DATA.AUG_SET", "demo"])
    assert cfg.SOLVER.BASE_LR == 0.5  # opts beat the file
    assert cfg.MODEL.RESNETS.DEPTH == 18  # tiny-cpu beats its base
    assert cfg.SOLVER.GAMMA == 0.1  # tiny-cpu overrides Base-KeypointRCNN's 0.8
    assert cfg.MODEL.KEYPOINT_ON  # from the packaged model-zoo base, two levels up
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert cfg.DATA.AUG_SET == "demo"
    assert cfg.OUTPUT_DIR == "outputs/tiny-cpu"  # default outputs/<config-stem>
    assert cfg.is_frozen()
    base = setup_cfg("configs/Base-KeypointRCNN.yaml")
    assert base.SOLVER.BASE_LR == 0.001 and base.SOLVER.MAX_ITER == 10000
    assert base.SOLVER.IMS_PER_BATCH == 2 and base.SOLVER.GAMMA == 0.8
    assert base.MODEL.WEIGHTS.startswith("detectron2://COCO-Keypoints/")


def test_variant_configs_are_short_and_load():
    from pathlib import Path

    variants = [p for p in Path("configs").glob("*.yaml") if p.name not in ("augmentation.yaml",)]
    assert len(variants) >= 3
    for p in variants:
        cfg = setup_cfg(str(p))
        assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == len(KEYPOINT_NAMES)


@pytest.mark.parametrize(
    "opts, message",
    [
        (["TEST.KEYPOINT_OKS_SIGMAS", "[1.0, 1.0]"], "2 OKS sigmas"),
        (["MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS", "17"], "NUM_KEYPOINTS is 17"),
        (["DATA.VAL_FRACTION", "1.5"], "VAL_FRACTION"),
    ],
)
def test_config_mismatches_fail_at_config_time_with_the_fix(opts, message):
    with pytest.raises(ConfigError, match=message):
        setup_cfg("configs/tiny-cpu.yaml", opts)


def test_unknown_config_file_and_key():
    with pytest.raises(FileNotFoundError, match="configs/"):
        setup_cfg("configs/nope.yaml")
    with pytest.raises(ConfigError, match="did you mean DATA.AUG_SET"):
        setup_cfg("configs/tiny-cpu.yaml", ["DATA.AUGSET", "demo"])
