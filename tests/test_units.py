"""In-process unit tests of the pieces the slow tests only reach through a subprocess: the RMSE
evaluator, top_person, the best-checkpoint hook on resume, metrics.json pruning, run_info.json,
the one mean pose and batched prediction with a tiny untrained model."""

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from motion_keypoints.engine.run import prune_metrics_json
from motion_keypoints.evaluation import metrics
from motion_keypoints.io.runs import read_best_checkpoint, write_run_info
from motion_keypoints.meta import FLIP_PAIRS, KEYPOINT_NAMES, NUM_KEYPOINTS

REPO = Path(__file__).resolve().parents[1]
K = NUM_KEYPOINTS


def instances(kps_continuous, scores, boxes, size=(100, 200)):
    from detectron2.structures import Boxes, Instances

    inst = Instances(size)
    k = torch.as_tensor(np.asarray(kps_continuous, np.float32)).reshape(len(scores), K, 2)
    k = torch.cat([k, torch.ones(len(scores), K, 1)], dim=2)  # keypoint score 1
    inst.pred_keypoints = k
    inst.scores = torch.as_tensor(scores, dtype=torch.float32)
    inst.pred_boxes = Boxes(torch.as_tensor(np.asarray(boxes, np.float32)).reshape(-1, 4))
    return inst


# ------------------------------------------------------------------------------ top_person


def test_top_person_picks_the_best_score_in_pixel_index_coordinates():
    from motion_keypoints.engine.evaluator import top_person

    low, high = np.full((K, 2), 10.5), np.full((K, 2), 20.5)
    person = top_person(instances([low, high], [0.3, 0.9], [[0, 0, 5, 5], [1, 2, 3, 4]]))
    np.testing.assert_allclose(person["keypoints"], np.full((K, 2), 20.0))  # 20.5 - 0.5
    np.testing.assert_allclose(person["box"], [1, 2, 3, 4])  # boxes stay continuous
    assert person["score"] == pytest.approx(0.9)
    assert person["keypoint_scores"].shape == (K,)
    assert top_person(instances(np.zeros((0, K, 2)), [], np.zeros((0, 4)))) is None
    assert top_person(None) is None


# ------------------------------------------------------------------------- the RMSE evaluator


def test_rmse_evaluator_scores_detections_and_fills_misses_with_the_mean_pose(tmp_path):
    from motion_keypoints.engine.datasets import register_dataset
    from motion_keypoints.engine.evaluator import KeypointRMSEEvaluator

    truth = [np.full((K, 2), 10.0), np.full((K, 2), 40.0)]
    dicts = [{"file_name": f"{i}.jpg", "image_id": i, "width": 100, "height": 200,
              "annotations": [{"keypoints": np.column_stack([t + 0.5, np.full(K, 2.0)]).ravel().tolist()}]}
             for i, t in enumerate(truth)]
    register_dataset("unit_rmse_eval", lambda: dicts)
    rel = np.full((K, 2), 0.5)  # mean pose: image centre (50, 100) on a 100x200 image
    ev = KeypointRMSEEvaluator("unit_rmse_eval", rel, output_dir=str(tmp_path))
    ev.reset()
    # image 0: detected 3 px right of the truth (continuous coordinates); image 1: nobody
    ev.process([{"image_id": 0}, {"image_id": 1}],
               [{"instances": instances([truth[0] + [3.0, 0.0] + 0.5], [0.8], [[0, 0, 1, 1]])},
                {"instances": instances(np.zeros((0, K, 2)), [], np.zeros((0, 4)))}])
    res = ev.evaluate()["keypoints_rmse"]
    # image 0: x off by 3, y exact; image 1: (50, 100) vs (40, 40): x off by 10, y by 60
    expected = np.sqrt((3**2 + 0 + 10**2 + 60**2) / 4)
    assert res["rmse"] == pytest.approx(expected)
    assert res["rmse_detected"] == pytest.approx(np.sqrt(9 / 2))
    assert res["detection_rate"] == 0.5 and res["missed"] == 1.0
    assert res[f"rmse/{KEYPOINT_NAMES[0]}"] == pytest.approx(expected)
    # the mean pose on the same images, beside it: (50, 100) against both truths
    t = np.array(truth)
    base = np.sqrt(((50 - t[..., 0]) ** 2 + (100 - t[..., 1]) ** 2).sum() / (2 * K * 2))
    assert res["mean_pose_rmse"] == pytest.approx(base)
    assert res["rmse_ratio"] == pytest.approx(expected / base)
    assert 0 <= res["pck10"] <= 1 and f"pck05/{KEYPOINT_NAMES[0]}" in res
    assert res["rmse_camera/-"] == pytest.approx(expected)  # names without a camera
    saved = json.loads((tmp_path / "keypoints_rmse.json").read_text())
    assert saved["missed_images"] == ["1"]


