from pathlib import Path

import pytest

from motion_keypoints.engine.config import ConfigError, add_kit_config, setup_cfg
from motion_keypoints.meta import DEFAULT_OKS_SIGMAS, KEYPOINT_NAMES

#: Paths from the repository root, whatever folder pytest runs from.
REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _leaf_keys(cfg, prefix=""):
    for k, v in cfg.items():
        if isinstance(v, dict):
            yield from _leaf_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def kit_keys():
    """The keys add_kit_config adds to detectron2's config (found, not copied)."""
    from detectron2.config import get_cfg

    plain = set(_leaf_keys(get_cfg()))
    cfg = get_cfg()
    add_kit_config(cfg)
    return sorted(set(_leaf_keys(cfg)) - plain)


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def test_every_new_key_has_a_default_a_comment_and_a_readme_entry():
    keys = kit_keys()
    assert "DATA.ROOT" in keys and "TEST.BEST_METRIC" in keys
    readme = (REPO / "docs" / "configs.md").read_text()
    for key in keys:
        assert f"`{key}`" in readme, f"{key} is not listed under 'Kit keys' in docs/configs.md"
    import inspect

    from motion_keypoints.engine import config as C

    src = inspect.getsource(C.add_kit_config).splitlines()
    for key in keys:
        line = next(i for i, s in enumerate(src) if f"_C.{key} =" in s)
        assert src[line - 1].strip().startswith("#"), f"{key} has no comment above it"


def test_kit_defaults_follow_the_keypoint_metadata():
    cfg = setup_cfg(None)
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == len(KEYPOINT_NAMES)
    assert list(cfg.TEST.KEYPOINT_OKS_SIGMAS) == DEFAULT_OKS_SIGMAS


def test_merge_order_file_then_opts_and_model_zoo_base():
    cfg = setup_cfg(str(CONFIGS / "tiny-cpu.yaml"), ["SOLVER.BASE_LR", "0.5", "DATA.AUG_SET", "demo"])
    assert cfg.SOLVER.BASE_LR == 0.5  # opts beat the file
    assert cfg.MODEL.RESNETS.DEPTH == 18  # tiny-cpu beats its base
    assert cfg.SOLVER.GAMMA == 0.1  # tiny-cpu overrides Base-KeypointRCNN's 0.8
    assert cfg.MODEL.KEYPOINT_ON  # from the packaged model-zoo base, two levels up
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert cfg.DATA.AUG_SET == "demo"
    assert cfg.OUTPUT_DIR == "outputs/tiny-cpu"  # default outputs/<config-stem>
    assert cfg.is_frozen()
    base = setup_cfg(str(CONFIGS / "Base-KeypointRCNN.yaml"))
    assert base.SOLVER.BASE_LR == 0.001 and base.SOLVER.MAX_ITER == 10000
    assert base.SOLVER.IMS_PER_BATCH == 2 and base.SOLVER.GAMMA == 0.8
    assert base.MODEL.WEIGHTS.startswith("detectron2://COCO-Keypoints/")


def test_variant_configs_are_short_and_load():
    """A variant is a few lines on top of its _BASE_ (the README promises it): at most 15
    non-comment lines, starting from a base, and it loads with this task's keypoints."""
    variants = [p for p in CONFIGS.glob("*.yaml") if p.name != "augmentation.yaml"]
    assert len(variants) >= 3
    for p in variants:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if p.stem.startswith(("R50-", "X101-")):
            assert lines[0].startswith("_BASE_:"), f"{p.name} does not start from a _BASE_"
            assert len(lines) <= 15, f"{p.name} has {len(lines)} lines: a variant should be short"
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
        setup_cfg(str(CONFIGS / "tiny-cpu.yaml"), opts)


def test_unknown_config_file_and_key():
    with pytest.raises(FileNotFoundError, match="configs/"):
        setup_cfg(str(CONFIGS / "nope.yaml"))
    with pytest.raises(ConfigError, match="did you mean DATA.AUG_SET"):
        setup_cfg(str(CONFIGS / "tiny-cpu.yaml"), ["DATA.AUGSET", "demo"])


def heatmap_keys():
    """The keys add_heatmap_config adds on top of the kit's."""
    from detectron2.config import get_cfg

    from motion_keypoints.models.heatmap.config import add_heatmap_config

    cfg = get_cfg()
    add_kit_config(cfg)
    before = set(_leaf_keys(cfg))
    add_heatmap_config(cfg)
    return sorted(set(_leaf_keys(cfg)) - before)


def test_setup_cfg_adds_every_heatmap_key_with_a_default_and_a_comment():
    import inspect

    from motion_keypoints.models.heatmap import config as H

    keys = heatmap_keys()
    assert "MODEL.HEATMAP.SIGMA" in keys and "SOLVER.OPTIMIZER" in keys
    cfg = setup_cfg(None)  # PointRend style: both families' keys, whatever the config
    src = inspect.getsource(H.add_heatmap_config).splitlines()
    for key in keys:
        _get(cfg, key)
        line = next(i for i, s in enumerate(src) if f"_C.{key} =" in s)
        above = [s.strip() for s in src[max(0, line - 2) : line]]
        assert any(s.startswith("#") for s in above), f"{key} has no comment above it"


