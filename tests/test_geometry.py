"""motion_keypoints.geometry, THE pixel convention, on hand-computed numbers."""

import cv2
import numpy as np
import pytest

from motion_keypoints import geometry as g


def test_continuous_is_plus_half_a_pixel():
    np.testing.assert_array_equal(g.to_continuous([[0, 0], [3, 4]]), [[0.5, 0.5], [3.5, 4.5]])
    np.testing.assert_array_equal(g.from_continuous([[0.5, 0.5], [10, 2]]), [[0, 0], [9.5, 1.5]])
    assert g.PIXEL_OFFSET == 0.5


def test_flip_points_maps_pixel_j_to_w_minus_1_minus_j():
    pts = np.array([[0.0, 5.0], [9.0, 1.0], [4.5, 2.0]])
    np.testing.assert_array_equal(g.flip_points(pts, 10), [[9, 5], [0, 1], [4.5, 2]])
    np.testing.assert_array_equal(g.flip_points(g.flip_points(pts, 10), 10), pts)
    assert pts[0, 0] == 0.0  # not modified in place
    # the same as the pixels: column j of np.fliplr goes to W - 1 - j
    img = np.zeros((3, 10), np.uint8)
    img[1, 2] = 1
    assert np.argwhere(np.fliplr(img)).tolist() == [[1, 7]]
    assert g.flip_points([[2, 1]], 10).tolist() == [[7, 1]]


def test_flip_box_is_in_continuous_coordinates():
    np.testing.assert_array_equal(g.flip_box([1, 2, 4, 8], 10), [6, 2, 9, 8])
    # a box around pixel 0 (continuous [0, 1]) becomes the box around pixel 9 ([9, 10])
    np.testing.assert_array_equal(g.flip_box([0, 0, 1, 1], 10), [9, 0, 10, 1])


def test_scale_points_keeps_pixel_areas_aligned():
    # 2x upscale: pixel 0 ([-0.5, 0.5]) becomes pixels 0-1 ([-0.5, 1.5]), centre 0.5
    np.testing.assert_allclose(g.scale_points([[0, 0]], 2, 2), [[0.5, 0.5]])
    # 2x downscale: pixels 0 and 1 merge into pixel 0: their shared edge x = 0.5 -> 0.0
    np.testing.assert_allclose(g.scale_points([[0.5, 0.5]], 0.5, 0.5), [[0, 0]])
    np.testing.assert_allclose(g.scale_points([[3, 1]], 0.5, 3), [[1.25, 4]])
    # cv2.resize agrees: a 2x2 block at pixels (2..3, 4..5) -> pixel (1, 2) after halving
    img = np.zeros((8, 8), np.float32)
    img[4:6, 2:4] = 1
    small = cv2.resize(img, (4, 4), interpolation=cv2.INTER_AREA)
    assert np.argwhere(small == 1).tolist() == [[2, 1]]
    np.testing.assert_allclose(g.scale_points([[2.5, 4.5]], 0.5, 0.5), [[1, 2]])


