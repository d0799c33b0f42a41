"""The one image reader of the kit (:func:`read_image`, used by augmentation, training,
prediction and pictures), sizes from headers (EXIF rotation applied, as :func:`read_image` does),
readability checks at three levels, and the one JPEG writer (atomic)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Tuple, Union

import numpy as np
from PIL import Image

from ..errors import UserError
from ..utils import PathLike, atomic_path
from .problems import DataError, Problem

if TYPE_CHECKING:  # pragma: no cover
    from .tables import Table

#: Image check levels: ``exists`` (file present); ``header`` (size read; truncated JPEGs caught by
#: their missing end marker); ``decode`` (every image decoded: also catches corrupt data).
IMAGE_CHECK_LEVELS = ("exists", "header", "decode")

_EXIF_ORIENTATION = 0x0112

# ------------------------------------------------------------------------------------- images


def image_level(check_images: Union[bool, str]) -> str:
    if check_images is True:
        return "decode"
    if check_images is False:
        return "exists"
    if check_images not in IMAGE_CHECK_LEVELS:
        raise ValueError(f"check_images must be True, False or one of {IMAGE_CHECK_LEVELS}, "
                         f"got {check_images!r}")
    return check_images


def _oriented_size(im: Image.Image) -> Tuple[int, int, int]:
    orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    w, h = im.size
    return (h, w, orientation) if orientation in (5, 6, 7, 8) else (w, h, orientation)


def _ends_with_jpeg_eoi(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 2))
        return f.read() == b"\xff\xd9"


def _open_image(path: Path, decode: bool) -> Tuple[Tuple[int, int] | None, int, str | None]:
    """``(size, exif_orientation, error)`` of an image file. ``decode`` decodes its pixels (at 1/8
    scale for JPEGs: every byte is still read). Without it, a JPEG that does not end with the
    end-of-image marker (truncated, or with trailing bytes) is decoded to tell which."""
    try:
        with Image.open(path) as im:
            w, h, orientation = _oriented_size(im)
            if decode or (im.format == "JPEG" and not _ends_with_jpeg_eoi(path)):
                im.draft(None, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except Exception as exc:  # any decoder failure means the file is unusable
        return None, 1, (f"cannot be read as an image ({type(exc).__name__}: {exc}): the file is "
                         "corrupt or truncated; copy it again")
    return (w, h), orientation, None


def check_image_file(path: PathLike) -> Tuple[Tuple[int, int] | None, str | None]:
    """``((width, height), None)`` of a readable image, or ``(None, error)``: the verdict of
    ``check_data``'s ``decode`` level for one file (every byte decoded; truncated JPEGs caught)."""
    size, _, error = _open_image(Path(path), decode=True)
    return size, error


def image_size(path: PathLike) -> Tuple[int, int]:
    """``(width, height)`` of an image from its header, as image loaders see it (EXIF rotation
    applied, as detectron2's ``read_image`` and OpenCV do)."""
    path = Path(path)
    size, _, error = _open_image(path, decode=False)
    if error:
        raise DataError([Problem(path, None, None, error)])
    return size


