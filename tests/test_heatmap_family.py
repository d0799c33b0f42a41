"""The heatmap family through detectron2: the TopDownHeatmap meta-architecture, the crop mappers,
family dispatch, the R-CNN 17 -> K predictor transfer, and (slow) training and prediction on R-CNN
boxes through the command line."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from motion_keypoints.geometry import apply_affine, from_continuous, to_continuous
from motion_keypoints.meta import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS, keypoint_index

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "tiny-hrnet.yaml")


def _cfg(*opts):
    from motion_keypoints.engine.config import setup_cfg

    return setup_cfg(TINY, list(opts), freeze=False)


@pytest.fixture(scope="module")
def model():
    from motion_keypoints.models.heatmap.meta_arch import TopDownHeatmap

    torch.manual_seed(0)
    return TopDownHeatmap(_cfg())


def _person(rng, width=320, height=240):
    """Pixel-index keypoints of a standing person, spread apart."""
    xs = rng.uniform(110, 210, NUM_KEYPOINTS)
    ys = np.linspace(40, 200, NUM_KEYPOINTS) + rng.uniform(-3, 3, NUM_KEYPOINTS)
    return np.stack([xs, ys], axis=1)


def _record(tmp_path, points, dots=None, width=320, height=240, name="a.png"):
    """An image with white dots at ``dots`` (keypoint indices; all by default) and its dict."""
    img = np.zeros((height, width, 3), np.uint8)
    for k in range(len(points)) if dots is None else dots:
        x, y = np.round(points[k]).astype(int)
        img[y - 3 : y + 4, x - 3 : x + 4] = 255
    path = tmp_path / name
    cv2.imwrite(str(path), img)
    kps = np.column_stack([to_continuous(points), np.full(len(points), 2.0)])
    return {"file_name": str(path), "image_id": 0, "height": height, "width": width,
            "annotations": [{"keypoints": kps.ravel().tolist(), "category_id": 0}]}


def test_family_dispatch_by_meta_architecture():
    from motion_keypoints.models.registry import family_of

    assert family_of(_cfg()) == "heatmap"
    from motion_keypoints.engine.config import setup_cfg

    assert family_of(setup_cfg(str(REPO / "configs" / "tiny-cpu.yaml"))) == "rcnn"


def test_training_forward_returns_a_finite_heatmap_loss(model):
    model.train()
    w, h = model.input_size
    batch = [{
        "image": torch.randint(0, 255, (3, h, w), dtype=torch.uint8),
        "heatmaps": torch.rand(NUM_KEYPOINTS, h // 4, w // 4),
        "target_weight": torch.ones(NUM_KEYPOINTS),
    } for _ in range(2)]
    losses = model(batch)
    assert set(losses) == {"loss_heatmap"}
    assert losses["loss_heatmap"].ndim == 0 and torch.isfinite(losses["loss_heatmap"])
    losses["loss_heatmap"].backward()


def test_inference_on_crops_and_on_images_with_boxes(model):
    model.eval()
    w, h = model.input_size
    crop_input = {"image": torch.zeros(3, h, w, dtype=torch.uint8), "height": 240, "width": 320,
                  "crop_inverse": np.array([[2.0, 0, 10], [0, 2.0, 5]]),
                  "box": np.array([10.0, 5, 200, 240]), "box_score": 0.9}
    image_input = {"image": torch.zeros(3, 240, 320, dtype=torch.uint8), "height": 240,
                   "width": 320, "boxes": torch.tensor([[10.0, 10, 100, 200], [50, 20, 300, 230]])}
    with torch.no_grad():
        out = model([crop_input, image_input])
    a, b = out[0]["instances"], out[1]["instances"]
    assert len(a) == 1 and len(b) == 2
    assert tuple(b.pred_keypoints.shape) == (2, NUM_KEYPOINTS, 3)
    assert torch.isfinite(b.pred_keypoints).all()
    assert a.scores[0] == pytest.approx(0.9)
    assert b.pred_boxes.tensor[1].tolist() == [50.0, 20.0, 300.0, 230.0]


@pytest.mark.parametrize("udp", [False, True])
def test_inference_maps_heatmap_peaks_to_continuous_image_coordinates(udp):
    """Rigged heatmaps (Gaussians at the crop positions of known image points): the Instances
    hold those points in detectron2's continuous coordinates (+0.5)."""
    from motion_keypoints.models.heatmap import codec
    from motion_keypoints.models.heatmap.meta_arch import TopDownHeatmap

    # a wide margin keeps every peak > 5 heatmap px from the border (DARK's blur reflects there)
    m = TopDownHeatmap(_cfg("MODEL.HEATMAP.UDP", str(udp), "MODEL.HEATMAP.BOX_MARGIN", "1.6")).eval()
    rng = np.random.default_rng(1)
    pts = _person(rng)
    box = to_continuous(np.array([100.0, 30, 220, 210]).reshape(2, 2)).reshape(-1)
    mat, _ = codec.crop_affine(from_continuous(box.reshape(2, 2)).reshape(-1), m.input_size,
                               margin=m.crop_margin, udp=udp)
    hm_size = (m.input_size[0] // 4, m.input_size[1] // 4)
    hm, _ = codec.encode_gaussian(apply_affine(pts, mat), np.ones(len(pts)), hm_size,
                                  m.input_size, 2.0, udp)
    m.heatmaps = lambda crops: torch.from_numpy(np.repeat(hm[None], len(crops), 0))
    inp = {"image": torch.zeros(3, 240, 320, dtype=torch.uint8), "height": 240, "width": 320,
           "boxes": torch.as_tensor(box[None])}
    got = m([inp])[0]["instances"].pred_keypoints[0, :, :2].numpy()
    np.testing.assert_allclose(got, to_continuous(pts), atol=0.15)


def test_train_mapper_puts_each_keypoint_on_its_heatmap_peak(tmp_path):
    """No augmentation: the target peak of keypoint k is at input_to_heatmap(M · p_k)."""
    from motion_keypoints.models.heatmap import codec
    from motion_keypoints.models.heatmap.data import HeatmapTrainMapper

    cfg = _cfg("INPUT.HEATMAP.CENTER_JITTER", "0", "INPUT.HEATMAP.SCALE_JITTER", "0",
               "INPUT.HEATMAP.ROTATION_PROB", "0", "INPUT.HEATMAP.FLIP_PROB", "0",
               "INPUT.HEATMAP.HALF_BODY_PROB", "0")
    pts = _person(np.random.default_rng(2))
    out = HeatmapTrainMapper(cfg, rng=np.random.default_rng(0))(_record(tmp_path, pts))
    w, h = (int(v) for v in cfg.MODEL.HEATMAP.INPUT_SIZE)
    assert tuple(out["image"].shape) == (3, h, w) and out["image"].dtype == torch.uint8
    assert tuple(out["heatmaps"].shape) == (NUM_KEYPOINTS, h // 4, w // 4)
    assert out["target_weight"].sum() == NUM_KEYPOINTS  # the whole person is in the crop
    from motion_keypoints.geometry import box_from_points

    box = box_from_points(pts, cfg.DATA.BBOX_MARGIN)
    mat, _ = codec.crop_affine(box, (w, h), margin=cfg.MODEL.HEATMAP.BOX_MARGIN)
    expect = codec.input_to_heatmap(apply_affine(pts, mat), (w // 4, h // 4), (w, h))
    got, _ = codec.decode(out["heatmaps"].numpy(), "dark")
    np.testing.assert_allclose(got, expect, atol=0.05)


@pytest.mark.parametrize("seed", range(4))
def test_augmented_targets_stay_on_the_pixels_of_their_keypoints(tmp_path, seed):
    """Rotation, scale, centre jitter, flip and half-body on: every target peak still sits on the
    white dot drawn at a keypoint in the image (the crop pixel there is bright)."""
    from motion_keypoints.models.heatmap import codec
    from motion_keypoints.models.heatmap.data import HeatmapTrainMapper

    cfg = _cfg("INPUT.HEATMAP.ROTATION_PROB", "1", "INPUT.HEATMAP.HALF_BODY_PROB", "0.5")
    pts = _person(np.random.default_rng(seed))
    out = HeatmapTrainMapper(cfg, rng=np.random.default_rng(seed))(_record(tmp_path, pts))
    w, h = (int(v) for v in cfg.MODEL.HEATMAP.INPUT_SIZE)
    coords, _ = codec.decode(out["heatmaps"].numpy(), "dark")
    crop = out["image"].numpy().max(axis=0)
    checked = 0
    for k in np.flatnonzero(out["target_weight"].numpy()):
        # peaks cut by the border (centre outside the map) or within DARK's blur radius of it are
        # biased by design; the interior ones must sit on their dot (3x3 crop pixels around)
        if not (3 <= coords[k, 0] <= w // 4 - 4 and 3 <= coords[k, 1] <= h // 4 - 4):
            continue
        x, y = np.round(codec.heatmap_to_input(coords[k], (w // 4, h // 4), (w, h))).astype(int)
        near = crop[y - 1 : y + 2, x - 1 : x + 2].max()
        assert near > 100, f"seed {seed} keypoint {KEYPOINT_NAMES[k]}: crop pixels {near}"
        checked += 1
    assert checked >= NUM_KEYPOINTS // 4


def test_flip_in_training_swaps_left_and_right(tmp_path):
    """Mirrored sample: the dot drawn at the LEFT wrist label is the RIGHT wrist's target."""
    from motion_keypoints.models.heatmap import codec
    from motion_keypoints.models.heatmap.data import HeatmapTrainMapper

    cfg = _cfg("INPUT.HEATMAP.CENTER_JITTER", "0", "INPUT.HEATMAP.SCALE_JITTER", "0",
               "INPUT.HEATMAP.ROTATION_PROB", "0", "INPUT.HEATMAP.FLIP_PROB", "1",
               "INPUT.HEATMAP.HALF_BODY_PROB", "0")
    pts = _person(np.random.default_rng(5))
    left, right = keypoint_index("left_wrist"), keypoint_index("right_wrist")
    assert FLIP_INDEX[left] == right
    out = HeatmapTrainMapper(cfg, rng=np.random.default_rng(0))(
        _record(tmp_path, pts, dots=[left]))
    w, h = (int(v) for v in cfg.MODEL.HEATMAP.INPUT_SIZE)
    coords, _ = codec.decode(out["heatmaps"].numpy(), "dark")
    crop = out["image"].numpy().max(axis=0)
    x, y = np.round(codec.heatmap_to_input(coords[right], (w // 4, h // 4), (w, h))).astype(int)
    assert crop[y, x] > 100
    x, y = np.round(codec.heatmap_to_input(coords[left], (w // 4, h // 4), (w, h))).astype(int)
    assert crop[y, x] < 50


def test_test_mapper_crops_on_the_given_box_else_the_ground_truth(tmp_path):
    from motion_keypoints.models.heatmap.data import HeatmapTestMapper

    cfg = _cfg()
    pts = _person(np.random.default_rng(3))
    rec = _record(tmp_path, pts)
    mapper = HeatmapTestMapper(cfg)
    gt = mapper(rec)
    assert gt["height"] == 240 and gt["width"] == 320 and gt["box_score"] == 1.0
    # the crop's centre maps back to the ground-truth box centre
    w, h = mapper.input_size
    centre = apply_affine(np.array([(w - 1) / 2, (h - 1) / 2]), gt["crop_inverse"])
    np.testing.assert_allclose(to_continuous(centre), gt["box"].reshape(2, 2).mean(0), atol=1e-6)
    given = mapper(dict(rec, person_box=[5.0, 6.0, 50.0, 90.0], box_score=0.7))
    assert given["box"].tolist() == [5.0, 6.0, 50.0, 90.0] and given["box_score"] == 0.7


def test_rcnn_keypoint_predictor_transfer_copies_coco_and_fills_neighbours(tmp_path):
    from torch import nn

    from motion_keypoints.models.rcnn.weights import (
        PREDICTOR_PREFIX,
        KeypointTransferCheckpointer,
        transfer_rcnn_keypoint_head,
    )

    w17, b17 = torch.randn(8, 17, 4, 4), torch.randn(17)
    state = {PREDICTOR_PREFIX + "weight": w17.numpy(), PREDICTOR_PREFIX + "bias": b17}
    out, line = transfer_rcnn_keypoint_head(state)
    w = out[PREDICTOR_PREFIX + "weight"]
    assert tuple(w.shape) == (8, NUM_KEYPOINTS, 4, 4) and "17 COCO channels copied" in line
    torch.testing.assert_close(w[:, :17], w17)
    neck = keypoint_index("neck")
    ls, rs = keypoint_index("left_shoulder"), keypoint_index("right_shoulder")
    torch.testing.assert_close(w[:, neck], (w17[:, ls] + w17[:, rs]) / 2)
    assert transfer_rcnn_keypoint_head(out)[1] is None  # already K channels: untouched

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.score_lowres = nn.ConvTranspose2d(8, NUM_KEYPOINTS, 4)

    model = nn.Module()
    model.roi_heads = nn.Module()
    model.roi_heads.keypoint_head = Head()
    ckpt = tmp_path / "coco.pth"
    torch.save({"model": {PREDICTOR_PREFIX + "weight": w17, PREDICTOR_PREFIX + "bias": b17}}, ckpt)
    KeypointTransferCheckpointer(model).load(str(ckpt))
    torch.testing.assert_close(model.roi_heads.keypoint_head.score_lowres.weight[:, :17], w17)
    torch.testing.assert_close(model.roi_heads.keypoint_head.score_lowres.bias[:17], b17)


# ------------------------------------------------------------------------ command-line errors
def _predict(capsys, *args):
    from motion_keypoints.cli.predict import main

    rc = main([str(a) for a in args])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def test_predict_errors_are_one_line(tmp_path, capsys, synthetic_data):
    rc, err = _predict(capsys, "--run", tmp_path / "nope", "--data-root", synthetic_data)
    assert rc == 1 and len(err) == 1 and "no such run folder" in err[0]
    run = tmp_path / "run"
    run.mkdir()
    rc, err = _predict(capsys, "--run", run, "--data-root", synthetic_data)
    assert rc == 1 and len(err) == 1 and "run_info.json is missing" in err[0]
    (run / "run_info.json").write_text(json.dumps({"family": "heatmap"}))
    rc, err = _predict(capsys, "--run", run, "--data-root", synthetic_data)
    assert rc == 1 and len(err) == 1 and "model_best.pth is missing" in err[0]


def _fake_heatmap_run(tmp_path):
    run = tmp_path / "hm"
    run.mkdir()
    (run / "run_info.json").write_text(json.dumps(
        {"family": "heatmap", "keypoint_names": list(KEYPOINT_NAMES), "flip_pairs": []}))
    torch.save({"model": {}}, run / "model_final.pth")  # readable: setup_cfg checks MODEL.WEIGHTS
    (run / "config.yaml").write_text(_cfg().dump())
    (run / "split.json").write_text(json.dumps({"val": [], "train": []}))
    return run


def test_predict_heatmap_needs_an_existing_boxes_run(tmp_path, capsys, synthetic_data):
    run = _fake_heatmap_run(tmp_path)
    rc, err = _predict(capsys, "--run", run, "--data-root", synthetic_data,
                       "--boxes-from", tmp_path / "missing_rcnn")
    assert rc == 1 and len(err) == 1 and "--boxes-from" in err[0] and "no such run" in err[0]
    empty = tmp_path / "rcnn"  # a Keypoint R-CNN run that has not predicted the split
    empty.mkdir()
    (empty / "run_info.json").write_text(json.dumps({"family": "rcnn"}))
    rc, err = _predict(capsys, "--run", run, "--data-root", synthetic_data, "--boxes-from", empty)
    assert rc == 1 and len(err) == 1 and "predictions_test.csv is missing" in err[0]
    assert "python code/predict.py --run" in err[0]
    rc, err = _predict(capsys, "--run", run, "--data-root", synthetic_data)
    assert rc == 1 and len(err) == 1 and "--boxes-from" in err[0]


# ---------------------------------------------------------------------------------- slow ones
@pytest.mark.slow
def test_tiny_heatmap_trains_and_predicts_on_rcnn_boxes(tmp_path, synthetic_data):
    """code/train.py with configs/tiny-hrnet.yaml (20 iterations) writes a heatmap run; a tiny
    R-CNN run predicts the validation frames; the heatmap run predicts them on its boxes (the
    predictions in this process: conftest.run_main)."""
    from conftest import run_main, run_script, tiny_opts

    from motion_keypoints.io.predictions import PREDICTION_COLUMNS, read_predictions

    hm = tmp_path / "hm"
    run_script("train", "--config-file", TINY, *tiny_opts(synthetic_data, hm, 20),
               env={"OMP_NUM_THREADS": "1"})
    info = json.loads((hm / "run_info.json").read_text())
    assert info["family"] == "heatmap" and np.isfinite(info["val_rmse"])
    assert (hm / "model_best.pth").is_file()
    rc = tmp_path / "rcnn"
    run_script("train", "--config-file", REPO / "configs" / "tiny-cpu.yaml",
               *tiny_opts(synthetic_data, rc, 4), env={"OMP_NUM_THREADS": "1"})
    run_main("predict", "--run", rc, "--data-root", synthetic_data, "--split", "val", check=True)
    proc = run_main("predict", "--run", hm, "--data-root", synthetic_data, "--split", "val",
                    "--flip-tta", "--boxes-from", rc, check=True)
    assert "on ground-truth boxes" in proc.stdout and "fallback boxes" in proc.stdout
    pred = read_predictions(hm / "predictions_val.csv")
    assert pred["detected"].all() and np.isfinite(pred["coords"]).all()
    import pandas as pd

    assert list(pd.read_csv(hm / "predictions_val.csv").columns) == list(PREDICTION_COLUMNS)
    assert (hm / "predictions_val_noflip.csv").is_file()
    proc = run_main("predict", "--run", hm, "--data-root", synthetic_data, "--split", "test",
                    "--boxes-from", rc)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "predictions_test.csv" in proc.stderr