def test_integer_for_a_float_key_on_the_command_line():
    cfg = setup_cfg(str(CONFIGS / "tiny-cpu.yaml"), ["DATA.VAL_FRACTION", "0",
                                                      "MODEL.HEATMAP.SIGMA", "3"])
    assert cfg.DATA.VAL_FRACTION == 0.0 and isinstance(cfg.DATA.VAL_FRACTION, float)
    assert cfg.MODEL.HEATMAP.SIGMA == 3.0
    assert cfg.SOLVER.MAX_ITER == 400  # int keys stay ints
    with pytest.raises(ConfigError):
        setup_cfg(None, ["DATA.VAL_FRACTION", "abc"])


def test_heatmap_configs_pick_the_heatmap_family():
    from motion_keypoints.models.registry import family_of

    hrnet = sorted(CONFIGS.glob("*hrnet*.yaml")) + [CONFIGS / "Base-HRNet.yaml"]
    assert any("tiny" in p.name for p in hrnet)
    for p in hrnet:
        cfg = setup_cfg(str(p))
        assert family_of(cfg) == "heatmap", p.name
        w, h = cfg.MODEL.HEATMAP.INPUT_SIZE
        assert w % 32 == 0 and h % 32 == 0
    assert family_of(setup_cfg(str(CONFIGS / "tiny-cpu.yaml"))) == "rcnn"


def test_every_kit_and_heatmap_key_has_a_rule_beside_its_default():
    """The declarative tables of engine/config.py and models/heatmap/config.py cover every
    key their add_*_config adds (found, not copied), and name no key that does not exist."""
    from motion_keypoints.engine.config import KIT_KEY_RULES
    from motion_keypoints.models.config_check import DETECTRON2_KEY_RULES, RCNN_KEY_RULES
    from motion_keypoints.models.heatmap.config import HEATMAP_KEY_RULES

    assert not set(kit_keys()) - set(KIT_KEY_RULES), "kit keys without a rule"
    assert not set(heatmap_keys()) - set(HEATMAP_KEY_RULES), "heatmap keys without a rule"
    cfg = setup_cfg(None)
    for table in (KIT_KEY_RULES, HEATMAP_KEY_RULES, DETECTRON2_KEY_RULES, RCNN_KEY_RULES):
        for key in table:
            _get(cfg, key)  # KeyError for a rule of a key that does not exist


@pytest.mark.parametrize("opts, message", [
    (["DATA.SPLIT_SEED", "-1"], "DATA.SPLIT_SEED is -1"),
    (["TRACKING.PERIOD", "0"], "TRACKING.PERIOD is 0"),
    (["MODEL.HEATMAP.DARK_KERNEL", "10"], "odd"),
    (["INPUT.HEATMAP.FLIP_PROB", "1.5"], "INPUT.HEATMAP.FLIP_PROB is 1.5"),
    (["MODEL.HEATMAP.INPUT_SIZE", "(96,)"], "must have 2 values"),
    (["SOLVER.OPTIMIZER", "adamw"], "SOLVER.OPTIMIZER 'adamw'"),
    (["MODEL.RESNETS.NORM", "GroupNorm"], "MODEL.RESNETS.NORM 'GroupNorm' is not a detectron2 norm"),
])
def test_rules_refuse_out_of_range_values_with_the_key(opts, message):
    with pytest.raises(ConfigError, match=message) as info:
        setup_cfg(str(CONFIGS / "tiny-cpu.yaml"), opts)
    assert "\n" not in str(info.value)  # one problem, one line


def test_rules_accept_case_free_optimizer_and_heatmap_configs_skip_rcnn_parts():
    cfg = setup_cfg(str(CONFIGS / "tiny-hrnet.yaml"), ["SOLVER.OPTIMIZER", "adam"])
    assert cfg.SOLVER.OPTIMIZER == "adam"
    # Base-HRNet leaves detectron2's empty ROI_BOX_HEAD.NAME: not an R-CNN, not checked
    assert setup_cfg(str(CONFIGS / "Base-HRNet.yaml")).MODEL.ROI_BOX_HEAD.NAME == ""


def test_device_rules():
    from motion_keypoints.models.config_check import device_problem

    assert device_problem("cpu", require=True, gpus=0) is None
    assert "MODEL.DEVICE cpu" in device_problem("cuda", require=True, gpus=0)
    assert device_problem("cuda", require=False, gpus=0) is None  # prediction falls back
    assert "cuda:0 to cuda:1" in device_problem("cuda:2", require=False, gpus=2)
    assert device_problem("cuda:1", require=True, gpus=2) is None
    assert "did you mean cuda" in device_problem("cdua", require=False, gpus=0)


def test_a_readable_checkpoint_passes_the_weights_check(tmp_path):
    import torch

    from motion_keypoints.models.config_check import weights_problem

    good = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(3)}}, good)
    assert weights_problem(str(good)) is None
    assert weights_problem("detectron2://COCO-Keypoints/x.pkl") is None  # resolved elsewhere
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    assert "bad.pkl: cannot be read" in weights_problem(str(tmp_path / "bad.pkl"))


@pytest.mark.parametrize("text, message", [
    ("", "not a mapping of config keys"),
    ("- MODEL\n", "not a mapping of config keys"),
    ("SOLVER: 3\n", "SOLVER is '3': it is a section of keys"),
    ("SOLVER:\n  MAX_ITER: many\n", "SOLVER.MAX_ITER is 'many': it must be an integer"),
])
def test_config_files_that_are_not_key_mappings_are_one_line(tmp_path, text, message):
    config = tmp_path / "odd.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        setup_cfg(str(config))
    assert str(config) in str(info.value) and "\n" not in str(info.value)
