"""Thumbnails with Pillow: "scale" fits the image inside the requested box keeping its
aspect ratio, "crop" fills the box exactly and cuts the overflow from the centre.

Never upscales: when the original is no bigger than what was asked for, the caller
serves the original instead. Images with too many pixels are refused before decoding
(decompression bombs).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

# The sizes the spec recommends; requests are answered with the smallest that is at
# least as big, so a handful of files per image covers every client.
STANDARD_SIZES: list[tuple[int, int, str]] = [
    (32, 32, "crop"),
    (96, 96, "crop"),
    (320, 240, "scale"),
    (640, 480, "scale"),
    (800, 600, "scale"),
]
MAX_THUMBNAIL_DIMENSION = 4096
MAX_IMAGE_PIXELS = 32_000_000

THUMBNAILABLE_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/apng", "image/avif"}
)


class ThumbnailError(Exception):
    pass


class ImageTooLarge(ThumbnailError):
    pass


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int


def choose_size(width: int, height: int, method: str) -> tuple[int, int, str]:
    """The standard size to produce for a request (or the request itself if it is bigger
    than all of them, capped)."""
    candidates = [s for s in STANDARD_SIZES if s[2] == method and s[0] >= width and s[1] >= height]
    if candidates:
        return min(candidates, key=lambda s: s[0] * s[1])
    return min(width, MAX_THUMBNAIL_DIMENSION), min(height, MAX_THUMBNAIL_DIMENSION), method


def image_size(data: bytes) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception as e:
        raise ThumbnailError(f"not an image: {e}") from e


def make_thumbnail(data: bytes, source_type: str, width: int, height: int, method: str) -> Thumbnail | None:
    """A thumbnail, or None when the original is already small enough to serve as is."""
    try:
        im = Image.open(io.BytesIO(data))
    except Exception as e:
        raise ThumbnailError(f"cannot decode image: {e}") from e
    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ThumbnailError("empty image")
        if w * h > MAX_IMAGE_PIXELS:
            raise ImageTooLarge("image has too many pixels to thumbnail")
        try:
            im.seek(0)  # animated: the first frame
            im.load()
            im = ImageOps.exif_transpose(im) or im
        except Exception as e:
            raise ThumbnailError(f"cannot decode image: {e}") from e
        w, h = im.size
        if method == "scale":
            # Fit inside the box: the limiting side meets the box.
            if width * h <= height * w:
                tw, th = width, max(1, round(h * width / w))
            else:
                tw, th = max(1, round(w * height / h)), height
            if tw >= w or th >= h:
                return None
            out = im.resize((tw, th), Image.LANCZOS)
        else:
            if width >= w and height >= h:
                return None
            # Cover the box, then cut from the centre; if the original is smaller than the
            # box on one side, cut the largest piece with the box's aspect ratio instead.
            scale = max(width / w, height / h)
            if scale >= 1:
                ratio = width / height
                cw, ch = (w, max(1, round(w / ratio))) if w / h < ratio else (max(1, round(h * ratio)), h)
                left, top = (w - cw) // 2, (h - ch) // 2
                out = im.crop((left, top, left + cw, top + ch))
            else:
                sw, sh = max(width, round(w * scale)), max(height, round(h * scale))
                scaled = im.resize((sw, sh), Image.LANCZOS)
                left, top = (sw - width) // 2, (sh - height) // 2
                out = scaled.crop((left, top, left + width, top + height))
        return _encode(out, source_type)


def _encode(im: Image.Image, source_type: str) -> Thumbnail:
    buf = io.BytesIO()
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if source_type in ("image/jpeg", "image/jpg") and not has_alpha:
        if im.mode != "RGB":
            im = im.convert("RGB")
        im.save(buf, "JPEG", quality=80, optimize=True)
        content_type = "image/jpeg"
    else:
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if has_alpha else "RGB")
        im.save(buf, "PNG", optimize=True)
        content_type = "image/png"
    return Thumbnail(buf.getvalue(), content_type, im.size[0], im.size[1])
