import numpy as np
import pytest

from motion_keypoints.io.predictions import PREDICTION_COLUMNS
from motion_keypoints.meta import FLIP_PAIRS, KEYPOINT_NAMES, keypoint_index
from motion_keypoints.models.rcnn.predictor import merge_flip, unflip_box, unflip_keypoints


def _asymmetric_pose(rng, width, height):
    kps = np.stack([rng.uniform(0, width - 1, len(KEYPOINT_NAMES)),
                    rng.uniform(0, height - 1, len(KEYPOINT_NAMES))], 1)
    return kps


def _mirror_as_model_sees_it(kps, width):
    """What a perfect model predicts on the mirrored image, found from pixels, not from the
    formula under test: each keypoint is a one-pixel dot in an image that is mirrored the way
    predict_images mirrors it (torch.flip of the CHW tensor), the dot is found again, and it is
    labelled with its mirror partner (a mirrored left wrist looks like a right wrist)."""
    import torch

    height = int(np.ceil(kps[:, 1].max())) + 1
    pts = np.round(kps).astype(int)
    img = torch.zeros(len(KEYPOINT_NAMES), height, width)
    for k, (x, y) in enumerate(pts):
        img[k, y, x] = 1.0
    flipped = torch.flip(img, dims=[2]).numpy()
    found = np.array([np.unravel_index(flipped[k].argmax(), flipped[k].shape)[::-1]
                      for k in range(len(KEYPOINT_NAMES))], float)
    partner = {a: b for pair in FLIP_PAIRS for a, b in (pair, pair[::-1])}
    seen = np.empty_like(found)
    for k, name in enumerate(KEYPOINT_NAMES):
        seen[keypoint_index(partner.get(name, name))] = found[k]
    return seen


def test_flip_tta_maps_a_known_asymmetric_pose_back_exactly():
    rng = np.random.default_rng(0)
    width, height = 321, 180
    kps = np.round(_asymmetric_pose(rng, width, height))  # whole pixels: dots find them exactly
    seen_in_mirror = _mirror_as_model_sees_it(kps, width)
    np.testing.assert_allclose(unflip_keypoints(seen_in_mirror, width), kps, atol=1e-9)


def test_unflip_on_hand_written_numbers():
    """Pixel column j of a W-wide image mirrors to W-1-j; left/right labels swap back."""
    width = 100
    kps = np.zeros((len(KEYPOINT_NAMES), 2))
    kps[keypoint_index("nose")] = (49, 5)
    kps[keypoint_index("left_wrist")] = (89, 20)  # seen on the mirror as a left wrist at 89
    kps[keypoint_index("right_wrist")] = (19, 30)
    out = unflip_keypoints(kps, width)
    np.testing.assert_allclose(out[keypoint_index("nose")], (50, 5))
    np.testing.assert_allclose(out[keypoint_index("right_wrist")], (10, 20))
    np.testing.assert_allclose(out[keypoint_index("left_wrist")], (80, 30))
    np.testing.assert_allclose(unflip_box(np.array([10.0, 1, 30, 2]), width), [70, 1, 90, 2])


def test_flip_tta_moves_scores_with_their_keypoints():
    width = 100
    kps = np.zeros((len(KEYPOINT_NAMES), 3))
    kps[:, 2] = np.arange(len(KEYPOINT_NAMES))
    out = unflip_keypoints(kps, width)
    li, ri = keypoint_index("left_wrist"), keypoint_index("right_wrist")
    assert out[li, 2] == ri and out[ri, 2] == li
    assert out[keypoint_index("nose"), 2] == keypoint_index("nose")


def _person(kps, box, score=0.9):
    return {"keypoints": kps, "keypoint_scores": np.ones(len(kps)), "box": np.asarray(box, float),
            "score": score}


def test_merge_flip_averages_matched_persons_and_keeps_a_lone_one():
    rng = np.random.default_rng(1)
    width, height = 200, 100
    truth = np.round(_asymmetric_pose(rng, width, height)) + 2.0  # whole pixels after -2
    box = np.array([20.0, 10, 120, 90])
    noisy = truth + 2.0
    mirrored = _person(_mirror_as_model_sees_it(truth - 2.0, width), unflip_box(box, width))
    merged = merge_flip(_person(noisy, box), mirrored, width)
    np.testing.assert_allclose(merged["keypoints"], truth, atol=1e-9)  # errors cancel
    np.testing.assert_allclose(merged["box"], box)
    assert merge_flip(None, None, width) is None
    alone = merge_flip(None, mirrored, width)
    np.testing.assert_allclose(alone["keypoints"], truth - 2.0, atol=1e-9)
    far = _person(_mirror_as_model_sees_it(truth, width), unflip_box([150, 0, 199, 20], width), 0.1)
    kept = merge_flip(_person(noisy, box, 0.9), far, width)
    np.testing.assert_allclose(kept["keypoints"], noisy)  # unmatched: the better-scored person