def test_apply_and_invert_affine():
    m = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, -2.0]])
    np.testing.assert_allclose(g.apply_affine([[1, 1], [0, 0]], m), [[3, 1], [1, -2]])
    inv = g.invert_affine(m)
    np.testing.assert_allclose(inv, [[0.5, 0, -0.5], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(g.apply_affine(g.apply_affine([[5, 7]], m), inv), [[5, 7]])
    # warpAffine maps pixel indices: a translation by (2, 1) moves pixel (1, 1) to (3, 2)
    img = np.zeros((6, 6), np.float32)
    img[1, 1] = 1
    t = np.array([[1.0, 0, 2], [0, 1.0, 1]])
    assert np.argwhere(cv2.warpAffine(img, t, (6, 6)) == 1).tolist() == [[2, 3]]
    assert g.apply_affine([[1, 1]], t).tolist() == [[3, 2]]


def test_rotation_matrix_is_opencvs_about_the_pixel_index_centre():
    assert g.image_center(5, 3) == (2.0, 1.0)
    assert g.image_center(4, 4) == (1.5, 1.5)
    m = g.rotation_matrix((2.0, 1.0), 90)
    np.testing.assert_allclose(m, cv2.getRotationMatrix2D((2.0, 1.0), 90, 1.0), atol=1e-12)
    # counter-clockwise on screen (y down): a point right of the centre goes above it
    np.testing.assert_allclose(g.apply_affine([[3, 1], [2, 1]], m), [[2, 0], [2, 1]], atol=1e-12)
    np.testing.assert_allclose(
        g.rotation_matrix((0, 0), 0, 2.0), [[2, 0, 0], [0, 2, 0]], atol=1e-12
    )
    # the pixel at the centre of an odd-sized image stays put under a 90 degree turn
    img = np.zeros((5, 5), np.float32)
    img[2, 2], img[2, 3] = 1, 0.5
    out = cv2.warpAffine(img, g.rotation_matrix(g.image_center(5, 5), 90), (5, 5))
    assert out[2, 2] == pytest.approx(1) and out[1, 2] == pytest.approx(0.5)


def test_boxes():
    pts = np.array([[1, 2], [5, 10], [np.nan, 3]])
    np.testing.assert_array_equal(g.box_from_points(pts), [1, 2, 5, 10])
    np.testing.assert_array_equal(g.box_from_points(pts, 0.25), [0, 0, 6, 12])
    with pytest.raises(ValueError, match="no finite point"):
        g.box_from_points([[np.nan, np.nan]])
    np.testing.assert_array_equal(g.clip_box([-3, 2, 30, 50], 10, 20), [-0.5, 2, 9.5, 19.5])
    assert g.box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert g.box_iou([0, 0, 2, 2], [0, 0, 2, 2]) == 1.0
    assert g.box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert g.box_iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


# ------------------------------------------------------------ issue 18: one vectorised box IoU
def test_pairwise_box_iou_is_box_iou_for_every_pair_and_matches_torchvision():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 100, (7, 4))
    a[:, 2:] = a[:, :2] + rng.uniform(20, 80, (7, 2))  # proper boxes
    b = np.concatenate([a[:3] + rng.normal(0, 2, (3, 4)), rng.uniform(0, 200, (4, 4))])
    b[3:, 2:] += b[3:, :2]
    m = g.pairwise_box_iou(a, b)
    assert m.shape == (7, 7) and (m >= 0).all() and (m <= 1).all()
    for i in range(7):
        for j in range(7):
            assert m[i, j] == g.box_iou(a[i], b[j])
    assert np.allclose(np.diag(g.pairwise_box_iou(a, a)), 1.0)
    np.testing.assert_array_equal(g.pairwise_box_iou(a, b), g.pairwise_box_iou(b, a).T)
    assert m[0, 0] > 0.5 and m[0, 0] != 1.0  # a box and its jittered copy
    tv = pytest.importorskip("torchvision.ops")
    import torch

    np.testing.assert_allclose(m, tv.box_iou(torch.as_tensor(a), torch.as_tensor(b)).numpy(),
                               rtol=1e-12, atol=1e-12)


def test_pairwise_box_iou_edge_cases():
    assert g.pairwise_box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert g.pairwise_box_iou([0, 0, 2, 2], np.zeros((0, 4))).shape == (1, 0)
    # empty and non-finite boxes overlap nothing (never NaN)
    m = g.pairwise_box_iou([[0, 0, 0, 0], [0, 0, np.nan, 2], [2, 2, 1, 1]], [[0, 0, 2, 2]])
    np.testing.assert_array_equal(m, [[0.0], [0.0], [0.0]])
    assert g.pairwise_box_iou([0, 0, 2, 2], [[1, 1, 3, 3]])[0, 0] == pytest.approx(1 / 7)
