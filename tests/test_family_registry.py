"""The model-family registry (models/registry.py): the one place that names the families, and
the recipe of docs/architecture.md, proven by a tiny test-only third family registered from
here with ONE register() call: the kit's config loading, config checks, run-family lookup,
training and predictor dispatch, the inference skeleton and the ensemble's family order all
take it, and nothing else in the kit changes."""

import json
from pathlib import Path

import numpy as np
import pytest

from motion_keypoints.models import registry
from motion_keypoints.models.config_check import number, sequence
from motion_keypoints.models.registry import Family

TINY = "tiny"
TINY_ARCH = "TinyCentreHead"
CALLS = []


# ------------------------------------------------------------------ the test-only third family
def add_tiny_config(cfg) -> None:
    """The tiny family's keys, each with a default."""
    _C = cfg
    _C.MODEL.TINY = type(cfg)()
    # Where the tiny head puts every keypoint, as a fraction of the image size (x, y)
    _C.MODEL.TINY.CENTRE = (0.5, 0.5)


TINY_RULES = {"MODEL.TINY.CENTRE": sequence(number(0, 1), length=2)}


def tiny_train(cfg, resume=False, eval_only=False):
    CALLS.append(("train", cfg.MODEL.META_ARCHITECTURE, resume, eval_only))
    return {"tiny": {"trained": True}}


def tiny_predict_run(run, data_root, split="test", flip_tta=False, out=None, tag=None,
                     centre=(0.5, 0.5)):
    """A trivial predictor over the engine's inference skeleton: every keypoint at ``centre``
    of the image, the whole image as the box."""
    from motion_keypoints.engine.inference import (
        check_prediction_data,
        images_of_split,
        predictions_file,
    )
    from motion_keypoints.io.images import image_size
    from motion_keypoints.meta import NUM_KEYPOINTS

    run, data_root = Path(run), Path(data_root)
    check_prediction_data(data_root)
    files = predictions_file(run, split, out, tag, flip_tta, data_root)
    names, image_dir = images_of_split(run, data_root, split)
    sizes = [image_size(image_dir / n) for n in names]
    persons = [{"keypoints": np.tile([w * centre[0], h * centre[1]], (NUM_KEYPOINTS, 1)),
                "keypoint_scores": np.ones(NUM_KEYPOINTS), "box": np.array([0, 0, w, h], float),
                "score": 1.0} for w, h in sizes]
    files.write(names, persons, persons if flip_tta else None, sizes)
    return {"out": str(files.out), "images": len(names)}


def tiny_family():
    return Family(TINY, (TINY_ARCH,), add_config=add_tiny_config, config_rules=TINY_RULES,
                  trainer=tiny_train, predictor=tiny_predict_run,
                  description="test-only: every keypoint at the image centre")


@pytest.fixture
def tiny():
    registry.register(tiny_family())  # the one registry call of a new family
    try:
        yield
    finally:
        registry.unregister(TINY)


def _run_folder(tmp_path, family):
    run = tmp_path / f"{family}-run"
    run.mkdir()
    (run / "run_info.json").write_text(json.dumps({"family": family, "name": run.name}))
    (run / "config.yaml").write_text("")
    (run / "model_final.pth").write_bytes(b"")
    return run


# ------------------------------------------------------------------------------------ the tests
def test_the_two_families_and_their_entry_points():
    assert registry.family_names() == ("rcnn", "heatmap")
    assert registry.box_families() == ("rcnn",)
    from motion_keypoints.models.heatmap.trainer import train as heatmap_train
    from motion_keypoints.models.rcnn.predictor import predict_run as rcnn_predict
    from motion_keypoints.motion.video import HeatmapMember, RcnnMember

    assert registry.trainer("heatmap") is heatmap_train
    assert registry.predictor("rcnn") is rcnn_predict
    assert registry.video_member("rcnn") is RcnnMember
    assert registry.video_member("heatmap") is HeatmapMember
    for fam in registry.families():  # every entry point resolves, inside the kit
        for part in registry.ENTRY_POINTS:
            obj = fam.load(part)
            assert obj is None or getattr(obj, "__module__", "motion_keypoints").startswith(
                "motion_keypoints"), (fam.name, part)