# ----------------------------------------------------------------------------- the mean pose


def test_the_one_mean_pose_is_relative_and_scales_into_each_image():
    kps = np.array([np.full((K, 2), [10.0, 20.0]), np.full((K, 2), [30.0, 20.0])])
    rel = metrics.mean_relative_pose(kps, [(100, 100), (100, 200)])
    np.testing.assert_allclose(rel[0], [0.2, 0.15])  # (0.1 + 0.3) / 2, (0.2 + 0.1) / 2
    scaled = metrics.scale_pose(rel, [(50, 40)])
    np.testing.assert_allclose(scaled[0, 0], [10.0, 6.0])
    np.testing.assert_allclose(metrics.mean_pose_baseline(kps, [(100, 100)] * 2, [(50, 40)]),
                               metrics.scale_pose(metrics.mean_relative_pose(kps, [(100, 100)] * 2), [(50, 40)]))


def test_training_mean_pose_uses_the_training_rows_of_the_split(synthetic_data):
    from motion_keypoints.data.layout import load_train_df
    from motion_keypoints.evaluation.evaluate import training_mean_pose
    from motion_keypoints.io.tables import keypoints_array

    df = load_train_df(synthetic_data)
    val = list(df["image"][:5])
    rel = training_mean_pose(synthetic_data, exclude=val)
    rest = keypoints_array(df[~df["image"].isin(val)])
    np.testing.assert_allclose(rel, (rest / [320.0, 180.0]).mean(axis=0))
    assert not np.allclose(rel, training_mean_pose(synthetic_data))


# -------------------------------------------------------------------------- run folder files


def test_prune_metrics_json_drops_resumed_and_cut_lines(tmp_path):
    lines = [json.dumps({"iteration": i, "loss": 1.0}) for i in range(10)] + ['{"iteration": 1']
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    assert prune_metrics_json(str(tmp_path), 5) == 6  # iterations 5..9 and the cut line
    kept = [json.loads(x)["iteration"] for x in (tmp_path / "metrics.json").read_text().splitlines()]
    assert kept == [0, 1, 2, 3, 4]
    assert prune_metrics_json(str(tmp_path / "nowhere"), 5) == 0


def test_write_run_info_takes_the_best_checkpoint_else_the_final_rmse(tmp_path):
    from motion_keypoints.io.lock import RunLock

    with RunLock(tmp_path):  # as in training: the run's records are written by its lock holder
        _run_info_best_else_final(tmp_path)


def _run_info_best_else_final(tmp_path):
    args = dict(data_root=tmp_path, aug_set="demo", n_train=8, n_val=2, max_iter=100)
    info = write_run_info(tmp_path, final_val_rmse=7.5, **args)
    # without a best checkpoint the best iteration is the final evaluation's, never None
    assert info["val_rmse"] == 7.5 and info["best_iteration"] == args["max_iter"] - 1
    assert info["keypoint_names"] == list(KEYPOINT_NAMES)
    assert [tuple(p) for p in info["flip_pairs"]] == list(FLIP_PAIRS)
    assert info["family"] == "rcnn" and info["data_root"] == str(tmp_path.resolve())
    (tmp_path / "best_checkpoint.json").write_text(json.dumps({"val_rmse": 3.0, "iteration": 40}))
    info = write_run_info(tmp_path, final_val_rmse=7.5, **args)
    assert (info["val_rmse"], info["best_iteration"], info["final_val_rmse"]) == (3.0, 40, 7.5)
    assert json.loads((tmp_path / "run_info.json").read_text()) == info


