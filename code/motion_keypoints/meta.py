"""Keypoint metadata of the motion-keypoint task, in one place (like MMPose's metainfo files).

Everything else in the kit derives counts, column names, flip maps and colours from here:
``len(KEYPOINT_NAMES)`` is the number of keypoints, never a literal.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

#: The keypoints in competition (CSV) order.
KEYPOINT_NAMES: Tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "neck",
    "left_palm",
    "right_palm",
    "spine2(back)",
    "spine1(waist)",
    "left_instep",
    "right_instep",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)

#: The COCO-17 keypoints in COCO's order (``COCO_17[i]`` is COCO keypoint i): an external fact,
#: written out. This task's first 17 keypoints are these, in this order (checked by
#: :func:`metadata_problems`), so COCO-pretrained keypoint heads and COCO tools map onto them.
COCO_17: Tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

#: How a keypoint that COCO lacks is initialised from a COCO-trained keypoint predictor (both
#: families: Keypoint R-CNN's ``ConvTranspose2d`` predictor and the heatmap head): the mean of the
#: channels (conv weights and bias) of these COCO keypoints, its anatomical neighbours. For a
#: linear heatmap head, the mean of two channels predicts the mean of their heatmaps (both peaks at
#: half height), a starting point that fine-tuning sharpens into the midpoint, far better than
#: random.
NEIGHBOUR_INIT: Dict[str, Tuple[str, ...]] = {
    "neck": ("left_shoulder", "right_shoulder"),  # between the shoulders
    "left_palm": ("left_wrist",),  # next to the wrist
    "right_palm": ("right_wrist",),
    "spine2(back)": ("left_shoulder", "right_shoulder", "left_hip", "right_hip"),  # mid torso
    "spine1(waist)": ("left_hip", "right_hip"),  # between the hips
    "left_instep": ("left_ankle",),  # next to the ankle
    "right_instep": ("right_ankle",),
}


def keypoint_transfer_plan(
    keypoint_names: Sequence[str] = (), source_names: Sequence[str] = COCO_17,
    neighbour_map: Dict[str, Sequence[str]] = NEIGHBOUR_INIT,
) -> List[Tuple[str, str, Tuple[int, ...]]]:
    """The 17 -> K transfer as a plan, per target keypoint ``(name, kind, source indices)``:
    ``copied`` (one index: the same keypoint in ``source_names``), ``neighbours`` (the mean of
    these indices, :data:`NEIGHBOUR_INIT`) or ``kept`` (no source: the target keeps its values).
    Pure data, so any tensor library applies it (:mod:`motion_keypoints.engine.transfer`)."""
    src = {n: i for i, n in enumerate(source_names)}
    plan = []
    for name in keypoint_names or KEYPOINT_NAMES:
        if name in src:
            plan.append((name, "copied", (src[name],)))
        elif name in neighbour_map and all(n in src for n in neighbour_map[name]):
            plan.append((name, "neighbours", tuple(src[n] for n in neighbour_map[name])))
        else:
            plan.append((name, "kept", ()))
    return plan


#: Left/right pairs, as names: detectron2's ``MetadataCatalog.keypoint_flip_map``.
FLIP_PAIRS: Tuple[Tuple[str, str], ...] = tuple(
    (f"left_{part}", f"right_{part}")
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle", "palm", "instep")
)

#: CSV columns after ``image``: ``NAME_x, NAME_y`` for every keypoint, in order.
COORD_COLUMNS: Tuple[str, ...] = tuple(f"{n}_{axis}" for n in KEYPOINT_NAMES for axis in ("x", "y"))
CSV_COLUMNS: Tuple[str, ...] = ("image",) + COORD_COLUMNS

# Colours are BGR (OpenCV). Left side warm, right side cool, centre line green, so a left/right
# swap is visible at a glance.
LEFT_COLOR = (0, 128, 255)
RIGHT_COLOR = (255, 128, 0)
CENTER_COLOR = (0, 200, 0)

#: Skeleton for drawing: (keypoint a, keypoint b, BGR colour).
SKELETON: Tuple[Tuple[str, str, Tuple[int, int, int]], ...] = (
    ("nose", "left_eye", LEFT_COLOR),
    ("nose", "right_eye", RIGHT_COLOR),
    ("left_eye", "left_ear", LEFT_COLOR),
    ("right_eye", "right_ear", RIGHT_COLOR),
    ("nose", "neck", CENTER_COLOR),
    ("neck", "left_shoulder", LEFT_COLOR),
    ("neck", "right_shoulder", RIGHT_COLOR),
    ("left_shoulder", "left_elbow", LEFT_COLOR),
    ("right_shoulder", "right_elbow", RIGHT_COLOR),
    ("left_elbow", "left_wrist", LEFT_COLOR),
    ("right_elbow", "right_wrist", RIGHT_COLOR),
    ("left_wrist", "left_palm", LEFT_COLOR),
    ("right_wrist", "right_palm", RIGHT_COLOR),
    ("neck", "spine2(back)", CENTER_COLOR),
    ("spine2(back)", "spine1(waist)", CENTER_COLOR),
    ("spine1(waist)", "left_hip", LEFT_COLOR),
    ("spine1(waist)", "right_hip", RIGHT_COLOR),
    ("left_hip", "left_knee", LEFT_COLOR),
    ("right_hip", "right_knee", RIGHT_COLOR),
    ("left_knee", "left_ankle", LEFT_COLOR),
    ("right_knee", "right_ankle", RIGHT_COLOR),
    ("left_ankle", "left_instep", LEFT_COLOR),
    ("right_ankle", "right_instep", RIGHT_COLOR),
)

#: OKS sigmas for COCO-style keypoint AP. 1.0 each by default (the reference found no difference
#: from COCO-like values); override with ``TEST.KEYPOINT_OKS_SIGMAS`` in a config.
DEFAULT_OKS_SIGMAS: List[float] = [1.0] * NUM_KEYPOINTS


def keypoint_index(name: str) -> int:
    """Index of a keypoint name; the error lists the valid names."""
    try:
        return KEYPOINT_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown keypoint {name!r}; known: {', '.join(KEYPOINT_NAMES)}") from None


def flip_permutation(names: Sequence[str] = KEYPOINT_NAMES, pairs=FLIP_PAIRS) -> List[int]:
    """Index permutation that swaps left/right: ``flipped[i] = original[perm[i]]``."""
    perm = list(range(len(names)))
    for a, b in pairs:
        ia, ib = names.index(a), names.index(b)
        perm[ia], perm[ib] = ib, ia
    return perm


#: ``FLIP_INDEX[i]`` is the index of keypoint i's mirror partner (itself on the centre line).
FLIP_INDEX: Tuple[int, ...] = tuple(flip_permutation())


def skeleton_indices() -> List[Tuple[int, int, Tuple[int, int, int]]]:
    """The skeleton as index pairs with colours."""
    return [(keypoint_index(a), keypoint_index(b), c) for a, b, c in SKELETON]


def metadata_problems(
    names: Sequence[str] = KEYPOINT_NAMES,
    pairs: Sequence[Tuple[str, str]] = FLIP_PAIRS,
    skeleton=SKELETON,
    sigmas: Sequence[float] = DEFAULT_OKS_SIGMAS,
) -> List[str]:
    """Consistency problems of a keypoint definition (empty list when consistent)."""
    problems: List[str] = []
    if len(set(names)) != len(names):
        problems.append("keypoint names are not unique")
    if tuple(names[: len(COCO_17)]) != COCO_17:
        problems.append("the first keypoints must be COCO's 17 in COCO order (COCO_17): "
                        "COCO-pretrained heads are transferred by position")
    if len(sigmas) != len(names):
        problems.append(
            f"{len(sigmas)} OKS sigmas for {len(names)} keypoints: give one sigma per keypoint"
        )
    if any(not float(s) > 0 for s in sigmas):
        problems.append("OKS sigmas must be positive numbers")
    seen: Dict[str, str] = {}
    for a, b in pairs:
        for n in (a, b):
            if n not in names:
                problems.append(f"flip pair ({a}, {b}) names unknown keypoint {n!r}")
            if n in seen:
                problems.append(f"keypoint {n!r} appears in two flip pairs")
            seen[n] = a
        if a == b:
            problems.append(f"flip pair ({a}, {b}) pairs a keypoint with itself")
    for a, b, colour in skeleton:
        for n in (a, b):
            if n not in names:
                problems.append(f"skeleton edge ({a}, {b}) names unknown keypoint {n!r}")
        if len(colour) != 3:
            problems.append(f"skeleton edge ({a}, {b}) colour must be 3 values (BGR)")
    return problems


def check_metadata(**kwargs) -> None:
    """Raise ValueError listing every inconsistency of a keypoint definition."""
    problems = metadata_problems(**kwargs)
    if problems:
        raise ValueError("inconsistent keypoint metadata:\n  " + "\n  ".join(problems))


def detectron2_metadata() -> dict:
    """Keyword arguments for ``MetadataCatalog.get(name).set(...)``."""
    return {
        "thing_classes": ["person"],
        "keypoint_names": list(KEYPOINT_NAMES),
        "keypoint_flip_map": [tuple(p) for p in FLIP_PAIRS],
        "keypoint_connection_rules": [(a, b, tuple(c[::-1])) for a, b, c in SKELETON],
    }
