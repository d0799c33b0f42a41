"""A run folder holds one run (issue 10.2), training checks its augmentation set (10.3), a failed
start leaves no run (9.7) and validation metrics do not depend on caches (10.5)."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, run_main

from motion_keypoints.io.runs import (
    RUN_FILE,
    RunError,
    check_run_folder,
    clear_run_folder,
    config_hash,
    data_fingerprint,
    run_record,
    write_run_record,
)
from motion_keypoints.meta import COORD_COLUMNS, NUM_KEYPOINTS

K = NUM_KEYPOINTS


def _cfg(**data):
    base = {"OUTPUT_DIR": "outputs/a", "SOLVER": {"MAX_ITER": 10, "BASE_LR": 0.02,
            "CHECKPOINT_PERIOD": 5}, "TEST": {"EVAL_PERIOD": 5}, "TRACKING": {"NEPTUNE": False},
            "DATALOADER": {"NUM_WORKERS": 2}, "DATA": {"ROOT": "d", **data}}
    return base


def _record(tmp_path, **data):
    d = {"train_csv_sha256": "a", "overrides_sha256": None, "images": 3, "images_sha256": "b"}
    return run_record(_cfg(**data), d)


# ------------------------------------------------------------------------------- io/runs


def test_config_hash_ignores_only_the_keys_that_do_not_define_the_run():
    h = config_hash(_cfg())
    neutral = _cfg()
    neutral.update(OUTPUT_DIR="elsewhere", TRACKING={"NEPTUNE": True, "TAGS": ["x"]},
                   DATALOADER={"NUM_WORKERS": 8})
    neutral["SOLVER"] = {**neutral["SOLVER"], "MAX_ITER": 400, "CHECKPOINT_PERIOD": 1}
    neutral["TEST"] = {"EVAL_PERIOD": 0}
    assert config_hash(neutral) == h
    changed = _cfg()
    changed["SOLVER"] = {**changed["SOLVER"], "BASE_LR": 0.01}
    assert config_hash(changed) != h
    assert config_hash(_cfg(AUG_SET="demo")) != h
    # tuples (yacs) and lists (YAML) are the same config
    assert config_hash({"A": (1, 2)}) == config_hash({"A": [1, 2]})


def test_data_fingerprint_follows_labels_overrides_and_the_image_list(synthetic_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    imgs = data / "images" / "train_imgs"
    fp = lambda: data_fingerprint(data / "train_df.csv", data / "label_overrides.csv", imgs)  # noqa: E731
    first = fp()
    assert first == fp() and first["overrides_sha256"] is None
    (data / "label_overrides.csv").write_text("image,column,value\n")
    assert fp()["overrides_sha256"] is not None
    a_jpg = next(imgs.iterdir())
    a_jpg.rename(imgs / ("z" + a_jpg.name))
    assert fp()["images_sha256"] != first["images_sha256"]
    csv = data / "train_df.csv"
    csv.write_text(csv.read_text() + "\n")
    assert fp()["train_csv_sha256"] != first["train_csv_sha256"]


def test_a_run_folder_holds_one_run(tmp_path):
    run = tmp_path / "run"
    rec = _record(tmp_path)
    assert check_run_folder(run, rec) == "new"  # no folder
    run.mkdir()
    (run / "log.txt").write_text("a failed start\n")
    assert check_run_folder(run, rec) == "new"  # a failed start is no run
    write_run_record(run, rec)
    assert check_run_folder(run, rec) == "same"  # killed before its first checkpoint
    (run / "model_0000004.pth").write_bytes(b"x")
    with pytest.raises(RunError, match="--resume.*--clear"):
        check_run_folder(run, rec)  # finished work is never silently overwritten
    assert check_run_folder(run, rec, resume=True) == "same"
    other = _record(tmp_path, AUG_SET="demo")
    for resume in (False, True):
        with pytest.raises(RunError) as err:
            check_run_folder(run, other, resume=resume)
        msg = str(err.value)
        assert "another run" in msg and "the config" in msg and "OUTPUT_DIR" in msg
        assert "--clear" in msg and "\n" not in msg
    assert check_run_folder(run, other, clear=True) == "clear"
    # a run of an older version: checkpoints and config but no run.json
    (run / RUN_FILE).unlink()
    (run / "config.yaml").write_text("x: 1\n")
    with pytest.raises(RunError, match=f"without {RUN_FILE}"):
        check_run_folder(run, rec, resume=True)
    clear_run_folder(run)
    assert run.is_dir() and not list(run.iterdir())


def test_clear_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="does not look like a run"):
        clear_run_folder(tmp_path)
    assert (tmp_path / "notes.txt").is_file()


# ------------------------------------------------------------------- the augmentation set


def _aug_cfg(root, aug_dir, name="reference8"):
    return SimpleNamespace(DATA=SimpleNamespace(ROOT=str(root), AUG_SET=name,
                                                AUGMENTED_DIR=str(aug_dir)))


def _fake_set(cfg, **changes):
    from motion_keypoints.engine.run import labels_sha256, set_definition
    from motion_keypoints.utils import file_sha256

    set_dir = Path(cfg.DATA.AUGMENTED_DIR) / cfg.DATA.AUG_SET
    set_dir.mkdir(parents=True, exist_ok=True)
    (set_dir / "annotations.csv").write_text("image\n")
    manifest = {"set": cfg.DATA.AUG_SET, "status": "complete", "hash": "h1",
                "definition": set_definition(cfg.DATA.AUG_SET),
                "source": {"data_root": cfg.DATA.ROOT, "sha256": labels_sha256(cfg.DATA.ROOT)},
                "annotations_sha256": file_sha256(set_dir / "annotations.csv")}
    manifest.update(changes)
    (set_dir / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_training_checks_its_augmentation_set(synthetic_data, tmp_path, monkeypatch):
    from motion_keypoints.engine.run import SetupError, check_aug_set

    monkeypatch.chdir(REPO)  # configs/augmentation.yaml
    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    cfg = _aug_cfg(data, tmp_path / "aug")
    with pytest.raises(SetupError, match="not found"):
        check_aug_set(cfg)
    good = _fake_set(cfg)
    assert check_aug_set(cfg)["hash"] == "h1"
    rebuild = f"python code/augmentation.py --data-root {data} --out {tmp_path / 'aug'} " \
              "--sets reference8"
    cases = {
        "not complete": dict(status="running"),
        "other labels": dict(source={"data_root": "/elsewhere", "sha256": "0" * 64}),
        "another definition": dict(definition={**good["definition"], "copies": 99}),
    }
    for why, change in cases.items():
        _fake_set(cfg, **change)
        with pytest.raises(SetupError) as err:
            check_aug_set(cfg)
        assert why in str(err.value) and rebuild in str(err.value), why
    # a label fix after the build makes the set stale
    _fake_set(cfg)
    (data / "label_overrides.csv").write_text("image,column,value\n")
    with pytest.raises(SetupError, match="other labels"):
        check_aug_set(cfg)


def test_training_rechecks_the_sets_annotations_against_its_manifest(synthetic_data, tmp_path,
                                                                     monkeypatch):
    """A set's annotations.csv edited after the build is refused with the command that
    rebuilds it, and that command makes the set usable again (issue 16 item 4)."""
    from motion_keypoints.augment.render import build_sets
    from motion_keypoints.cli.augmentation import main as augmentation_main
    from motion_keypoints.engine.run import SetupError, check_aug_set

    monkeypatch.chdir(REPO)
    data, aug = tmp_path / "data", tmp_path / "aug"
    shutil.copytree(synthetic_data, data)
    build_sets(data, aug, ["demo"], workers=1, progress=False)
    cfg = _aug_cfg(data, aug, "demo")
    assert check_aug_set(cfg)["annotations_sha256"]
    ann = aug / "demo" / "annotations.csv"
    df = pd.read_csv(ann)
    df.loc[0, COORD_COLUMNS[0]] += 7.0  # a hand edit after the build
    df.to_csv(ann, index=False)
    with pytest.raises(SetupError) as err:
        check_aug_set(cfg)
    msg = str(err.value)
    assert "annotations.csv" in msg and "changed after the set was built" in msg
    command = msg.splitlines()[-1].strip()
    assert command.startswith("python code/augmentation.py") and "--sets demo" in command
    assert augmentation_main(command.split()[2:]) == 0  # the printed command fixes it
    assert check_aug_set(cfg)["annotations_sha256"]
    # a set built before the manifest recorded the hash cannot be checked: rebuild it too
    manifest = json.loads((aug / "demo" / "manifest.json").read_text())
    del manifest["annotations_sha256"]
    (aug / "demo" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SetupError, match="(?s)older version.*--sets demo"):
        check_aug_set(cfg)


# ---------------------------------------------------------------- a failed start leaves no run


def _train(*args):
    """train.py in this process (conftest.run_main): every start below fails before any work."""
    return run_main("train", "--config-file", "configs/tiny-cpu.yaml", *args)


def test_a_failed_start_leaves_no_run(synthetic_data, tmp_path):
    out = tmp_path / "r"
    proc = _train("DATA.ROOT", tmp_path / "missing", "OUTPUT_DIR", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert not out.exists(), "a failed start created the run folder"
    proc = _train("DATA.ROOT", synthetic_data, "OUTPUT_DIR", out, "DATA.AUG_SET", "reference8",
                  "DATA.AUGMENTED_DIR", tmp_path / "aug")
    assert proc.returncode == 1 and "--sets reference8" in proc.stderr
    assert not out.exists()
    # a different run into a folder that holds one: refused before anything is written
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"finished work")
    write_run_record(out, {"fingerprint": "another run", "config_sha256": "x"})
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = _train("DATA.ROOT", synthetic_data, "OUTPUT_DIR", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--clear" in proc.stderr and "OUTPUT_DIR" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # --eval-only needs a trained model: never the RMSE of untrained weights, nothing written
    fresh = tmp_path / "no-run"
    proc = _train("--eval-only", "DATA.ROOT", synthetic_data, "OUTPUT_DIR", fresh)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "--eval-only" in proc.stderr and "no trained model" in proc.stderr
    assert "RMSE" not in proc.stdout + proc.stderr.replace("meaningless RMSE", "")
    assert not fresh.exists()


# --------------------------------------------------------- runs verified before prediction


def _fake_run(run, family, val):
    run.mkdir(parents=True)
    (run / "run_info.json").write_text(json.dumps({"name": run.name, "family": family,
                                                   "validated": bool(val)}))
    (run / "split.json").write_text(json.dumps({"train": ["a.jpg"], "val": val}))
    return run


def _predicted(run):
    """A valid predictions_val.csv of one image with one person."""
    from motion_keypoints.io.predictions import prediction_frame

    person = {"keypoints": np.full((K, 2), 50.0), "keypoint_scores": np.ones(K),
              "box": np.array([10.0, 10.0, 90.0, 170.0]), "score": 0.9}
    prediction_frame(["b.jpg"], [person], [(320, 180)]).to_csv(run / "predictions_val.csv",
                                                               index=False)
    return run


def test_boxes_come_only_from_a_keypoint_rcnn_run(tmp_path):
    from motion_keypoints.models.heatmap.predictor import load_boxes

    # a heatmap run that has predicted the split: refused as another run's boxes or its own
    heatmap = _predicted(_fake_run(tmp_path / "hrnet", "heatmap", ["b.jpg"]))
    with pytest.raises(RunError) as err:
        load_boxes(heatmap, "val", ["b.jpg"], tmp_path)
    msg = str(err.value)
    assert "heatmap run" in msg and "Keypoint R-CNN" in msg and "\n" not in msg
    rcnn = _predicted(_fake_run(tmp_path / "rcnn", "rcnn", ["b.jpg"]))
    boxes = load_boxes(rcnn, "val", ["b.jpg"], tmp_path)
    np.testing.assert_allclose(boxes["boxes"][0], [10.0, 10.0, 90.0, 170.0])
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="run_info.json is missing"):  # not a training run
        load_boxes(_predicted(tmp_path / "plain"), "val", ["b.jpg"], tmp_path)


def test_predicting_validation_of_a_run_without_validation_is_refused(synthetic_data, tmp_path):
    from motion_keypoints.models.rcnn.predictor import images_of_split

    run = _fake_run(tmp_path / "run", "rcnn", [])
    with pytest.raises(RunError) as err:
        images_of_split(run, synthetic_data, "val")
    msg = str(err.value)
    assert "without validation" in msg and "--split test" in msg and "\n" not in msg
    names, folder = images_of_split(_fake_run(tmp_path / "v", "rcnn", ["b.jpg"]), synthetic_data,
                                    "val")
    assert names == ["b.jpg"] and folder.name == "train_imgs"


# ------------------------------------------------------------- validation without cache effects


def _instances(kps_pix, size):
    import torch
    from detectron2.structures import Boxes, Instances

    from motion_keypoints.geometry import to_continuous

    inst = Instances(size)
    k = torch.as_tensor(to_continuous(kps_pix), dtype=torch.float32)[None]
    inst.pred_keypoints = torch.cat([k, torch.ones(1, K, 1)], dim=2)
    lo, hi = k[0].min(0).values, k[0].max(0).values
    inst.pred_boxes = Boxes(torch.cat([lo, hi])[None])
    inst.scores = torch.tensor([0.9])
    inst.pred_classes = torch.tensor([0])
    return inst


def test_in_training_rmse_equals_evaluate_py_fresh_and_with_a_cache(synthetic_data, tmp_path):
    from detectron2.data import DatasetCatalog

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.engine.datasets import register_run_datasets
    from motion_keypoints.engine.run import run_fingerprint
    from motion_keypoints.evaluation.evaluate import evaluate_files
    from motion_keypoints.io.tables import keypoints_array
    from motion_keypoints.models.rcnn.trainer import Trainer

    out = tmp_path / "run"
    cfg = setup_cfg(str(REPO / "configs" / "tiny-cpu.yaml"),
                    ["DATA.ROOT", str(synthetic_data), "OUTPUT_DIR", str(out),
                     "DATA.VAL_FRACTION", "0.3"])
    run = register_run_datasets(cfg)
    val = DatasetCatalog.get(run.val_name)
    assert DatasetCatalog.get(run.val_name) is not val  # a fresh copy on every call
    names = [Path(d["file_name"]).name for d in val]
    df = pd.read_csv(synthetic_data / "train_df.csv").set_index("image").loc[names].reset_index()
    truth = keypoints_array(df)
    pred = truth + np.random.default_rng(0).normal(0, 3.0, truth.shape)
    pred_csv = tmp_path / "pred.csv"
    pd.DataFrame(pred.reshape(len(names), -1), columns=list(COORD_COLUMNS)).assign(
        image=names)[["image", *COORD_COLUMNS]].to_csv(pred_csv, index=False)
    expected = evaluate_files(pred_csv, synthetic_data / "train_df.csv")["rmse"]

    cache = out / "inference" / run_fingerprint(cfg)[:12] / f"{run.val_name}_coco_format.json"
    got = []
    for _ in ("fresh", "cached"):
        ev = Trainer.build_evaluator(cfg, run.val_name)
        ev.reset()
        ev.process([{"image_id": d["image_id"]} for d in val],
                   [{"instances": _instances(p, (d["height"], d["width"]))}
                    for p, d in zip(pred, val)])
        got.append(ev.evaluate()["keypoints_rmse"]["rmse"])
        assert cache.is_file()  # the COCO cache lives in the run, keyed by the fingerprint
    assert got[0] == pytest.approx(expected, abs=1e-3)
    assert got[1] == pytest.approx(expected, abs=1e-3)
    # the registered dicts are unchanged: detectron2 coordinates = labels + 0.5
    kps = np.array([np.reshape(d["annotations"][0]["keypoints"], (-1, 3))[:, :2]
                    for d in DatasetCatalog.get(run.val_name)])
    np.testing.assert_allclose(kps, truth + 0.5, atol=1e-9)
