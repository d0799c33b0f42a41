"""The heatmap codec on hand-made heatmaps: encoding, argmax/DARK decoding, crops, UDP, flip test."""

import numpy as np
import pytest

from motion_keypoints.geometry import apply_affine, flip_points
from motion_keypoints.models.heatmap import codec

try:
    from motion_keypoints.meta import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS
except ImportError:
    from motion_keypoints.keypoints import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS

INPUT = (192, 256)  # (w, h) of the crop
HEATMAP = (48, 64)  # stride 4


def _encode_one(x_hm, y_hm, udp=False, sigma=2.0):
    """A single keypoint given in heatmap coords, encoded through the input frame."""
    pt_in = codec.heatmap_to_input(np.array([[x_hm, y_hm]]), HEATMAP, INPUT, udp)
    hm, w = codec.encode_gaussian(pt_in, np.ones(1), HEATMAP, INPUT, sigma=sigma, udp=udp)
    return hm, w


def test_encode_peak_and_weights():
    pts_in = np.array([[40.0, 80.0], [np.nan, 3.0], [50.0, 60.0], [-100.0, 10.0]])
    hm, w = codec.encode_gaussian(pts_in, np.array([1, 1, 0, 1]), HEATMAP, INPUT)
    assert hm.shape == (4, HEATMAP[1], HEATMAP[0]) and hm.dtype == np.float32
    np.testing.assert_array_equal(w, [1, 0, 0, 0])  # nan, invisible, far outside → weight 0
    assert hm[1:].max() == 0
    # non-UDP: x_hm = x_in / 4 → (10, 20), an exact pixel centre: peak value 1 at [row 20, col 10]
    assert hm[0, 20, 10] == pytest.approx(1.0)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (20, 10)


def test_udp_mapping_puts_corners_on_corners():
    corners = np.array([[0.0, 0.0], [INPUT[0] - 1, INPUT[1] - 1]])
    np.testing.assert_allclose(
        codec.input_to_heatmap(corners, HEATMAP, INPUT, udp=True),
        [[0, 0], [HEATMAP[0] - 1, HEATMAP[1] - 1]],
    )
    np.testing.assert_allclose(  # standard: x / stride
        codec.input_to_heatmap(corners, HEATMAP, INPUT, udp=False), corners / 4.0
    )


@pytest.mark.parametrize("udp", [False, True])
def test_dark_recovers_subpixel_point(udp):
    for x, y in [(20.3, 30.7), (11.49, 40.51), (30.0, 12.25), (24.9, 33.05)]:
        hm, _ = _encode_one(x, y, udp=udp)
        coords, maxv = codec.decode(hm, method="dark", udp=udp)
        assert np.hypot(*(coords[0] - [x, y])) < 0.05, (x, y, coords[0])
        assert 0.5 < maxv[0] <= 1.0


def test_dark_on_a_tilted_elliptic_peak():
    """A network's peaks are not round: a tilted ellipse has a non-zero Hessian cross term."""
    x0, y0 = 21.35, 30.62
    cov = np.array([[9.0, 5.0], [5.0, 6.0]])
    inv = np.linalg.inv(cov)
    xs, ys = np.meshgrid(np.arange(HEATMAP[0]), np.arange(HEATMAP[1]))
    d = np.stack([xs - x0, ys - y0], axis=-1)
    hm = np.exp(-0.5 * np.einsum("...i,ij,...j->...", d, inv, d))[None]
    coords, _ = codec.decode(hm, method="dark")
    assert np.hypot(*(coords[0] - [x0, y0])) < 0.05, coords[0]


def test_argmax_quarter_offset_direction():
    hm, _ = _encode_one(20.3, 30.7)
    coords, _ = codec.decode(hm, method="argmax")
    # argmax (20, 31); the right neighbour beats the left → +0.25, the upper beats the lower → -0.25
    np.testing.assert_allclose(coords[0], [20.25, 30.75])


