"""Pictures of predictions: the skeleton drawn in colour (left warm, right cool, centre green, the
colours of :data:`meta.SKELETON`) and grids of random samples.

Keypoints are drawn where they are in the kit's pixel convention (:mod:`.geometry`): a keypoint
``(x, y)`` marks the centre of pixel column ``x``, row ``y``; fractions are kept (OpenCV's
sub-pixel ``shift``), and resizing a picture moves them with :func:`.geometry.scale_points`.
Boxes (continuous coordinates, detectron2's) are converted with :func:`.geometry.from_continuous`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from .geometry import from_continuous, scale_points
from .io.images import read_image
from .meta import CENTER_COLOR, KEYPOINT_NAMES, LEFT_COLOR, RIGHT_COLOR, skeleton_indices
from .utils import PathLike, atomic_path

Color = Tuple[int, int, int]
_LIMIT = 1e5  # pixel coordinates are clipped to this before drawing (OpenCV needs int32)
_SHIFT = 4  # fractional bits of the drawing coordinates (1/16 px)


def keypoint_colors(names: Sequence[str] = KEYPOINT_NAMES) -> List[Color]:
    """BGR colour of each keypoint: left side, right side or centre line."""
    return [
        LEFT_COLOR if n.startswith("left_") else RIGHT_COLOR if n.startswith("right_") else CENTER_COLOR
        for n in names
    ]


def _point(xy) -> Tuple[int, int]:
    """A pixel-index point as OpenCV drawing coordinates with ``_SHIFT`` fractional bits (OpenCV
    draws integer ``(x, y)`` centred on pixel column ``x``, row ``y``: the kit's convention)."""
    x, y = np.clip(np.asarray(xy, float), -_LIMIT, _LIMIT) * (1 << _SHIFT)
    return round(float(x)), round(float(y))


def draw_keypoints(
    image: np.ndarray,
    keypoints,
    *,
    box=None,
    radius: int | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """A copy of a BGR image with one pose drawn: skeleton edges and keypoint dots in their side's
    colour. ``keypoints`` is ``(K, 2)`` in pixels; NaN keypoints (and edges touching them) are not
    drawn. ``box`` (x1, y1, x2, y2; continuous coordinates, as
    in the predictions) is drawn in white when given. Sizes scale with the image.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    kps = np.asarray(keypoints, dtype=float)
    if kps.shape != (len(KEYPOINT_NAMES), 2):
        raise ValueError(f"keypoints have shape {kps.shape}; expected ({len(KEYPOINT_NAMES)}, 2)")
    scale = max(out.shape[:2]) / 640.0
    thickness = thickness or max(1, round(2 * scale))
    radius = radius or max(2, round(3 * scale))
    ok = np.isfinite(kps).all(axis=1)
    if box is not None and np.isfinite(np.asarray(box, float)[:4]).all():
        corners = from_continuous(np.asarray(box, float)[:4].reshape(2, 2))
        cv2.rectangle(out, _point(corners[0]), _point(corners[1]), (255, 255, 255),
                      max(1, thickness // 2), cv2.LINE_8, _SHIFT)
    for a, b, color in skeleton_indices():
        if ok[a] and ok[b]:
            cv2.line(out, _point(kps[a]), _point(kps[b]), color, thickness, cv2.LINE_AA, _SHIFT)
    r = 1 << _SHIFT
    for i, color in enumerate(keypoint_colors()):
        if ok[i]:
            p = _point(kps[i])
            cv2.circle(out, p, (radius + 1) * r, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, p, radius * r, color, -1, cv2.LINE_AA, _SHIFT)
    return out


def _label(img: np.ndarray, text: str, origin=(4, 4)) -> None:
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    x, y = origin
    cv2.rectangle(img, (x - 2, y - 2), (x + w + 2, y + h + base + 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y + h), font, scale, (255, 255, 255), thick, cv2.LINE_AA)


def save_samples(
    image_dir: PathLike,
    images: Sequence[str],
    coords,
    out_path: PathLike,
    *,
    n: int = 8,
    seed: int = 0,
    cols: int = 4,
    tile_width: int = 400,
    boxes=None,
    title: str | None = None,
) -> Path:
    """Write (atomically) a grid of ``n`` random images of ``images`` with their predicted poses.

    ``coords`` is ``(N, K, 2)`` aligned with ``images``; ``boxes`` optionally ``(N, 4)``. The
    choice depends only on ``seed`` and the image list, so grids of several models on the same
    images show the same pictures. Images without a prediction are labelled "no detection".
    """
    coords = np.asarray(coords, dtype=float)
    if len(images) == 0 or n <= 0:
        raise ValueError("save_samples needs at least one image and n >= 1")
    if coords.shape[0] != len(images):
        raise ValueError(f"{coords.shape[0]} predictions for {len(images)} images")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(images), size=min(n, len(images)), replace=False))
    tiles = []
    for i in chosen:
        path = Path(image_dir) / images[i]
        img = read_image(path)
        h, w = img.shape[:2]
        size = (tile_width, max(1, round(h * tile_width / w)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        sx, sy = size[0] / w, size[1] / h
        # continuous box coordinates scale as they are; keypoints keep pixel areas aligned
        box = None if boxes is None else np.asarray(boxes[i], float)[:4] * [sx, sy, sx, sy]
        tile = draw_keypoints(img, scale_points(coords[i], sx, sy), box=box, thickness=2, radius=3)
        missing = not np.isfinite(coords[i]).any()
        _label(tile, f"{images[i]}" + ("  (no detection)" if missing else ""))
        tiles.append(tile)
    cols = max(1, min(cols, len(tiles)))
    height = max(t.shape[0] for t in tiles)
    blank = np.zeros((height, tile_width, 3), np.uint8)
    tiles = [np.vstack([t, blank[: height - t.shape[0]]]) for t in tiles]
    tiles += [blank] * (-len(tiles) % cols)
    grid = np.vstack([np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)])
    if title:
        strip = np.zeros((26, grid.shape[1], 3), np.uint8)
        _label(strip, title, origin=(6, 5))
        grid = np.vstack([strip, grid])
    out_path = Path(out_path)
    with atomic_path(out_path, kind="picture") as tmp:
        if not cv2.imwrite(str(tmp), grid):
            raise OSError(f"could not write {out_path} (unsupported extension?)")
    return out_path


# --------------------------------------------------------------------------- error picture


@dataclass
class ErrorReport:
    """What the error picture shows: per-keypoint RMSE ``(K,)`` and per-camera RMSE of each
    predictor (members, the fusion, the mean pose), and the ``worst`` images of the fusion
    (path, name, truth ``(K, 2)``, prediction ``(K, 2)``, RMSE)."""

    title: str
    per_keypoint: Dict[str, np.ndarray]
    per_camera: Dict[str, Dict[str, float]]
    worst: List[Tuple[Path, str, np.ndarray, np.ndarray, float]] = field(default_factory=list)

    @classmethod
    def from_arrays(cls, title: str, images: Sequence[str], truth, preds: Dict[str, np.ndarray],
                    fused=None, image_dir: PathLike | None = None, worst: int = 4) -> ErrorReport:
        """Scores of each of ``preds`` ``{label: (N, K, 2)}`` against ``truth``; the worst
        images are those of ``fused`` (default: the first prediction) with the highest RMSE."""
        from .data.split import camera_of
        from .evaluation import metrics

        truth = np.asarray(truth, float)
        cams = [camera_of(i) for i in images]
        per_kp = {lab: np.array(list(metrics.per_keypoint_rmse(p, truth).values()))
                  for lab, p in preds.items()}
        per_cam = {lab: metrics.group_rmse(p, truth, cams) for lab, p in preds.items()}
        fused = next(iter(preds.values())) if fused is None else np.asarray(fused, float)
        rows = []
        if image_dir is not None and worst > 0:
            err = metrics.per_image_rmse(fused, truth)
            for i in np.argsort(-err, kind="stable")[:worst]:
                rows.append((Path(image_dir) / images[i], images[i], truth[i], fused[i],
                             float(err[i])))
        return cls(title, per_kp, per_cam, rows)


def _error_tile(path: Path, name: str, truth, pred, err: float, width: int = 360) -> np.ndarray:
    """One worst image: truth as white rings, the prediction's skeleton in its side colours, a
    red line from each true keypoint to its prediction."""
    img = read_image(path)
    h, w = img.shape[:2]
    size = (width, max(1, round(h * width / w)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / w, size[1] / h
    t, p = scale_points(np.asarray(truth, float), sx, sy), scale_points(np.asarray(pred, float), sx, sy)
    out = draw_keypoints(img, p, thickness=2, radius=3)
    for a, b in zip(t, p):
        if np.isfinite(a).all() and np.isfinite(b).all():
            cv2.line(out, _point(a), _point(b), (0, 0, 255), 1, cv2.LINE_AA, _SHIFT)
            cv2.circle(out, _point(a), 4 << _SHIFT, (255, 255, 255), 1, cv2.LINE_AA, _SHIFT)
    _label(out, f"{name}  RMSE {err:.1f} px")
    return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)


def _bars(ax, groups: Sequence[str], series: Dict[str, Sequence[float]], title: str) -> None:
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for j, (lab, vals) in enumerate(series.items()):
        ax.bar(x + (j - (n - 1) / 2) * width, vals, width, label=lab)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=60 if len(groups) > 6 else 0, ha="right", fontsize=7)
    ax.set_ylabel("RMSE (px)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=min(4, n))


def error_figure(report: ErrorReport):
    """The matplotlib figure of ``report``: per-keypoint bars, per-camera bars, worst images."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    cols = max(1, len(report.worst))
    width = max(12, 3.2 * cols)
    tiles = [_error_tile(path, name, truth, pred, err)
             for path, name, truth, pred, err in report.worst]
    # the row of worst images is as tall as its tiles at their width (plus their titles), so no
    # empty band is left above or below them; no row at all without images
    heights = [4.7, 3.9] + ([width / cols * tiles[0].shape[0] / tiles[0].shape[1] + 0.4]
                            if tiles else [])
    fig = Figure(figsize=(width, sum(heights) + 0.5), dpi=90)
    grid = fig.add_gridspec(len(heights), cols, height_ratios=heights)
    _bars(fig.add_subplot(grid[0, :]), list(KEYPOINT_NAMES), report.per_keypoint,
          f"{report.title}: RMSE per keypoint")
    cams = sorted({c for d in report.per_camera.values() for c in d})
    _bars(fig.add_subplot(grid[1, :]), [f"camera {c}" for c in cams],
          {lab: [d.get(c, np.nan) for c in cams] for lab, d in report.per_camera.items()},
          "RMSE per camera")
    for j, tile in enumerate(tiles):
        ax = fig.add_subplot(grid[2, j])
        ax.imshow(tile)
        ax.set_axis_off()
        ax.set_title(f"worst {j + 1}: truth (rings), prediction (skeleton)", fontsize=8)
    fig.tight_layout()
    return fig


def save_error_report(report: ErrorReport, png_path: PathLike,
                      html_path: PathLike | None = None) -> List[Path]:
    """Write the error picture (PNG) and, with ``html_path``, one self-contained HTML page with
    the same picture (embedded) and the numbers as tables; through the kit's write path."""
    import base64
    import io

    fig = error_figure(report)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    png_path = Path(png_path)
    with atomic_path(png_path, kind="picture") as tmp:  # the kind re-runs recognise
        tmp.write_bytes(data)
    written = [png_path]
    if html_path is not None:
        html_path = Path(html_path)
        page = _html_page(report, base64.b64encode(data).decode("ascii"))
        with atomic_path(html_path, kind="picture page") as tmp:
            tmp.write_text(page)
        written.append(html_path)
    return written


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    import html

    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_page(report: ErrorReport, png_b64: str) -> str:
    import html

    labels = list(report.per_keypoint)
    kp_rows = [[n] + [float(report.per_keypoint[lab][i]) for lab in labels]
               for i, n in enumerate(KEYPOINT_NAMES)]
    cams = sorted({c for d in report.per_camera.values() for c in d})
    cam_rows = [[c] + [float(report.per_camera[lab].get(c, np.nan)) for lab in labels] for c in cams]
    worst = [[name, err] for _, name, _, _, err in report.worst]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
        f"{html.escape(report.title)}</title><style>body{{font-family:sans-serif}}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}</style>"
        f"</head><body><h1>{html.escape(report.title)}</h1>"
        f"<img alt='error picture' src='data:image/png;base64,{png_b64}'>"
        "<h2>RMSE per keypoint (px)</h2>" + _html_table(["keypoint"] + labels, kp_rows)
        + "<h2>RMSE per camera (px)</h2>" + _html_table(["camera"] + labels, cam_rows)
        + "<h2>Worst images</h2>" + _html_table(["image", "RMSE (px)"], worst)
        + "</body></html>\n"
    )
