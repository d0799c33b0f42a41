import pytest

from motion_keypoints import keypoints as K


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
    assert len(K.FLIP_PAIRS) == 10


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