def test_argmax_within_half_pixel_and_dark_beats_it():
    rng = np.random.default_rng(0)
    pts = rng.uniform([8, 8], [HEATMAP[0] - 8, HEATMAP[1] - 8], size=(40, 2))
    pts_in = codec.heatmap_to_input(pts, HEATMAP, INPUT)
    hm, _ = codec.encode_gaussian(pts_in, np.ones(len(pts)), HEATMAP, INPUT, sigma=2.0)
    c_arg, _ = codec.decode(hm[None], method="argmax")
    c_dark, _ = codec.decode(hm[None], method="dark")
    e_arg = np.hypot(*(c_arg[0] - pts).T)
    e_dark = np.hypot(*(c_dark[0] - pts).T)
    assert e_arg.max() < 0.5
    assert e_dark.max() < 0.05
    assert e_dark.mean() < 0.25 * e_arg.mean()


def test_decode_batch_shapes_and_empty_map_is_nan():
    hm = np.zeros((2, 3, HEATMAP[1], HEATMAP[0]), dtype=np.float32)
    hm[0, 1] = _encode_one(10.2, 15.6)[0][0]
    coords, maxv = codec.decode(hm)
    assert coords.shape == (2, 3, 2) and maxv.shape == (2, 3)
    assert np.isfinite(coords[0, 1]).all() and np.isnan(coords[0, 0]).all()
    np.testing.assert_allclose(coords[0, 1], [10.2, 15.6], atol=0.05)
    with pytest.raises(ValueError):
        codec.decode(hm, method="soft")


def test_crop_affine_box_at_model_aspect():
    # a tall box (100×300) into a 3:4 crop: the width grows to 225, then ×1.25 margin
    box = (50.0, 20.0, 150.0, 320.0)
    m, m_inv = codec.crop_affine(box, INPUT, margin=1.25)
    np.testing.assert_allclose(m @ np.append(m_inv[:, :2] @ [1, 2] + m_inv[:, 2], 1), [1, 2])
    center = apply_affine(np.array([100.0, 170.0]), m)
    np.testing.assert_allclose(center, [(INPUT[0] - 1) / 2, (INPUT[1] - 1) / 2])
    # the region's left/right edges land on the crop's pixel edges -0.5 and w-0.5 (kit convention)
    half_w = 225 * 1.25 / 2
    edges = apply_affine(np.array([[100 - half_w, 170.0], [100 + half_w, 170.0]]), m)
    np.testing.assert_allclose(edges[:, 0], [-0.5, INPUT[0] - 0.5])
    m_udp, _ = codec.crop_affine(box, INPUT, margin=1.25, udp=True)
    edges = apply_affine(np.array([[100 - half_w, 170.0], [100 + half_w, 170.0]]), m_udp)
    np.testing.assert_allclose(edges[:, 0], [0.0, INPUT[0] - 1])


def test_crop_rotation_direction_matches_cv2_convention():
    # rotating by +90° (counter-clockwise on screen): a point to the right of the centre goes up
    m, _ = codec.crop_affine((0.0, 0.0, 90.0, 120.0), INPUT, margin=1.0, rotation=90)
    c = apply_affine(np.array([45.0, 60.0]), m)
    right = apply_affine(np.array([55.0, 60.0]), m)
    assert right[1] < c[1] - 1 and abs(right[0] - c[0]) < 1e-9


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("rotation", [0.0, 30.0, -75.0])
def test_round_trip_image_crop_heatmap_image(udp, rotation):
    rng = np.random.default_rng(1)
    box = (300.0, 120.0, 420.0, 440.0)
    m, m_inv = codec.crop_affine(box, INPUT, margin=1.25, rotation=rotation, udp=udp)
    pts_img = rng.uniform([320, 160], [400, 400], size=(NUM_KEYPOINTS, 2))
    pts_in = apply_affine(pts_img, m)
    hm, w = codec.encode_gaussian(pts_in, np.ones(NUM_KEYPOINTS), HEATMAP, INPUT, udp=udp)
    assert w.all()
    coords, _ = codec.decode(hm, method="dark", udp=udp)
    back = codec.heatmap_to_image(coords, HEATMAP, INPUT, m_inv, udp=udp)
    err = np.hypot(*(back - pts_img).T)
    assert err.max() < 0.1, err.max()