def check_table_images(table: Table, image_dir: Path, level: str, problems: List[Problem],
                        warnings: List[Problem], cache: Dict[Path, tuple]) -> None:
    """Check that every image of ``table`` is in ``image_dir`` (and readable, by ``level``);
    fill ``table.sizes``."""
    if not image_dir.is_dir():
        problems.append(Problem(image_dir, None, None, f"image folder not found: expected the "
                                f"images listed in {table.path.name} in {image_dir}"))
        return
    if not table.images:
        return
    on_disk = {e.name for e in os.scandir(image_dir) if e.is_file()}
    by_lower = {n.lower(): n for n in on_disk}
    names = list(table.images)
    present = []
    for name, line in table.images.items():
        if name in on_disk:
            present.append((name, line))
            continue
        near = by_lower.get(name.lower())
        hint = f" (there is {near!r}: names are case-sensitive)" if near else ""
        problems.append(Problem(table.path, line, "image", f"image {name!r} not found in "
                                f"{image_dir}{hint}"))
    if not present and len(names) > 1:
        problems.append(Problem(table.path, None, "image", f"none of the {len(names)} images is in "
                                f"{image_dir}: is the data root right?"))
    if level == "exists":
        return
    todo = [image_dir / n for n, _ in present if image_dir / n not in cache]
    if todo:
        from tqdm import tqdm

        decode = level == "decode"
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results = pool.map(lambda p: _open_image(p, decode), todo)
            bar = tqdm(results, total=len(todo), desc=f"checking images in {image_dir.name}",
                       unit="img", disable=len(todo) < 500, leave=False)
            cache.update(zip(todo, bar))
    for name, line in present:
        size, orientation, error = cache[image_dir / name]
        if error:
            problems.append(Problem(table.path, line, "image", f"image {image_dir / name} {error}"))
            continue
        table.sizes[name] = size
        if orientation != 1:
            warnings.append(Problem(table.path, line, "image", f"image {name!r} has EXIF orientation "
                                    f"{orientation}: loaders rotate it to {size[0]}x{size[1]}; check "
                                    "the keypoints were labelled on the rotated image"))



class ImageReadError(UserError, OSError):
    """An image file that is missing or cannot be decoded (one line naming the file)."""


class ImageNotFoundError(ImageReadError, FileNotFoundError):
    """An image file that does not exist."""


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """An OpenCV-decoded array (8/16-bit or float, 1/3/4 channels) as HxWx3 uint8 BGR.

    16-bit values are scaled by 1/257 (65535 -> 255), floats are taken as 0..1; grayscale is
    repeated into three channels and an alpha channel is dropped (as ``cv2.IMREAD_COLOR`` does).
    """
    import cv2

    img = np.asarray(image)
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) / 257.0).astype(np.uint8)
    elif img.dtype.kind == "f":
        img = np.round(np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def read_image(path: PathLike) -> np.ndarray:
    """THE image reader: an image file as an ``HxWx3`` uint8 BGR array.

    Whatever the file name says, the content decides the format: 8- and 16-bit files (16-bit
    scaled by 1/257, so a 16-bit PNG named ``.jpg`` is not washed out), grayscale (repeated into
    three channels) and alpha (dropped). EXIF orientation is applied, so the array has the size
    :func:`image_size` reports and the data checks validated. An unreadable file raises
    :class:`ImageReadError` naming it.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ImageNotFoundError(f"{path}: image not found (run python code/check_data.py)")
    # IMREAD_COLOR applies the EXIF orientation and gives 3 channels; ANYDEPTH keeps 16 bits
    # (plain IMREAD_COLOR would keep only the high byte of some files and not others).
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if img is None:
        try:  # formats OpenCV lacks (or a PIL-only variant): PIL, with EXIF orientation
            from PIL import ImageOps

            with Image.open(path) as im:
                im = ImageOps.exif_transpose(im)
                img = np.asarray(im)
            if img.ndim == 3 and img.shape[2] >= 3:
                img = img[:, :, [2, 1, 0, *range(3, img.shape[2])]]
        except Exception as exc:  # any decoder failure means the file is unusable
            raise ImageReadError(
                f"{path}: cannot be read as an image ({type(exc).__name__}); the file is corrupt "
                "or not an image: copy it again (python code/check_data.py checks every image)"
            ) from None
    return to_bgr8(img)


def write_jpeg(path: PathLike, image: np.ndarray, quality: int) -> None:
    """Write a BGR image as a JPEG of ``quality`` atomically (temporary file, then rename)."""
    import cv2

    path = Path(path)
    with atomic_path(path, kind="image") as tmp:
        if not cv2.imwrite(str(tmp), image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
            raise OSError(f"could not write {path} (disk full or unwritable folder?)")
