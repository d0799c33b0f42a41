from pathlib import Path

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


def test_thread_budget_keeps_the_omp_num_threads_limit(monkeypatch):
    """A process limited by OMP_NUM_THREADS (a user's choice, or each make-test process) keeps
    that limit in prediction: the kit no longer raises torch's threads to every core."""
    import torch

    from motion_keypoints.models.rcnn.predictor import _torch_threads, loading_plan
    from motion_keypoints.utils import available_cores, thread_budget

    cores = available_cores()
    for value, want in (("1", 1), (str(cores + 8), cores), ("0", cores), ("", cores),
                        ("two", cores)):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert thread_budget() == want, value
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert loading_plan(0, "cpu") == (0, 1)
    before = torch.get_num_threads()
    with _torch_threads(loading_plan(0, "cpu")[1]):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_thread_prefetch_yields_every_item_once_in_order():
    from motion_keypoints.models.rcnn.predictor import _thread_prefetch

    batches = list(_thread_prefetch(list(range(10)), 4))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(_thread_prefetch([], 4)) == []


# ------------------------------------------------- every person kept, chosen by a stated rule


def test_merge_flip_instances_merges_each_person_with_its_own_mirror():
    from motion_keypoints.models.rcnn.predictor import merge_flip_instances

    rng = np.random.default_rng(2)
    width, height = 300, 120
    a = np.round(_asymmetric_pose(rng, 100, height))  # person a on the left
    b = np.round(_asymmetric_pose(rng, 100, height)) + [190, 0]  # person b on the right
    box_a, box_b = np.array([0.0, 0, 101, 120]), np.array([190.0, 0, 291, 120])
    plain = [_person(a + 1.0, box_a, 0.9), _person(b + 1.0, box_b, 0.6)]
    # the mirror lists them the other way round, with errors of the opposite sign
    mirrored = [_person(_mirror_as_model_sees_it(b - 1.0, width), unflip_box(box_b, width), 0.8),
                _person(_mirror_as_model_sees_it(a - 1.0, width), unflip_box(box_a, width), 0.7)]
    merged = merge_flip_instances(plain, mirrored, width)
    assert len(merged) == 2
    np.testing.assert_allclose(merged[0]["keypoints"], a, atol=1e-9)  # (0.9 + 0.7) / 2 first
    np.testing.assert_allclose(merged[1]["keypoints"], b, atol=1e-9)
    assert merged[0]["score"] == pytest.approx(0.8) and merged[1]["score"] == pytest.approx(0.7)
    # each person agrees with merge_flip on that person alone
    alone = merge_flip(plain[1], mirrored[0], width)
    np.testing.assert_allclose(merged[1]["keypoints"], alone["keypoints"])
    # an unmatched mirrored person is kept (mapped back), nothing is lost
    only_mirror = merge_flip_instances(plain[:1], mirrored[:1], width)
    assert len(only_mirror) == 2
    np.testing.assert_allclose(only_mirror[0]["keypoints"], a + 1.0)
    np.testing.assert_allclose(only_mirror[1]["keypoints"], b - 1.0, atol=1e-9)


def _walker(cx, w, score, kps_rng, pose=None):
    """A person whose box is centred on ``cx``; ``pose`` ((K, 2) in box units) keeps a person's
    pose from frame to frame (a little noise added)."""
    if pose is None:
        pose = kps_rng.uniform(-0.4, 0.4, (len(KEYPOINT_NAMES), 2))
    kps = (pose + kps_rng.normal(0, 0.01, pose.shape)) * (w, 200) + (cx, 110)
    return _person(kps, [cx - w / 2, 10, cx + w / 2, 210], score)


def test_choose_persons_by_each_rule_and_track_by_clip_and_camera():
    from motion_keypoints.models.rcnn.predictor import PERSON_RULES, choose_persons

    rng = np.random.default_rng(0)
    width, height = 640, 240
    names, instances, truth = [], [], []
    main_pose, other_pose = rng.uniform(-0.4, 0.4, (2, len(KEYPOINT_NAMES), 2))
    # two clips x two cameras, frames given out of order; the main person walks in the middle,
    # a bystander at the edge scores higher in every second frame and is bigger in frame 3
    for clip in ("101-1-1-01-Z17", "102-1-1-01-Z17"):
        for cam in "AB":
            for frame in (5, 1, 3, 2, 4):
                main = _walker(320 + 4 * frame, 120, 0.8, rng, main_pose)
                other = _walker(60 + 2 * frame, 200 if frame == 3 else 80,
                                0.95 if frame % 2 else 0.5, rng, other_pose)
                names.append(f"{clip}_{cam}-{frame:07d}.jpg")
                instances.append([other, main])
                truth.append(1)
    names.append("holiday.jpg")  # not <clip>_<camera>-<frame>: by score
    instances.append([_walker(320, 100, 0.4, rng), _walker(60, 80, 0.9, rng)])
    truth.append(None)
    sizes = [(width, height)] * len(names)

    def picks(rule):
        persons, fallback = choose_persons(names, instances, sizes, rule)
        return [next(j for j, inst in enumerate(instances[i]) if inst is p)
                for i, p in enumerate(persons)], fallback

    by_score, fb = picks("score")
    assert fb == 0 and by_score[0] == 0 and by_score[-1] == 1  # frame 5: the bystander scores
    by_area, _ = picks("area")
    assert [a for a, n in zip(by_area, names) if "-0000003" in n] == [0] * 4
    by_center, _ = picks("center")
    assert by_center[:-1] == truth[:-1]
    by_track, fallback = picks("track")
    assert by_track[:-1] == truth[:-1] and fallback == 1 and by_track[-1] == by_score[-1]
    by_central, fallback = picks("central")  # one tracked identity per clip and camera
    assert by_central[:-1] == truth[:-1] and fallback == 1
    assert set(PERSON_RULES) == {"score", "area", "center", "track", "largest", "central",
                                 "longest"}
    with pytest.raises(ValueError, match="unknown person rule"):
        choose_persons(names, instances, sizes, "tallest")