def test_family_of_config_and_run(tmp_path):
    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.io.runs import RunError

    assert registry.family_of(setup_cfg(None, [])) == "rcnn"  # detectron2's GeneralizedRCNN
    assert registry.family_of_arch("ProposalNetwork") == "rcnn"  # the default family
    assert registry.family_of_run(_run_folder(tmp_path, "heatmap")) == "heatmap"
    legacy = _run_folder(tmp_path, "rcnn")
    (legacy / "run_info.json").write_text(json.dumps({"name": "old"}))  # before the key existed
    assert registry.family_of_run(legacy) == "rcnn"
    with pytest.raises(RunError, match=r"unknown family 'tiny' \(rcnn or heatmap\)"):
        registry.family_of_run(_run_folder(tmp_path, TINY))
    with pytest.raises(RunError, match="run_info.json is missing"):
        registry.family_of_run(tmp_path)
    with pytest.raises(registry.FamilyError, match="unknown model family 'tiny'"):
        registry.predictor(TINY)


def test_registering_a_taken_name_or_meta_architecture_is_refused(tiny):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(tiny_family())
    with pytest.raises(ValueError, match="TopDownHeatmap.*heatmap"):
        registry.register(Family("other", ("TopDownHeatmap",)))
    assert registry.family_names() == ("rcnn", "heatmap", TINY)


def test_a_third_family_takes_part_in_config_loading_and_checks(tiny):
    from motion_keypoints.engine.config import ConfigError, setup_cfg

    cfg = setup_cfg(None, ["MODEL.META_ARCHITECTURE", TINY_ARCH])
    assert registry.family_of(cfg) == TINY
    assert tuple(cfg.MODEL.TINY.CENTRE) == (0.5, 0.5)  # its keys are in every config
    assert setup_cfg(None, []).MODEL.TINY.CENTRE == (0.5, 0.5)
    with pytest.raises(ConfigError, match="MODEL.TINY.CENTRE"):  # its rules are checked
        setup_cfg(None, ["MODEL.META_ARCHITECTURE", TINY_ARCH, "MODEL.TINY.CENTRE", "(2.0, 0.5)"])


def test_the_third_family_is_gone_once_unregistered():
    from motion_keypoints.engine.config import ConfigError, setup_cfg

    registry.register(tiny_family())
    registry.unregister(TINY)
    assert "TINY" not in setup_cfg(None, []).MODEL
    with pytest.raises(ConfigError, match="META_ARCHITECTURE"):
        setup_cfg(None, ["MODEL.META_ARCHITECTURE", TINY_ARCH])


def test_a_third_family_trains_and_predicts_through_the_registry(tiny, tmp_path, synthetic_data):
    from motion_keypoints.cli.predict import check_run
    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.ensemble.members import family_order, member_family
    from motion_keypoints.io.outputs import command_policy
    from motion_keypoints.io.predictions import read_predictions
    from motion_keypoints.io.tables import read_keypoint_csv

    CALLS.clear()
    cfg = setup_cfg(None, ["MODEL.META_ARCHITECTURE", TINY_ARCH])
    assert registry.train_family(cfg, resume=True) == {"tiny": {"trained": True}}
    assert CALLS == [("train", TINY_ARCH, True, False)]

    run = _run_folder(tmp_path, TINY)
    assert registry.family_of_run(run) == TINY
    assert check_run(run, "final") == TINY  # predict's run check asks the registry
    predict = registry.predictor(check_run(run, "final"))
    with command_policy("predict"):  # each call as one predict command
        summary = predict(run, synthetic_data, "test", flip_tta=True)
    out = Path(summary["out"])
    assert out == run / "predictions_test.csv" and (run / "predictions_test_noflip.csv").is_file()
    pred = read_predictions(out)
    sub = read_keypoint_csv(synthetic_data / "sample_submission.csv")
    assert list(pred["images"]) == list(sub["image"])
    sizes = pred["sizes"][:, None, :]
    assert np.allclose(pred["coords"], sizes * 0.5, atol=1e-3)
    # without flip TTA the stale _noflip.csv of the run before is removed (the skeleton's guard)
    with command_policy("predict"):
        predict(run, synthetic_data, "test", flip_tta=False)
    assert not (run / "predictions_test_noflip.csv").exists()

    assert member_family({"family": TINY}) == TINY
    assert family_order([TINY, "heatmap", "rcnn", TINY]) == [2, 1, 0, 3]
