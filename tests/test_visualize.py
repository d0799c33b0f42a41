"""Skeleton drawing colours and the sample grids."""

import cv2
import numpy as np
import pytest

from motion_keypoints.meta import (
    CENTER_COLOR,
    KEYPOINT_NAMES,
    LEFT_COLOR,
    RIGHT_COLOR,
    keypoint_index,
)
from motion_keypoints.visualize import draw_keypoints, keypoint_colors, save_samples

K = len(KEYPOINT_NAMES)


def pose(**points):
    kps = np.full((K, 2), np.nan)
    for name, xy in points.items():
        kps[keypoint_index(name)] = xy
    return kps


def test_left_right_and_centre_have_their_colours():
    img = np.zeros((200, 200, 3), np.uint8)
    kps = pose(left_wrist=(50, 50), right_wrist=(150, 50), nose=(100, 150),
               left_elbow=(50, 110), right_elbow=(150, 110))
    out = draw_keypoints(img, kps, radius=4, thickness=3)
    assert not img.any()  # the input is not modified
    assert tuple(out[50, 50]) == LEFT_COLOR
    assert tuple(out[50, 150]) == RIGHT_COLOR
    assert tuple(out[150, 100]) == CENTER_COLOR
    assert tuple(out[80, 50]) == LEFT_COLOR  # left_elbow-left_wrist edge
    assert tuple(out[80, 150]) == RIGHT_COLOR
    assert not out[120:140, 20:80].any()  # nose has no drawn neighbour: no edge from it
    assert len(set(keypoint_colors())) == 3


def test_missing_keypoints_are_not_drawn():
    img = np.full((60, 80, 3), 7, np.uint8)
    np.testing.assert_array_equal(draw_keypoints(img, np.full((K, 2), np.nan)), img)
    far = pose(nose=(1e12, -1e12), neck=(40, 30))  # far outside the image: clipped, no crash
    assert draw_keypoints(img, far).shape == img.shape
    with pytest.raises(ValueError, match=rf"expected \({K}, 2\)"):
        draw_keypoints(img, np.zeros((3, 2)))


@pytest.fixture
def image_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"im{i}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return tmp_path


def test_save_samples_writes_a_deterministic_grid(image_dir, tmp_path):
    images = [f"im{i}.jpg" for i in range(6)]
    coords = np.tile(pose(nose=(10, 10), neck=(20, 30)), (6, 1, 1))
    coords[2] = np.nan
    out = save_samples(image_dir, images, coords, tmp_path / "s" / "a.png", n=3, cols=2,
                       tile_width=100, title="run A")
    grid = cv2.imread(str(out))
    assert grid.shape == (26 + 2 * 75, 2 * 100, 3)  # title strip + 2 rows of 100x75 tiles
    again = save_samples(image_dir, images, coords, tmp_path / "s" / "b.png", n=3, cols=2,
                         tile_width=100, title="run A")
    assert again.read_bytes() == out.read_bytes()
    other = save_samples(image_dir, images, coords, tmp_path / "s" / "c.png", n=3, cols=2,
                         tile_width=100, title="run A", seed=5)
    assert other.read_bytes() != out.read_bytes()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["a.png", "b.png", "c.png"]


def test_save_samples_names_a_missing_image(image_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        save_samples(image_dir, ["gone.jpg"], np.zeros((1, K, 2)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 predictions for 1 images"):
        save_samples(image_dir, ["im0.jpg"], np.zeros((2, K, 2)), tmp_path / "x.png")


def dot_centre(img):
    weight = img.astype(float).sum(axis=2)
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / weight.sum()


@pytest.mark.parametrize("xy", [(20, 15), (20.5, 15.25), (7.75, 30)])
def test_keypoints_are_drawn_at_their_pixel_index_position(xy):
    """Pixel convention (geometry): (x, y) is the centre of pixel column x, row y."""
    img = np.zeros((50, 60, 3), np.uint8)
    out = draw_keypoints(img, pose(nose=xy), radius=3)
    np.testing.assert_allclose(dot_centre(out), xy, atol=0.1)


def test_sample_tiles_move_keypoints_with_the_resized_pixels(tmp_path):
    """A 4x downscaled tile: the dot of a keypoint on pixel (x, y) sits on the resized pixel
    of that spot (geometry.scale_points: (x + 0.5) / 4 - 0.5), not at x / 4."""
    img = np.zeros((200, 400, 3), np.uint8)
    img[100:104, 200:204] = 255  # a 4x4 block: pixels 200..203 -> tile pixel 50
    cv2.imwrite(str(tmp_path / "big.png"), img)
    coords = pose(nose=(201.5, 101.5))[None]
    out = save_samples(tmp_path, ["big.png"], coords, tmp_path / "grid.png", n=1, cols=1,
                       tile_width=100)
    grid = cv2.imread(str(out))
    tile = grid[:, :100]
    nose_color = np.all(tile == CENTER_COLOR, axis=2)
    ys, xs = np.nonzero(nose_color)
    assert len(xs) > 0
    np.testing.assert_allclose([xs.mean(), ys.mean()], [50, 25], atol=0.35)


def test_save_samples_reads_16_bit_images_like_every_stage(tmp_path):
    rng = np.random.default_rng(1)
    img8 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    deep = img8.astype(np.uint32) * 257 + rng.integers(0, 128, img8.shape)
    cv2.imwrite(str(tmp_path / "deep.png"), np.minimum(deep, 65535).astype(np.uint16))
    (tmp_path / "deep.png").rename(tmp_path / "deep.jpg")
    out = save_samples(tmp_path, ["deep.jpg"], np.full((1, K, 2), np.nan), tmp_path / "g.png",
                       n=1, cols=1, tile_width=64)
    tile = cv2.imread(str(out))[30:, :64]  # below the name label
    assert abs(tile.astype(float).mean() - img8[30:].astype(float).mean()) < 1.0
