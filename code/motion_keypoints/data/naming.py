"""Image names: clip, camera and frame of competition-style names.

Competition frames are named ``001-1-1-01-Z17_A-0000001.jpg``: clip ``001-1-1-01-Z17``, camera
``A``, frame ``0000001``. Frames of one clip seen by one camera are near-identical neighbours, so
the validation split (:mod:`.split`) keeps each ``<clip>_<camera>`` group on one side. The
synthetic data (:mod:`.synthetic`) writes names of the same form (:func:`frame_name`).
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List

#: Cameras of the synthetic clips.
CAMERAS = "ABCDE"
#: Names the synthetic writer makes: ``{clip:03d}-1-1-01-Z17_{camera}-{frame:07d}.jpg``.
NAME_PATTERN = re.compile(r"(?P<clip>\d{3,}-1-1-01-Z17)_(?P<camera>[A-E])-(?P<frame>\d{7})\.jpg")


def frame_name(clip: int, camera: str, frame: int) -> str:
    """A competition-style frame name (see :data:`NAME_PATTERN`)."""
    return f"{clip:03d}-1-1-01-Z17_{camera}-{frame:07d}.jpg"


#: ``<clip>_<camera>-<frame>.<ext>``; the group of a matching name is ``<clip>_<camera>``.
GROUP_PATTERN = re.compile(r"^(?P<clip>.+)_(?P<camera>[A-Za-z0-9]+)-(?P<frame>\d+)\.\w+$")
GROUP_RULE = (
    f"names matching {GROUP_PATTERN.pattern} are grouped by '<clip>_<camera>'; "
    "any other name is its own group"
)


def group_key(image_name: str) -> str:
    """``<clip>_<camera>`` for a competition-style frame name, else the name itself."""
    match = GROUP_PATTERN.match(image_name)
    if match is None:
        return image_name
    return f"{match['clip']}_{match['camera']}"


def group_images(images: Iterable[str]) -> Dict[str, List[str]]:
    """``{group: sorted images}`` with groups in sorted order."""
    groups: Dict[str, List[str]] = {}
    for name in sorted(images):
        groups.setdefault(group_key(name), []).append(name)
    return dict(sorted(groups.items()))