def _mirrored_prediction(pts_in, udp):
    """What an exactly flip-equivariant model outputs on the mirrored crop: the mirrored points,
    with left/right channels swapped (channel k shows the partner of keypoint k)."""
    mirrored = flip_points(pts_in, INPUT[0])[list(FLIP_INDEX)]
    hm, _ = codec.encode_gaussian(mirrored, np.ones(len(pts_in)), HEATMAP, INPUT, udp=udp)
    return hm


def _flip_residual(udp, shift):
    rng = np.random.default_rng(2)
    pts_in = rng.uniform([40, 40], [INPUT[0] - 40, INPUT[1] - 40], size=(NUM_KEYPOINTS, 2))
    truth = codec.input_to_heatmap(pts_in, HEATMAP, INPUT, udp)
    back = codec.flip_heatmaps(_mirrored_prediction(pts_in, udp), FLIP_INDEX, shift=shift)
    coords, _ = codec.decode(back, method="dark", udp=udp)
    return coords - truth


def test_flip_udp_is_exact_without_shift():
    res = _flip_residual(udp=True, shift=False)
    assert np.abs(res).max() < 0.05
    res = _flip_residual(udp=True, shift=True)  # the HRNet shift would be wrong by one pixel
    np.testing.assert_allclose(res[:, 0], 1.0, atol=0.05)


def test_flip_standard_encoding_shift_residuals():
    """x_hm = x_in/stride is not flip-symmetric: mirroring leaves x - (1 - 1/stride). The 1-px
    shift leaves +1/stride = +0.25 px, no shift -0.75 px; y is untouched either way."""
    stride = INPUT[0] / HEATMAP[0]
    res_shift = _flip_residual(udp=False, shift=True)
    res_none = _flip_residual(udp=False, shift=False)
    np.testing.assert_allclose(res_shift[:, 0], 1 / stride, atol=0.05)
    np.testing.assert_allclose(res_none[:, 0], 1 / stride - 1, atol=0.05)
    assert np.abs(res_shift[:, 1]).max() < 0.05 and np.abs(res_none[:, 1]).max() < 0.05


def test_flip_permutes_left_right_channels():
    left, right = KEYPOINT_NAMES.index("left_wrist"), KEYPOINT_NAMES.index("right_wrist")
    nose = KEYPOINT_NAMES.index("nose")
    hm = np.zeros((NUM_KEYPOINTS, HEATMAP[1], HEATMAP[0]), dtype=np.float32)
    hm[left, 5, 3] = 1.0  # left wrist near the left edge
    hm[nose, 7, 10] = 1.0
    out = codec.flip_heatmaps(hm, FLIP_INDEX, shift=False)
    assert out[right, 5, HEATMAP[0] - 1 - 3] == 1.0 and out[left].max() == 0
    assert out[nose, 7, HEATMAP[0] - 1 - 10] == 1.0
    batch = codec.flip_heatmaps(np.stack([hm, hm]), FLIP_INDEX, shift=True)
    assert batch.shape == (2,) + hm.shape
    assert batch[1, right, 5, HEATMAP[0] - 3] == 1.0  # shifted one pixel to the right
    # flipping twice without shift is the identity
    np.testing.assert_array_equal(codec.flip_heatmaps(out, FLIP_INDEX, shift=False), hm)
    with pytest.raises(ValueError):
        codec.flip_heatmaps(hm[:-1], FLIP_INDEX)


def test_fuse_flip_with_udp_recovers_point():
    rng = np.random.default_rng(3)
    pts_in = rng.uniform([40, 40], [INPUT[0] - 40, INPUT[1] - 40], size=(NUM_KEYPOINTS, 2))
    hm, _ = codec.encode_gaussian(pts_in, np.ones(NUM_KEYPOINTS), HEATMAP, INPUT, udp=True)
    back = codec.flip_heatmaps(_mirrored_prediction(pts_in, True), FLIP_INDEX, shift=False)
    fused = codec.fuse_flip(hm, back)
    coords, _ = codec.decode(fused, method="dark", udp=True)
    truth = codec.input_to_heatmap(pts_in, HEATMAP, INPUT, udp=True)
    assert np.abs(coords - truth).max() < 0.05
