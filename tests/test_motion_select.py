"""Choosing the right person among several detections (motion_keypoints.motion.select)."""

import numpy as np
import pytest

from motion_keypoints.motion.select import (
    RULES,
    align_members,
    continuity,
    select_person,
    select_track,
)

try:
    from motion_keypoints.meta import KEYPOINT_NAMES
except ImportError:  # pragma: no cover - older package layout
    from motion_keypoints.keypoints import KEYPOINT_NAMES

K = len(KEYPOINT_NAMES)
WIDTH, HEIGHT = 1280, 720
N_FRAMES = 40
#: Frames where the bystander's detection scores higher than the main person's.
HIGH_SCORE_FRAMES = (5, 6, 17, 29)
#: Frames where the bystander walks close to the camera: larger box than the main person's.
CLOSE_FRAMES = (22, 23)


def person(cx, cy, w, h, score, rng, template=None):
    """An instance; ``template`` (K, 2) in box units keeps the pose of one person across frames."""
    if template is None:
        template = rng.uniform(-0.4, 0.4, size=(K, 2))
    pose = (template + rng.normal(0, 0.01, size=(K, 2))) * (w, h)
    kps = np.concatenate([pose + (cx, cy), np.full((K, 1), score)], axis=1)
    return {"box": (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), "score": score,
            "keypoints": kps}


def scene(seed=0):
    """Per frame a shuffled list [main, bystander] and the index of the main person.

    The main person is large, centred and moves smoothly; the bystander is smaller and
    off-centre, scores higher on HIGH_SCORE_FRAMES and comes closer (bigger) on CLOSE_FRAMES."""
    rng = np.random.default_rng(seed)
    main_pose, other_pose = rng.uniform(-0.4, 0.4, size=(2, K, 2))
    frames, truth = [], []
    for f in range(N_FRAMES):
        main = person(WIDTH / 2 + 40 * np.sin(f / 8), HEIGHT / 2 + 10 * np.sin(f / 5), 260, 560,
                      0.90 + 0.05 * rng.random(), rng, main_pose)
        scale = 2.4 if f in CLOSE_FRAMES else 1.0
        score = 0.99 if f in HIGH_SCORE_FRAMES + CLOSE_FRAMES else 0.70 + 0.1 * rng.random()
        other = person(180 + 3 * f, 420, 120 * scale, 260 * scale, score, rng, other_pose)
        order = rng.permutation(2)
        instances = [[main, other][i] for i in order]
        frames.append(instances)
        truth.append(int(np.flatnonzero(order == 0)[0]))
    return frames, truth


def wrong_rate(chosen, truth):
    return float(np.mean([c != t for c, t in zip(chosen, truth)]))


def test_wrong_person_rate_per_rule():
    frames, truth = scene()
    rates = {rule: wrong_rate(select_track(frames, rule, WIDTH, HEIGHT), truth) for rule in RULES}
    print("wrong-person rate: " + ", ".join(f"{r} {v:.3f}" for r, v in rates.items()))
    assert rates["score"] == pytest.approx(len(HIGH_SCORE_FRAMES + CLOSE_FRAMES) / N_FRAMES)
    assert rates["area"] == pytest.approx(len(CLOSE_FRAMES) / N_FRAMES)
    assert rates["center"] == 0.0
    assert rates["track"] == 0.0
    assert rates["track"] <= rates["score"]
    # without the continuity term the track falls back to score x area and fails near the camera
    no_continuity = select_track(frames, "track", continuity_weight=0.0)
    assert wrong_rate(no_continuity, truth) == pytest.approx(len(CLOSE_FRAMES) / N_FRAMES)


def test_track_follows_the_main_person_where_per_frame_rules_fail():
    frames, truth = scene(seed=3)
    chosen = select_track(frames, "track")
    by_score = select_track(frames, "score")
    for f in HIGH_SCORE_FRAMES:
        assert by_score[f] != truth[f] and chosen[f] == truth[f]
    # a sequence starting on a high-score frame of the bystander still settles on the main person
    assert select_track(frames[5:12], "track") == truth[5:12]


def test_track_skips_empty_frames_and_handles_one_instance():
    frames, truth = scene(seed=1)
    frames[10] = []
    frames[11] = [frames[11][truth[11]]]
    chosen = select_track(frames, "track")
    assert chosen[10] is None and chosen[11] == 0
    assert all(c == t for i, (c, t) in enumerate(zip(chosen, truth)) if i not in (10, 11))
    assert select_track([[], []], "track") == [None, None]


