"""The pure fusion functions of issue 12.6 and 13.1: per-keypoint weights and aligning the
members on the same person by box overlap (hand-made arrays, no files)."""

import numpy as np
import pytest

from motion_keypoints.ensemble.fuse import (
    align_by_boxes,
    fuse,
    fuse_with_fallback,
    keypoint_rmse_weights,
    rmse_weights,
)
from motion_keypoints.evaluation import metrics
from motion_keypoints.meta import NUM_KEYPOINTS

K = NUM_KEYPOINTS
HALF = K // 2


def poses(n, seed, w=640.0, h=480.0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(100, w - 100, (n, K)), rng.uniform(100, h - 100, (n, K))], -1)


# ---------------------------------------------------------------------- per-keypoint weights


def test_keypoint_rmse_weights_by_hand():
    r = np.ones((2, K))
    r[0, 0], r[1, 0] = 1.0, 2.0  # keypoint 0: member 0 twice as accurate -> 4x the weight
    r[:, 1] = [3.0, 3.0]
    w = keypoint_rmse_weights(r)
    assert w.shape == (2, K)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    np.testing.assert_allclose(w[:, 0], [0.8, 0.2])
    np.testing.assert_allclose(w[:, 1], [0.5, 0.5])
    # a constant column is the per-member rule
    np.testing.assert_allclose(keypoint_rmse_weights(np.array([[1.0] * K, [2.0] * K]))[:, 5],
                               rmse_weights([1.0, 2.0]))
    for bad in (0.0, -1.0, np.nan, np.inf):
        r2 = r.copy()
        r2[1, 3] = bad
        with pytest.raises(ValueError, match="member 1, keypoint 3"):
            keypoint_rmse_weights(r2)
    with pytest.raises(ValueError, match="shape"):
        keypoint_rmse_weights(np.ones(K))


def test_fuse_accepts_member_by_keypoint_weights():
    c = np.stack([np.zeros((1, K, 2)), np.full((1, K, 2), 10.0)])
    w = np.full((2, K), 0.5)
    w[:, 0] = [0.9, 0.1]
    w[:, 1] = [0.0, 1.0]
    out = fuse(c, "weighted", weights=w)[0]
    np.testing.assert_allclose(out[0], 1.0)
    np.testing.assert_allclose(out[1], 10.0)
    np.testing.assert_allclose(out[2:], 5.0)
    # with scores, both multiply
    s = np.ones((2, 1, K))
    s[1, 0, 0] = 9.0
    np.testing.assert_allclose(fuse(c, "weighted", weights=w, scores=s)[0, 0], 5.0)
    with pytest.raises(ValueError, match=rf"\(2, {K}\) per member and keypoint"):
        fuse(c, "weighted", weights=np.ones((2, K + 1)))


def _members(n, seed):
    """Member A: good on the first half of the keypoints (σ 0.5 px), bad on the rest (σ 8 px);
    member B: 3 px everywhere. Per member, B is the better one; per keypoint, A wins half."""
    rng = np.random.default_rng(seed)
    truth = poses(n, seed)
    sigma_a = np.where(np.arange(K) < HALF, 0.5, 8.0)
    a = truth + rng.normal(0, 1, truth.shape) * sigma_a[None, :, None]
    b = truth + rng.normal(0, 3.0, truth.shape)
    return truth, np.stack([a, b])


def test_per_keypoint_weights_beat_per_member_weights():
    val_truth, val = _members(400, 1)
    test_truth, test = _members(400, 2)
    per_member = [metrics.rmse(m, val_truth) for m in val]
    per_kp = np.array([list(metrics.per_keypoint_rmse(m, val_truth).values()) for m in val])
    w_member = rmse_weights(per_member)
    w_kp = keypoint_rmse_weights(per_kp)
    assert w_member[1] > w_member[0]  # per member, B wins
    assert np.all(w_kp[0, :HALF] > 0.9) and np.all(w_kp[0, HALF:] < 0.3)  # per keypoint, A half
    rmse_member = metrics.rmse(fuse(test, "weighted", weights=w_member), test_truth)
    rmse_kp = metrics.rmse(fuse(test, "weighted", weights=w_kp), test_truth)
    rmse_mean = metrics.rmse(fuse(test, "mean"), test_truth)
    best_single = min(metrics.rmse(m, test_truth) for m in test)
    print(f"per-member weights {rmse_member:.3f} px, per-keypoint {rmse_kp:.3f} px, "
          f"mean {rmse_mean:.3f} px, best member {best_single:.3f} px")
    assert rmse_kp < 0.85 * rmse_member
    assert rmse_kp < best_single


# -------------------------------------------------------------------------- same person


def _boxes():
    """3 members, 3 images: all on the person except member 2 on image 1 (a bystander to the
    right) and member 0 on image 2 (nothing detected)."""
    person = np.array([100.0, 50.0, 300.0, 450.0])
    bystander = np.array([420.0, 60.0, 600.0, 440.0])
    jitter = np.array([[0, 0, 0, 0], [8, -5, 6, 4], [-6, 4, -8, -3]], float)
    boxes = np.stack([np.stack([person + j] * 3) for j in jitter])  # (3, 3, 4)
    boxes[2, 1] = bystander
    present = np.ones((3, 3), bool)
    present[0, 2] = False
    boxes[0, 2] = np.nan
    return boxes, present


@pytest.mark.parametrize("reference", ["median", "medoid"])
def test_align_by_boxes_drops_the_member_on_a_bystander(reference):
    boxes, present = _boxes()
    keep = align_by_boxes(boxes, present, min_iou=0.3, reference=reference)
    expected = present.copy()
    expected[2, 1] = False
    np.testing.assert_array_equal(keep, expected)
    # two members on image 2: no majority, nobody dropped even on a bystander
    boxes[2, 2] = boxes[2, 1]
    keep = align_by_boxes(boxes, present, reference=reference)
    assert keep[1, 2] and keep[2, 2]


