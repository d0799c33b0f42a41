import numpy as np
import pytest

from motion_keypoints.keypoints import FLIP_PAIRS, KEYPOINT_NAMES, keypoint_index
from motion_keypoints.predict import PRED_COLUMNS, merge_flip, unflip_box, unflip_keypoints


def _asymmetric_pose(rng, width, height):
    kps = np.stack([rng.uniform(0, width - 1, len(KEYPOINT_NAMES)),
                    rng.uniform(0, height - 1, len(KEYPOINT_NAMES))], 1)
    return kps


def _mirror_as_model_sees_it(kps, width):
    """What a perfect model predicts on the mirrored image: mirrored pixels, and the person's
    left is now the image's... left labels follow the body, so they swap."""
    mirrored = kps.copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    swapped = mirrored.copy()
    for a, b in FLIP_PAIRS:
        ia, ib = keypoint_index(a), keypoint_index(b)
        swapped[ia], swapped[ib] = mirrored[ib], mirrored[ia]
    return swapped


def test_flip_tta_maps_a_known_asymmetric_pose_back_exactly():
    rng = np.random.default_rng(0)
    width, height = 321, 180
    kps = _asymmetric_pose(rng, width, height)
    seen_in_mirror = _mirror_as_model_sees_it(kps, width)
    np.testing.assert_allclose(unflip_keypoints(seen_in_mirror, width), kps, atol=1e-9)
    # and it is an involution
    np.testing.assert_allclose(unflip_keypoints(unflip_keypoints(kps, width), width), kps)


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
    truth = _asymmetric_pose(rng, width, height)
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
    assert PRED_COLUMNS[0] == "image"
    assert len(PRED_COLUMNS) == len(set(PRED_COLUMNS))
    assert "detected" in PRED_COLUMNS


@pytest.mark.parametrize("split", ["train", "nope"])
def test_unknown_split(tmp_path, split, synthetic_data):
    from motion_keypoints.predict import split_images

    with pytest.raises(ValueError, match="valid: test, val"):
        split_images(tmp_path, synthetic_data, split)
