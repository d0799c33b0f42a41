import pytest

from motion_keypoints import meta as K


def test_shipped_metadata_is_consistent():
    assert K.metadata_problems() == []
    assert len(K.COORD_COLUMNS) == 2 * len(K.KEYPOINT_NAMES)
    assert K.CSV_COLUMNS[0] == "image"
    assert len(K.DEFAULT_OKS_SIGMAS) == len(K.KEYPOINT_NAMES)
    assert all(isinstance(s, float) for s in K.DEFAULT_OKS_SIGMAS)


def test_flip_index_is_an_involution_that_swaps_pairs():
    perm = K.FLIP_INDEX
    assert sorted(perm) == list(range(len(K.KEYPOINT_NAMES)))
    assert all(perm[perm[i]] == i for i in range(len(perm)))
    for a, b in K.FLIP_PAIRS:
        assert perm[K.keypoint_index(a)] == K.keypoint_index(b)
    centre = [n for n in K.KEYPOINT_NAMES if not n.startswith(("left_", "right_"))]
    assert all(perm[K.keypoint_index(n)] == K.keypoint_index(n) for n in centre)
    # every left_X has its right_X partner in a pair: a keypoint added on one side only fails
    sided = [n for n in K.KEYPOINT_NAMES if n.startswith(("left_", "right_"))]
    paired = {n for pair in K.FLIP_PAIRS for n in pair}
    assert set(sided) == paired


def test_flip_index_on_a_known_pose():
    """Hand-written expectations, not the formula: nose stays, eyes and ears swap."""
    perm = K.FLIP_INDEX
    assert perm[0] == 0  # nose
    assert (perm[1], perm[2], perm[3], perm[4]) == (2, 1, 4, 3)  # eyes, ears
    assert perm[17] == 17 and perm[20] == 20 and perm[21] == 21  # neck, spine2, spine1
    assert (perm[22], perm[23]) == (23, 22)  # insteps


def test_coco17_correspondence():
    coco = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
            "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
            "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
    assert K.COCO_17 == coco
    assert K.KEYPOINT_NAMES[:17] == coco


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"sigmas": [1.0] * 3}, "3 OKS sigmas"),
        ({"pairs": (("left_eye", "right_toe"),)}, "unknown keypoint 'right_toe'"),
        ({"pairs": (("left_eye", "right_eye"), ("left_eye", "nose"))}, "appears in two flip pairs"),
        ({"skeleton": (("nose", "tail", (0, 0, 0)),)}, "unknown keypoint 'tail'"),
    ],
)
def test_inconsistent_metadata_is_named(kwargs, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        K.check_metadata(**kwargs)


def test_detectron2_metadata_flip_map_names_real_keypoints():
    md = K.detectron2_metadata()
    names = set(md["keypoint_names"])
    assert all(a in names and b in names for a, b in md["keypoint_flip_map"])
    with pytest.raises(KeyError, match="known: nose"):
        K.keypoint_index("tail")


def test_metadata_requires_cocos_17_first_in_coco_order():
    from motion_keypoints.meta import COCO_17, KEYPOINT_NAMES, metadata_problems

    assert tuple(KEYPOINT_NAMES[: len(COCO_17)]) == COCO_17
    swapped = list(KEYPOINT_NAMES)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    assert any("COCO" in p for p in metadata_problems(names=swapped))