# ------------------------------------------------------------------ BestCheckpointer on resume


class FakeCheckpointer:
    def __init__(self, save_dir):
        self.save_dir, self.saved, self.tags = str(save_dir), [], []

    def save(self, name, **kwargs):
        self.saved.append(name)
        Path(self.save_dir, "last_checkpoint").write_text(f"{name}.pth")

    def tag_last_checkpoint(self, name):
        self.tags.append(name)
        Path(self.save_dir, "last_checkpoint").write_text(name)


def _hook(tmp_path, start_iter, rmse, it):
    from motion_keypoints.engine.hooks import BestCheckpointer

    ckpt = FakeCheckpointer(tmp_path)
    hook = BestCheckpointer(10, ckpt, "keypoints_rmse/rmse", str(tmp_path))
    storage = SimpleNamespace(latest=lambda: {"keypoints_rmse/rmse": (rmse, it)})
    hook.trainer = SimpleNamespace(start_iter=start_iter, iter=it, max_iter=100, storage=storage)
    hook.before_train()
    return hook, ckpt


def test_best_checkpointer_keeps_the_best_across_a_resume(tmp_path):
    from motion_keypoints.io.lock import RunLock

    with RunLock(tmp_path):  # as in training: the run's records are written by its lock holder
        _best_across_a_resume(tmp_path)


def _best_across_a_resume(tmp_path):
    (tmp_path / "last_checkpoint").write_text("model_0000019.pth")
    hook, ckpt = _hook(tmp_path, 0, 5.0, 19)
    hook._best_checking()
    assert ckpt.saved == ["model_best"] and hook.best_record["val_rmse"] == 5.0
    assert read_best_checkpoint(tmp_path)["iteration"] == 19
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000019.pth"  # periodic tag kept
    # resumed at 20: a worse validation must not replace model_best.pth
    hook, ckpt = _hook(tmp_path, 20, 6.0, 29)
    assert (hook.best_metric, hook.best_iter) == (5.0, 19)
    hook._best_checking()
    assert ckpt.saved == [] and read_best_checkpoint(tmp_path)["val_rmse"] == 5.0
    hook, ckpt = _hook(tmp_path, 20, 4.0, 39)
    hook._best_checking()
    assert ckpt.saved == ["model_best"] and read_best_checkpoint(tmp_path)["val_rmse"] == 4.0


# ------------------------------------------------------------------- predict_images, untrained


def test_predict_images_with_a_tiny_untrained_model(tmp_path):
    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.models.rcnn.predictor import predict_images

    files = []
    for i, (w, h) in enumerate([(96, 64), (80, 72)]):
        img = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
        files.append(tmp_path / f"{i}.jpg")
        cv2.imwrite(str(files[-1]), img)
    cfg = setup_cfg(str(REPO / "configs" / "tiny-cpu.yaml"),
                    ["MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TEST", "64",
                     "INPUT.MAX_SIZE_TEST", "128", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    torch.manual_seed(0)
    res = predict_images(cfg, files, batch_size=2, num_workers=0, flip_tta=True, progress=False)
    assert res["sizes"] == [(96, 64), (80, 72)]
    assert len(res["plain"]) == len(res["flip"]) == 2
    for person in res["plain"] + res["flip"]:
        if person is not None:
            assert person["keypoints"].shape == (K, 2) and np.isfinite(person["keypoints"]).all()
            assert person["keypoint_scores"].shape == (K,) and person["box"].shape == (4,)
    plain_only = predict_images(cfg, files, batch_size=1, num_workers=0, progress=False)
    assert plain_only["flip"] is None and len(plain_only["plain"]) == 2
