"""The audit's outputs: one picture per flagged image (the keypoints of each finding ringed and
named), ``audit.csv`` (ranked findings) and ``suggested_overrides.csv`` (the fixes of swaps, in
the ``label_overrides.csv`` format), and the text summary."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Sequence, Tuple

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from ..io.outputs import remove_output
from ..io.tables import OVERRIDE_COLUMNS, keypoints_array
from ..meta import KEYPOINT_NAMES
from ..utils import PathLike, atomic_path
from ..visualize import draw_keypoints
from .audit import AuditReport, Finding
from .layout import DataPaths, load_train_df

PICTURE_WIDTH = (640, 960)  # pictures are scaled to a width in this range
HIGHLIGHT = (0, 0, 255)  # BGR red
_PICTURE_NAME = re.compile(r"\d{3,}_.*\.jpg")


def draw_findings(image: np.ndarray, keypoints, findings: Sequence[Finding],
                  width: Tuple[int, int] = PICTURE_WIDTH) -> np.ndarray:
    """The image, scaled to a width within ``width`` (min, max), with the pose drawn, the
    keypoints of ``findings`` ringed in red and named, and one caption line per finding."""
    kps = np.asarray(keypoints, np.float64)
    scale = float(np.clip(image.shape[1], *width)) / image.shape[1]
    if scale != 1.0:
        size = (round(image.shape[1] * scale), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else
                           cv2.INTER_LINEAR)
    kps = kps * scale
    out = draw_keypoints(image, kps)
    unit = max(out.shape[:2]) / 640.0
    radius, thick = max(5, round(9 * unit)), max(1, round(2 * unit))
    font, fscale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, 0.45 * unit)
    named = {n for f in findings for n in f.keypoints if f.kind != "collapsed"}
    centre = float(np.median(kps[:, 0]))
    for name in sorted(named):
        x, y = (int(v) for v in np.clip(kps[KEYPOINT_NAMES.index(name)], -1e5, 1e5).round())
        cv2.circle(out, (x, y), radius, HIGHLIGHT, thick, cv2.LINE_AA)
        text_w = cv2.getTextSize(name, font, fscale, thick)[0][0]
        left = x < centre  # name on the outer side, so a pair's names do not overlap
        org = (x - radius - text_w if left else x + radius, y - radius)
        cv2.putText(out, name, org, font, fscale, HIGHLIGHT, thick, cv2.LINE_AA)
    captions = [f"{f.kind} {f.score:.1f}: {', '.join(f.keypoints[:4])}" for f in findings]
    (_, h), base = cv2.getTextSize("Ag", font, fscale, 1)
    strip = np.zeros(((h + base + 4) * len(captions) + 4, out.shape[1], 3), np.uint8)
    for r, text in enumerate(captions):
        cv2.putText(strip, text, (4, 4 + (h + base + 4) * r + h), font, fscale, (255, 255, 255),
                    1, cv2.LINE_AA)
    return np.vstack([strip, out])


def write_audit(report: AuditReport, out_dir: PathLike, image_dir: PathLike | None = None,
                keypoints: Dict[str, np.ndarray] | None = None,
                progress: bool = True) -> Dict[str, Path]:
    """Write ``audit.csv`` (ranked findings), ``suggested_overrides.csv`` (the fixes of swaps,
    in the ``label_overrides.csv`` format: review them, then copy the rows there) and one
    picture per flagged image in ``pictures/`` (stale pictures of earlier runs removed).

    ``image_dir`` and ``keypoints`` (image -> ``(K, 2)``) default to the report's data root's
    training images and labels (overrides applied). Returns the paths written."""
    out = Path(out_dir)
    flagged = report.flagged_images()
    if report.data_root is not None:
        paths = DataPaths.from_root(report.data_root)
        image_dir = paths.train_images if image_dir is None else image_dir
        if keypoints is None and flagged:
            df = load_train_df(report.data_root)
            keypoints = dict(zip(df["image"], keypoints_array(df)))
    if flagged and (image_dir is None or keypoints is None):
        raise ValueError("write_audit needs image_dir and keypoints for a report without data_root")
    pictures = out / "pictures"
    names: Dict[str, str] = {}
    for rank, image in enumerate(tqdm(flagged, desc="audit pictures", unit="img",
                                      disable=not progress or len(flagged) < 20), 1):
        path = Path(image_dir) / image
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{path}: image missing or unreadable (needed for the audit "
                                    "picture); run check_data.py first")
        mine = [f for f in report.findings if f.image == image]
        name = f"{rank:03d}_{Path(image).stem}.jpg"
        with atomic_path(pictures / name, kind="audit picture") as tmp:
            if not cv2.imwrite(str(tmp), draw_findings(img, keypoints[image], mine)):
                raise OSError(f"could not write {pictures / name}")
        names[image] = name
    if pictures.is_dir():
        for stale in pictures.iterdir():
            if _PICTURE_NAME.fullmatch(stale.name) and stale.name not in names.values():
                remove_output(stale)
    frame = report.to_frame()
    frame["picture"] = [f"pictures/{names[n]}" for n in frame["image"]]
    with atomic_path(out / "audit.csv", kind="audit") as tmp:
        frame.to_csv(tmp, index=False)
    fixes = [(f.image, k, x, y) for f in report.findings for k, x, y in f.fix]
    with atomic_path(out / "suggested_overrides.csv", kind="suggested overrides") as tmp:
        pd.DataFrame(fixes, columns=list(OVERRIDE_COLUMNS)).to_csv(tmp, index=False)
    return {"csv": out / "audit.csv", "overrides": out / "suggested_overrides.csv",
            "pictures": pictures}


def format_findings(report: AuditReport, top: int = 20) -> str:
    """The summary line and the ``top`` findings, one line each."""
    lines = [report.summary()]
    for rank, f in enumerate(report.findings[:top], 1):
        where = f"line {f.line}" if f.line is not None else "line ?"
        lines.append(f"{rank:4d}. {f.image} ({where}) {f.kind} [{f.score:.2f}]: {f.message}")
    if len(report.findings) > top:
        lines.append(f"... and {len(report.findings) - top} more (all in audit.csv)")
    return "\n".join(lines)