def test_prediction_columns():
    assert PREDICTION_COLUMNS[0] == "image"
    assert len(PREDICTION_COLUMNS) == len(set(PREDICTION_COLUMNS))
    assert "detected" in PREDICTION_COLUMNS


@pytest.mark.parametrize("split", ["train", "nope"])
def test_unknown_split(tmp_path, split, synthetic_data):
    from motion_keypoints.models.rcnn.predictor import images_of_split

    with pytest.raises(ValueError, match="valid: test, val"):
        images_of_split(tmp_path, synthetic_data, split)


# --------------------------------------------------------------- one image reader (issue 10.10)


@pytest.fixture(params=["gray", "color"])
def deep_jpg(tmp_path, request):
    """A 16-bit PNG named .jpg (with low-byte detail), and the 8-bit BGR image it holds."""
    import cv2

    rng = np.random.default_rng(3)
    img8 = cv2.GaussianBlur(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8), (5, 5), 1)
    if request.param == "gray":
        img8 = np.repeat(img8[:, :, :1], 3, axis=2)
    deep = np.minimum(img8.astype(np.uint32) * 257 + rng.integers(0, 128, img8.shape), 65535)
    if request.param == "gray":
        deep = deep[:, :, 0]
    cv2.imwrite(str(tmp_path / "deep.png"), deep.astype(np.uint16))
    (tmp_path / "deep.png").rename(tmp_path / "deep.jpg")
    return tmp_path / "deep.jpg", img8


def test_16_bit_png_named_jpg_reads_the_same_in_every_stage(deep_jpg, tmp_path):
    from detectron2.config import get_cfg
    from detectron2.data import detection_utils

    from motion_keypoints.augment.ops import read_source_image
    from motion_keypoints.io.images import image_size, read_image
    from motion_keypoints.models.rcnn.mapper import KitDatasetMapper
    from motion_keypoints.models.rcnn.predictor import _ImageDataset

    path, img8 = deep_jpg
    bgr = read_image(path)
    assert bgr.dtype == np.uint8 and bgr.shape == img8.shape
    assert np.abs(bgr.astype(float) - img8).mean() < 1.0
    assert image_size(path) == (img8.shape[1], img8.shape[0])
    if np.array_equal(img8[:, :, 0], img8[:, :, 2]):
        # detectron2's own reader washes a 16-bit grayscale file out: why the kit has its own
        washed = detection_utils.read_image(str(path), format="BGR")
        assert np.abs(washed.astype(float) - img8).mean() > 20

    # augmentation
    assert np.abs(read_source_image(path).astype(float) - img8).mean() < 1.0
    # training (the mapper, in the config's format, without resizing)
    cfg = get_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (90,), 160
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 90, 160
    mapper = KitDatasetMapper(cfg, is_train=False)
    out = mapper({"file_name": str(path), "height": 90, "width": 160, "image_id": 0})
    train_img = out["image"].permute(1, 2, 0).numpy()[:, :, ::-1]  # RGB -> BGR
    assert np.abs(train_img.astype(float) - img8).mean() < 1.0
    # prediction
    ds = _ImageDataset([path], 90, 160, "BGR")
    pred_img = ds[0]["image"].permute(1, 2, 0).numpy()
    assert np.abs(pred_img.astype(float) - img8).mean() < 1.0
    assert np.abs(pred_img.astype(float) - train_img).mean() < 1.0


def test_unreadable_image_is_one_line_naming_the_file(tmp_path):
    from motion_keypoints.errors import UserError
    from motion_keypoints.io.images import read_image

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    for path in (bad, tmp_path / "missing.jpg"):
        with pytest.raises(UserError) as info:
            read_image(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message


def test_loading_plan_by_core_count():
    from motion_keypoints.models.rcnn.predictor import loading_plan

    assert loading_plan(0, "cpu", cores=1) == (0, 1)
    assert loading_plan(0, "cpu", cores=2) == (0, 2)  # a reading thread, torch on both cores
    workers, threads = loading_plan(0, "cpu", cores=16)
    assert workers >= 1 and workers + threads == 16
    assert loading_plan(3, "cpu", cores=2) == (3, 1)  # as asked; torch keeps one thread
    workers, _ = loading_plan(0, "cuda", cores=8)
    assert 1 <= workers <= 4


def test_thread_prefetch_yields_every_item_once_in_order():
    from motion_keypoints.models.rcnn.predictor import _thread_prefetch

    batches = list(_thread_prefetch(list(range(10)), 4))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(_thread_prefetch([], 4)) == []
