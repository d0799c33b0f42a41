"""THE pixel convention end to end (issue 10 item 6): a keypoint (x, y) is in pixel-index
coordinates, the centre of pixel column j is x = j (motion_keypoints.geometry).

An image with one bright pixel under each labelled keypoint goes through every transform the
augmentation config names; afterwards each label still sits on its bright pixel, measured by the
intensity-weighted centroid around it (<= 0.5 px; <= 1 px where a rotation resamples the pixel).
Flip TTA's un-flip returns a prediction exactly; detectron2's coordinates (+0.5) round-trip.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from motion_keypoints import geometry
from motion_keypoints.augment.config import load_augmentation_config
from motion_keypoints.augment.render import augment_image
from motion_keypoints.meta import FLIP_INDEX, NUM_KEYPOINTS
from motion_keypoints.models.rcnn.predictor import merge_flip, unflip_box, unflip_keypoints

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_augmentation_config(ROOT / "configs" / "augmentation.yaml")
W, H = 1920, 1080
WINDOW = 6  # half-size of the window the centroid is measured in (blur spreads up to 3 px)
BRIGHT = 255


def transform_names():
    names = CONFIG.known_names() + [t for s in CONFIG.sets.values() for t in s.transforms]
    names += ["hflip", "hflip+rotate45", "hflip+center_crop", "rotate45+random_crop_720x540"]
    return list(dict.fromkeys(names))


def labelled_image(seed: int):
    """A dark image with one bright pixel at each keypoint (integer pixel indices, 60+ px apart
    on a jittered grid in the middle of the frame)."""
    rng = np.random.default_rng(seed)
    cols = 6
    rows = -(-NUM_KEYPOINTS // cols)
    gx, gy = np.meshgrid(np.arange(cols), np.arange(rows))
    pts = np.stack([gx.ravel(), gy.ravel()], 1)[:NUM_KEYPOINTS].astype(float)
    pts = pts * [90, 80] + [W / 2 - 225, H / 2 - 160] + rng.integers(-15, 16, pts.shape)
    pts = np.round(pts)
    img = np.zeros((H, W, 3), np.uint8)
    img[pts[:, 1].astype(int), pts[:, 0].astype(int)] = BRIGHT
    return img, pts


def centroid(img: np.ndarray, near) -> np.ndarray | None:
    """Intensity-weighted centroid (pixel-index coordinates) of the bright spot in a window
    around ``near``; None when the window leaves the image or holds no spot."""
    x0, y0 = int(round(near[0])) - WINDOW, int(round(near[1])) - WINDOW
    h, w = img.shape[:2]
    if x0 < 0 or y0 < 0 or x0 + 2 * WINDOW + 1 > w or y0 + 2 * WINDOW + 1 > h:
        return None
    win = img[y0 : y0 + 2 * WINDOW + 1, x0 : x0 + 2 * WINDOW + 1].astype(float).mean(axis=2)
    weight = np.clip(win - np.median(win), 0, None)  # brightness/contrast lifts the background
    if weight.sum() < 1e-6:
        return None
    ys, xs = np.mgrid[: win.shape[0], : win.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum() + [x0, y0]


@pytest.mark.parametrize("transform", transform_names())
def test_every_label_stays_on_its_bright_pixel(transform):
    chain = CONFIG.resolve(transform)
    rotates = any(kind in ("rotate", "shift_scale") for kind, _ in chain)
    tol = 1.0 if rotates else 0.5
    checked, worst = 0, 0.0
    for seed in range(4):
        img, pts = labelled_image(seed)
        out_img, out, _ = augment_image(img, pts, transform, seed, CONFIG)
        assert out.shape == (NUM_KEYPOINTS, 2)
        for k in range(NUM_KEYPOINTS):
            c = centroid(out_img, out[k])
            if c is None:  # left the frame (crops, rotations)
                continue
            err = float(np.hypot(*(c - out[k])))
            worst = max(worst, err)
            assert err <= tol, f"{transform} seed {seed}: label {k} is {err:.2f} px off its pixel"
            checked += 1
    assert checked >= 8, f"{transform}: only {checked} labels stayed in the frame"
    assert worst <= tol


def test_hflip_maps_x_to_w_minus_1_minus_x_and_swaps_labels():
    img, pts = labelled_image(0)
    out_img, out, _ = augment_image(img, pts, "hflip", 0, CONFIG)
    expected = geometry.flip_points(pts, W)[list(FLIP_INDEX)]
    np.testing.assert_allclose(out, expected, atol=1e-3)
    np.testing.assert_array_equal(out_img, img[:, ::-1])
    # the bright pixel of column j is now in column W - 1 - j, exactly under the label
    for k in range(NUM_KEYPOINTS):
        x, y = out[k].astype(int)
        assert out_img[y, x, 0] == BRIGHT


def test_rotation_turns_about_the_pixel_index_centre():
    """A point at the image centre ((W-1)/2, (H-1)/2) stays put under any rotation."""
    w, h = 641, 361  # odd sizes: the centre is a pixel
    img = np.zeros((h, w, 3), np.uint8)
    pts = np.tile([[w // 2, h // 2]], (NUM_KEYPOINTS, 1)).astype(float)
    img[h // 2, w // 2] = BRIGHT
    for seed in range(3):
        out_img, out, _ = augment_image(img, pts, "rotate45", seed, CONFIG)
        np.testing.assert_allclose(out, pts, atol=1e-3)
        assert out_img[h // 2, w // 2, 0] == BRIGHT


# ------------------------------------------------------------------------------- flip TTA


def test_flip_tta_unflip_returns_the_original_point_exactly():
    img, pts = labelled_image(1)
    flipped = torch.flip(torch.as_tensor(img).permute(2, 0, 1), dims=[2])  # as predict_images
    # a perfect model on the mirrored image finds each bright pixel at its column there, and
    # reports the person's left keypoints where the right ones were
    ys, xs = np.nonzero(flipped[0].numpy() == BRIGHT)
    found = {(x, y) for x, y in zip(xs, ys)}
    on_mirror = geometry.flip_points(pts, W)[list(FLIP_INDEX)]
    assert {tuple(p) for p in on_mirror.astype(int)} == found
    scores = np.linspace(0.1, 0.9, NUM_KEYPOINTS)[:, None]
    back = unflip_keypoints(np.concatenate([on_mirror, scores[list(FLIP_INDEX)]], 1), W)
    np.testing.assert_array_equal(back[:, :2], pts)
    np.testing.assert_array_equal(back[:, 2:], scores)
    # non-integer points too: the un-flip is its own inverse, exactly
    p = np.array([[0.0, 1.0], [12.25, 7.5], [W - 1.0, 3.0]] * (NUM_KEYPOINTS // 3 + 1))
    p = p[:NUM_KEYPOINTS]
    np.testing.assert_array_equal(unflip_keypoints(unflip_keypoints(p, W), W), p)


def test_merge_flip_of_a_perfect_mirror_prediction_is_the_prediction():
    _, pts = labelled_image(2)
    box = np.array([100.0, 50.0, 300.0, 400.0])  # continuous (detectron2) coordinates
    person = {"keypoints": pts, "keypoint_scores": np.ones(NUM_KEYPOINTS), "box": box, "score": 0.9}
    mirror = {
        "keypoints": geometry.flip_points(pts, W)[list(FLIP_INDEX)],
        "keypoint_scores": np.ones(NUM_KEYPOINTS),
        "box": geometry.flip_box(box, W),
        "score": 0.9,
    }
    merged = merge_flip(person, mirror, W)
    np.testing.assert_array_equal(merged["keypoints"], pts)
    np.testing.assert_array_equal(merged["box"], box)
    np.testing.assert_array_equal(unflip_box(geometry.flip_box(box, W), W), box)


# ---------------------------------------------------------------------- detectron2 round trip


def test_detectron2_coordinates_round_trip():
    from detectron2.data import transforms as T

    _, pts = labelled_image(3)
    np.testing.assert_array_equal(geometry.from_continuous(geometry.to_continuous(pts)), pts)
    # detectron2's flip and resize act on continuous coordinates: through to/from_continuous
    # they are geometry's flip_points and scale_points
    flip = T.HFlipTransform(W)
    got = geometry.from_continuous(flip.apply_coords(geometry.to_continuous(pts).copy()))
    np.testing.assert_allclose(got, geometry.flip_points(pts, W), atol=1e-9)
    resize = T.ResizeTransform(H, W, 540, 960)
    got = geometry.from_continuous(resize.apply_coords(geometry.to_continuous(pts).copy()))
    np.testing.assert_allclose(got, geometry.scale_points(pts, 960 / W, 540 / H), atol=1e-4)
    back = resize.inverse().apply_coords(resize.apply_coords(geometry.to_continuous(pts).copy()))
    np.testing.assert_allclose(geometry.from_continuous(back), pts, atol=1e-4)


def test_detectron2_resize_moves_labels_with_their_pixels():
    from detectron2.data import transforms as T

    img, pts = labelled_image(4)
    big = np.zeros_like(img)  # 3x3 spots so that a 2x downscale keeps them visible
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            big[pts[:, 1].astype(int) + dy, pts[:, 0].astype(int) + dx] = BRIGHT
    resize = T.ResizeTransform(H, W, H // 2, W // 2)
    small = resize.apply_image(big)
    labels = geometry.from_continuous(resize.apply_coords(geometry.to_continuous(pts).copy()))
    for k in range(NUM_KEYPOINTS):
        c = centroid(small, labels[k])
        assert c is not None
        assert np.hypot(*(c - labels[k])) <= 0.5, (k, c, labels[k])
