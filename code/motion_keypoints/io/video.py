"""Video in and out: frames of a video file or of a folder of images, and MP4 writing.

Decoding uses **OpenCV** (``cv2.VideoCapture``, its bundled FFmpeg), not PyAV: OpenCV is already
a dependency of the kit (image reading, drawing, augmentation), its wheels ship FFmpeg for the
common codecs (H.264, MPEG-4, MJPEG, VP8/9 ...) and work headless, whereas PyAV would be one more
binary dependency for the same frames. Writing MP4 uses **PyAV** (``av``, its wheels bundle
FFmpeg with libx264): browsers play H.264 but not OpenCV's ``mp4v`` (MPEG-4 Part 2), and the
OpenCV wheels cannot encode H.264 (their FFmpeg has no libx264 or OpenH264; ``avc1`` only finds
the ``h264_v4l2m2m`` hardware encoder, absent on most machines). AVI stays OpenCV ``MJPG``.

:func:`open_frames` checks the source before any work and raises :class:`VideoError` (one line
naming the file and the fix) for a missing or unreadable file, a video without frames, a codec
this OpenCV cannot decode, or a folder without images. Frames are ``H x W x 3`` uint8 BGR, like
every image of the kit.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ..errors import UserError
from ..utils import PathLike, atomic_path

#: Image files accepted in a folder of frames.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Output containers and their codec: H.264 (``h264``, PyAV's libx264) in MP4/MOV, which every
#: current browser plays; OpenCV's fourcc ``MJPG`` in AVI.
WRITE_CODECS = {".mp4": "h264", ".m4v": "h264", ".mov": "h264", ".avi": "MJPG"}
#: H.264 encoder settings: visually lossless for overlays, fast, browser-compatible pixels.
H264_OPTIONS = {"crf": "20", "preset": "veryfast"}
#: Frame rate of a folder of frames when none is given.
DEFAULT_FOLDER_FPS = 30.0

# FFmpeg's own log lines ("moov atom not found" ...) would precede the kit's one-line error;
# quiet them (AV_LOG_QUIET) unless the user set a level. Read by OpenCV when a capture opens.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class VideoError(UserError, ValueError):
    """A video or frames folder that cannot be used; the message names the file and the fix."""


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _read_image(path: Path) -> Optional[np.ndarray]:
    from .images import read_image  # the kit's one image reader (EXIF rotation like detectron2)

    try:
        return read_image(path)
    except Exception:  # unreadable: the caller names the file
        return None


def _fourcc_text(value: float) -> str:
    code = int(value)
    chars = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return chars if chars.strip("\x00").isprintable() and code else "unknown"


@dataclass
class FrameSource:
    """Frames of a video file (``kind`` "video") or of a folder of images (``kind`` "frames", in
    natural name order). ``count`` is the number of frames (for a video the container's count,
    which the decoded frames may differ from by a few); iterate to get the frames."""

    path: Path
    kind: str
    fps: float
    count: int
    width: int
    height: int
    codec: str = ""
    files: List[Path] = field(default_factory=list)

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.kind == "frames":
            for f in self.files:
                img = _read_image(f)
                if img is None:
                    raise VideoError(f"{f}: cannot read the image; replace or remove it")
                if img.shape[:2] != (self.height, self.width):
                    raise VideoError(
                        f"{f}: {img.shape[1]}x{img.shape[0]} differs from the first frame's "
                        f"{self.width}x{self.height}; all frames of a folder must have one size"
                    )
                yield img
            return
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                if img.ndim == 2:
                    img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
                yield img
        finally:
            cap.release()

    def describe(self) -> str:
        what = f"{self.codec} video" if self.kind == "video" else "frames folder"
        return f"{self.path} ({what}, {self.count} frames, {self.width}x{self.height}, {self.fps:g} fps)"


def check_frame_files(files: List[Path]) -> Tuple[int, int]:
    """``(width, height)`` of a folder's frames, after checking every file the way ``check_data``
    does at its ``decode`` level (:func:`motion_keypoints.io.images.check_image_file`: the same
    reader, the same verdict; a truncated JPEG is caught, not decoded to a grey frame) and that
    all have the first frame's size. Raises :class:`VideoError`, one line naming the first bad
    frames and how many there are, before any model is loaded."""
    from concurrent.futures import ThreadPoolExecutor

    from .images import check_image_file

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        verdicts = list(pool.map(check_image_file, files))
    bad = [f"{f.name} {error}" for f, (_, error) in zip(files, verdicts) if error]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise VideoError(f"{files[0].parent}: {len(bad)} of {len(files)} frames cannot be used: "
                         f"{bad[0]}{more}; replace or remove them")
    w, h = verdicts[0][0]
    odd = [(f, size) for f, (size, _) in zip(files, verdicts) if size != (w, h)]
    if odd:
        f, (ow, oh) = odd[0]
        raise VideoError(f"{f}: {ow}x{oh} differs from the first frame's {w}x{h} ({files[0].name}; "
                         f"{len(odd)} frames differ); all frames of a folder must have one size")
    return w, h


def open_frames(source: PathLike, fps: Optional[float] = None) -> FrameSource:
    """Check a video file or frames folder and return its :class:`FrameSource`.

    ``fps`` overrides the frame rate (needed for a folder; default :data:`DEFAULT_FOLDER_FPS`).
    Raises :class:`VideoError` for a missing path, an unreadable file, zero frames or a codec
    that cannot be decoded.
    """
    path = Path(source)
    from .outputs import register_inputs

    register_inputs(path)  # the output policy never writes over what a command reads
    if fps is not None and not fps > 0:
        raise VideoError(f"--fps {fps}: the frame rate must be positive")
    if not path.exists():
        raise VideoError(f"{path}: no such video file or frames folder; check the path")
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda p: _natural_key(p.name),
        )
        if not files:
            raise VideoError(
                f"{path}: the folder holds no frames (images {', '.join(IMAGE_EXTENSIONS)}); "
                "give a video file or a folder of frames"
            )
        w, h = check_frame_files(files)
        return FrameSource(path, "frames", float(fps or DEFAULT_FOLDER_FPS), len(files), w, h,
                           "images", files)  # fmt: skip
    import cv2

    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes); copy the video again")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(
                f"{path}: cannot open it as a video (not a video file, or a container this "
                "OpenCV/FFmpeg build cannot read); convert it, e.g. "
                f"ffmpeg -i {path} -c:v libx264 video.mp4"
            )
        codec = _fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        ok, img = cap.read()
    finally:
        cap.release()
    if not ok or img is None:
        if count > 0:
            raise VideoError(
                f"{path}: cannot decode its frames (codec {codec!r} is unknown to this "
                f"OpenCV/FFmpeg build); convert it, e.g. ffmpeg -i {path} -c:v libx264 video.mp4"
            )
        raise VideoError(f"{path}: the video has zero frames; check the recording")
    h, w = img.shape[:2]
    if fps is None:
        fps = rate if 0 < rate < 1000 else DEFAULT_FOLDER_FPS
    return FrameSource(path, "video", float(fps), max(count, 1), w, h, codec)


def write_video(
    path: PathLike, frames: Iterable[np.ndarray], fps: float, size: Optional[Tuple[int, int]] = None
) -> int:
    """Write BGR ``frames`` to a video file atomically (codec by extension, :data:`WRITE_CODECS`;
    ``.mp4`` is H.264, yuv420p, ``+faststart``: it plays in browsers); ``size`` ``(width,
    height)`` defaults to the first frame's. Returns the number of frames written."""
    import cv2

    from .outputs import OutputError

    path = Path(path)
    codec = WRITE_CODECS.get(path.suffix.lower())
    if codec is None:
        raise OutputError(
            f"{path}: unknown video extension {path.suffix!r}; use one of {', '.join(WRITE_CODECS)}"
        )
    if not fps > 0:
        raise OutputError(f"{path}: the frame rate must be positive, got {fps}")
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise OutputError(f"{path}: no frames to write")
    w, h = size or (first.shape[1], first.shape[0])
    n = 0
    with atomic_path(path, kind="video") as tmp:
        if codec == "h264":
            return _write_h264(tmp, _chain(first, it), fps, w, h, path)
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), float(fps), (w, h))
        if not writer.isOpened():
            raise OutputError(f"{path}: OpenCV cannot write {codec!r} video here; try a .avi file")
        try:
            for img in _chain(first, it):
                if img.shape[:2] != (h, w):
                    raise OutputError(
                        f"{path}: frame {n} is {img.shape[1]}x{img.shape[0]}, not {w}x{h}"
                    )
                writer.write(np.ascontiguousarray(img, dtype=np.uint8))
                n += 1
        finally:
            writer.release()
    return n


def _write_h264(tmp: Path, frames: Iterable[np.ndarray], fps: float, w: int, h: int,
                path: Path) -> int:
    """H.264 in MP4/MOV with PyAV (see the module). yuv420p needs even sides: an odd width or
    height gets one more column or row, a copy of the last."""
    from fractions import Fraction

    import av

    from .outputs import OutputError

    container = av.open(str(tmp), mode="w", format="mov" if path.suffix.lower() == ".mov" else "mp4",
                        options={"movflags": "+faststart"})  # fmt: skip
    n = 0
    try:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = dict(H264_OPTIONS)
        for img in frames:
            if img.shape[:2] != (h, w):
                raise OutputError(f"{path}: frame {n} is {img.shape[1]}x{img.shape[0]}, not {w}x{h}")
            img = np.ascontiguousarray(img, dtype=np.uint8)
            if w % 2 or h % 2:
                img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
            n += 1
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    finally:
        container.close()
    return n


def _chain(first, rest):
    yield first
    yield from rest


def count_frames(path: PathLike) -> int:
    """The number of frames that decode from a video file (reads them all)."""
    return sum(1 for _ in open_frames(path))