def test_align_by_boxes_never_drops_everyone_and_checks_its_input():
    boxes = np.array([[[0, 0, 10, 10]], [[50, 50, 60, 60]], [[100, 0, 110, 10]]], float)
    present = np.ones((3, 1), bool)
    # three members on three different people: no consensus, nobody dropped
    np.testing.assert_array_equal(align_by_boxes(boxes, present), present)
    with pytest.raises(ValueError, match="min_iou"):
        align_by_boxes(boxes, present, min_iou=0.0)
    with pytest.raises(ValueError, match="reference"):
        align_by_boxes(boxes, present, reference="mode")
    with pytest.raises(ValueError, match="shape|must be"):
        align_by_boxes(boxes[..., :3], present)


def test_fusion_with_alignment_ignores_the_distractor_member():
    boxes, present = _boxes()
    truth = poses(3, 7)
    distractor = truth + np.array([330.0, 5.0])  # the bystander's pose, to the right
    rng = np.random.default_rng(3)
    c = truth[None] + rng.normal(0, 1.0, (3, 3, K, 2))
    c[2, 1] = distractor[1] + rng.normal(0, 1.0, (K, 2))
    c[0, 2] = np.nan
    keep = align_by_boxes(boxes, present)
    for method in ("mean", "weighted", "robust"):
        kw = {"weights": [0.3, 0.3, 0.4]} if method == "weighted" else {}
        aligned = fuse_with_fallback(c, method, same_person=keep, **kw)
        plain = fuse_with_fallback(c, method, **kw)
        err_aligned = np.linalg.norm(aligned.coords[1] - truth[1], axis=-1).max()
        err_plain = np.linalg.norm(plain.coords[1] - truth[1], axis=-1).mean()
        assert err_aligned < 3.0, method
        if method != "robust":  # robust drops the far member by itself; mean and weighted don't
            assert err_plain > 90.0, method  # pulled a third of the way to the bystander
        if method == "mean":
            np.testing.assert_allclose(aligned.coords[1], c[:2, 1].mean(axis=0))
        assert aligned.other_person_per_model.tolist() == [0, 0, 1]
        assert aligned.fills_per_model.tolist() == [1, 0, 0]  # member 0 missed image 2
        assert plain.other_person_per_model is None
        if method != "robust":  # (robust's σ is over all images, so it moves a little)
            np.testing.assert_allclose(aligned.coords[[0, 2]], plain.coords[[0, 2]])


# ------------------------------------------------------------------ left/right consistency


def _mirrored_members(n=60, m=3, share=0.3, seed=7, sigma=2.0):
    """``m`` noisy members of the same poses; member 1 has left and right exchanged on ``share``
    of the frames (a back view taken for a front view)."""
    from motion_keypoints.meta import FLIP_INDEX

    rng = np.random.default_rng(seed)
    truth = poses(n, seed)
    members = truth[None] + rng.normal(0, sigma, (m, n, K, 2))
    frames = np.sort(rng.choice(n, size=int(share * n), replace=False))
    members[1, frames] = members[1, frames][:, list(FLIP_INDEX)]
    return truth, members, frames


@pytest.mark.parametrize("m", [2, 3, 4])
def test_left_right_alignment_undoes_a_member_mirrored_on_part_of_the_frames(m):
    from motion_keypoints.ensemble.fuse import align_left_right

    truth, members, frames = _mirrored_members(m=m)
    anchor = 0 if m == 2 else None  # two members: the median cannot decide, anchor on one
    aligned, swapped = align_left_right(members, anchor=anchor)
    assert np.nonzero(swapped[1])[0].tolist() == frames.tolist()
    assert swapped.sum() == len(frames)  # nobody else exchanged
    before = metrics.rmse(fuse(members, "mean"), truth)
    after = metrics.rmse(fuse(aligned, "mean"), truth)
    print(f"{m} members, member 1 mirrored on {len(frames)} of {len(truth)} frames: mean fusion "
          f"RMSE {before:.2f} px -> {after:.2f} px with left/right alignment")
    assert after < 0.5 * before


def test_left_right_alignment_leaves_consistent_members_and_missing_values_alone():
    from motion_keypoints.ensemble.fuse import align_left_right

    truth, members, _ = _mirrored_members(share=0.0)
    members[2, 5] = np.nan  # a member that detected nobody
    aligned, swapped = align_left_right(members)
    assert not swapped.any()
    np.testing.assert_array_equal(aligned, members)
    with pytest.raises(ValueError, match="permutation"):
        align_left_right(members, flip_index=[0] * K)
    with pytest.raises(ValueError, match="anchor"):
        align_left_right(members, anchor=5)


# --------------------------------------------- issue 18: the video's scores use the same fusion
def test_fuse_scores_is_the_mean_over_the_members_present():
    s = np.array([[[1.0, 2.0], [np.nan, np.nan]], [[3.0, np.nan], [np.nan, np.nan]],
                  [[np.nan, 6.0], [4.0, np.nan]]])  # (M=3, N=2, K=2)
    from motion_keypoints.ensemble.fuse import fuse_scores

    out = fuse_scores(s)
    np.testing.assert_array_equal(out[0], [2.0, 4.0])
    assert out[1, 0] == 4.0 and np.isnan(out[1, 1])
    # the coordinates of the same members fuse the same way (mean of those present)
    c = np.repeat(s[..., None], 2, axis=-1)
    np.testing.assert_array_equal(fuse(c, "mean")[..., 0], out)
    with pytest.raises(ValueError, match="members, images, keypoints"):
        fuse_scores(np.ones((2, 3)))