def test_select_person_single_frame_rules():
    rng = np.random.default_rng(0)
    big = person(300, 300, 200, 400, 0.6, rng)
    central = person(WIDTH / 2, HEIGHT / 2, 100, 200, 0.7, rng)
    confident = person(1100, 200, 80, 160, 0.95, rng)
    inst = [big, central, confident]
    assert select_person(inst, "score") == 2
    assert select_person(inst, "area") == 0
    assert select_person(inst, "center", WIDTH, HEIGHT) == 1
    assert select_person([], "score") is None
    with pytest.raises(ValueError, match="width and height"):
        select_person(inst, "center")
    with pytest.raises(ValueError, match="select_track"):
        select_person(inst, "track")
    with pytest.raises(ValueError, match="unknown selection rule"):
        select_person(inst, "tallest")


def test_continuity_prefers_the_same_person():
    frames, truth = scene()
    a, b = frames[0][truth[0]], frames[1][truth[1]]
    other = frames[1][1 - truth[1]]
    assert continuity(a, b) > 0.5 > continuity(a, other)
    no_kps = {"box": a["box"], "score": 1.0}
    assert continuity(no_kps, no_kps) == pytest.approx(1.0)


def test_align_members_on_the_reference_person():
    frames, truth = scene()
    reference = frames[3][truth[3]]["box"]
    rng = np.random.default_rng(7)
    members, expected = [], []
    for _ in range(3):  # members list the people in different orders, boxes a little off
        order = rng.permutation(2)
        inst = []
        for i in order:
            src = frames[3][i]
            inst.append({**src, "box": np.asarray(src["box"]) + rng.normal(0, 5, 4)})
        members.append(inst)
        expected.append(int(np.flatnonzero(order == truth[3])[0]))
    members.append([frames[3][1 - truth[3]]])  # a member that only found the bystander
    members.append([])
    assert align_members(members, reference) == expected + [None, None]
    assert align_members(members, reference, min_iou=0.0)[3] == 0


# ------------------------------------------------- the "no person here" state (missed frames)
#: Frames where the detector misses the main person: only the bystander is detected.
MISSED_FRAMES = (12, 31, 47)


def confused_scene(seed, missed=MISSED_FRAMES, n=60):
    """Like :func:`scene`, with a detector whose scores do not tell the two apart (both uniform
    in 0.5-1), a bystander of ~60% the main person's box area, and the main person missed on
    ``missed`` frames (truth None there)."""
    rng = np.random.default_rng(seed)
    main_pose, other_pose = rng.uniform(-0.4, 0.4, size=(2, K, 2))
    frames, truth = [], []
    for f in range(n):
        main = person(WIDTH / 2 + 40 * np.sin(f / 8), HEIGHT / 2, 230, 480, rng.uniform(0.5, 1),
                      rng, main_pose)
        other = person(250 + 3 * f, 400, 180, 380, rng.uniform(0.5, 1), rng, other_pose)
        if f in missed:
            frames.append([other])
            truth.append(None)
            continue
        order = rng.permutation(2)
        frames.append([[main, other][i] for i in order])
        truth.append(int(np.flatnonzero(order == 0)[0]))
    return frames, truth


def wrong_where_present(chosen, truth):
    """Wrong picks over the frames where the main person was detected (None there is wrong)."""
    return sum(c != t for c, t in zip(chosen, truth) if t is not None)


def test_a_missed_main_person_gives_none_and_does_not_pull_the_track():
    seeds = range(12)
    old_wrong = 0
    for seed in seeds:
        frames, truth = confused_scene(seed)
        chosen = select_track(frames, "track")
        assert wrong_where_present(chosen, truth) == 0, seed
        assert [chosen[f] for f in MISSED_FRAMES] == [None] * len(MISSED_FRAMES)
        # without the state the lone bystander must be taken, and it pulls the track along
        old = select_track(frames, "track", miss_penalty=None)
        assert all(old[f] == 0 for f in MISSED_FRAMES)
        old_wrong += wrong_where_present(old, truth)
    assert old_wrong > 0


def test_no_missed_frames_no_none_and_no_regression():
    for seed in range(6):
        frames, truth = confused_scene(seed, missed=())
        chosen = select_track(frames, "track")
        assert None not in chosen and chosen == truth, seed
    frames, truth = scene(seed=2)
    assert select_track(frames, "track") == truth
    # a lone detection that continues the track is the person, not a miss
    frames, truth = scene(seed=4)
    frames[20] = [frames[20][truth[20]]]
    chosen = select_track(frames, "track")
    assert chosen[20] == 0 and None not in chosen


def test_a_long_absence_follows_the_bystander_then_the_main_person_again():
    absent = range(20, 45)
    frames, truth = confused_scene(0, missed=tuple(absent))
    chosen = select_track(frames, "track")
    assert wrong_where_present(chosen, truth) == 0  # the main person again when back
    # the bystander alone for 25 frames is followed (the documented limit), not 25 Nones
    assert all(chosen[f] == 0 for f in absent)