def test_track_gives_none_where_only_a_bystander_breaks_the_track():
    from motion_keypoints.models.rcnn.predictor import choose_persons

    rng = np.random.default_rng(1)
    names, instances = [], []
    main_pose, other_pose = rng.uniform(-0.4, 0.4, (2, len(KEYPOINT_NAMES), 2))
    for frame in range(1, 9):
        main = _walker(320 + 4 * frame, 160, 0.8, rng, main_pose)
        other = _walker(60 + 2 * frame, 80, 0.9 if frame == 4 else 0.7, rng, other_pose)
        names.append(f"7-1-1-01-Z17_A-{frame:07d}.jpg")
        instances.append([other] if frame == 4 else [other, main])
    persons, _ = choose_persons(names, instances, [(640, 240)] * 8, "track")
    assert persons[3] is None
    assert all(p is inst[1] for i, (p, inst) in enumerate(zip(persons, instances)) if i != 3)
    by_score, _ = choose_persons(names, instances, [(640, 240)] * 8, "score")
    assert by_score[3] is instances[3][0]


# ------------------------------------------------------ a user's mistake is one line (issue 9.5)


def _fake_run(tmp_path, files=("config.yaml", "run_info.json", "model_final.pth")):
    run = tmp_path / "run"
    run.mkdir()
    for name in files:
        (run / name).write_text("{}")
    return run


@pytest.mark.parametrize(
    "files, checkpoint, expected",
    [
        (None, "best", "no such run folder"),
        (("run_info.json", "model_final.pth"), "best", "config.yaml is missing"),
        (("config.yaml", "model_final.pth"), "best", "run_info.json is missing"),
        (("config.yaml", "run_info.json"), "best", "has no checkpoint"),
        (("config.yaml", "run_info.json", "model_best.pth"), "final", "--checkpoint best"),
        (("config.yaml", "run_info.json"), "final", "--resume"),
        (("config.yaml", "run_info.json", "model_final.pth"), "last", "unknown checkpoint"),
    ],
)
def test_load_run_config_mistakes_are_one_line_run_errors(tmp_path, files, checkpoint, expected):
    from motion_keypoints.errors import UserError
    from motion_keypoints.io.runs import RunError
    from motion_keypoints.models.rcnn.predictor import load_run_config

    run = tmp_path / "run" if files is None else _fake_run(tmp_path, files)
    with pytest.raises(RunError) as info:
        load_run_config(run, checkpoint)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert expected in message and "\n" not in message and str(run) in message


def test_a_file_given_as_run_is_named(tmp_path):
    from motion_keypoints.io.runs import RunError
    from motion_keypoints.models.rcnn.predictor import load_run_config

    not_a_run = tmp_path / "model_final.pth"
    not_a_run.write_text("x")
    with pytest.raises(RunError, match="is a file, not a run folder"):
        load_run_config(not_a_run)


# ----------------------------------------------- predict_frames: in-memory frames, every person


@pytest.mark.slow
def test_predict_frames_matches_predict_images_and_keeps_every_person(tmp_path):
    import cv2
    import torch
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from motion_keypoints.engine.config import setup_cfg
    from motion_keypoints.models.rcnn.predictor import predict_frames, predict_images

    frames, files = [], []
    for i, (w, h) in enumerate([(96, 64), (80, 72), (96, 64)]):
        img = cv2.GaussianBlur(np.random.default_rng(i).integers(0, 255, (h, w, 3), np.uint8),
                               (5, 5), 2)
        frames.append(img)
        files.append(tmp_path / f"9-1-1-01-Z17_A-{i + 1:07d}.png")  # lossless: same pixels
        cv2.imwrite(str(files[-1]), img)
    torch.manual_seed(0)
    repo = Path(__file__).resolve().parents[1]
    cfg = setup_cfg(str(repo / "configs" / "tiny-cpu.yaml"),
                    ["MODEL.DEVICE", "cpu", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST",
                     "128", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"], freeze=False)
    model = build_model(cfg).eval()
    weights = tmp_path / "w.pth"
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("w")
    cfg.MODEL.WEIGHTS = str(weights)
    cfg.freeze()
    for flip in (False, True):
        got = predict_frames(cfg, model, frames, flip_tta=flip)
        res = predict_images(cfg, files, batch_size=3, flip_tta=flip, progress=False,
                             person_rule="track")
        ref = res["instances"]["flip" if flip else "plain"]
        assert len(got) == len(frames) and res["person_rule"] == "track" and res["fallback"] == 0
        assert any(len(inst) > 1 for inst in got)  # several persons per frame are kept
        for g, r in zip(got, ref):
            assert len(g) == len(r)
            for a, b in zip(g, r):
                np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)
                np.testing.assert_allclose(a["box"], b["box"], atol=1e-3)
                assert a["keypoints"].shape == (len(KEYPOINT_NAMES), 2)
            assert [x["score"] for x in g] == sorted((x["score"] for x in g), reverse=True)
        chosen = res["flip" if flip else "plain"]
        assert all(p is None or any(p is x for x in inst) for p, inst in zip(chosen, ref))
    assert predict_frames(cfg, model, []) == []
    with pytest.raises(ValueError, match="HxWx3 uint8 BGR"):
        predict_frames(cfg, model, [frames[0].astype(np.float32)])
