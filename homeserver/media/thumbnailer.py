"""Thumbnails with Pillow: "scale" fits the image inside the box keeping its aspect ratio,
"crop" fills the box exactly and cuts the overflow from the centre.

Only the configured sizes (``media.thumbnail_sizes``) are ever made: a request is answered
with the nearest of them, chosen as Synapse's ``_select_thumbnail`` chooses among its
pre-generated thumbnails. Never upscales: when the original is no bigger than the
thumbnail would be, the caller serves the original.

Memory is bounded before anything is decoded: images over ``max_image_pixels`` are
refused from their header; JPEGs are decoded at the smallest DCT scale that is still big
enough (``draft``); other formats are decoded once and shrunk strip by strip, so no
second full-size copy is made (Pillow's own resize of RGBA would make one).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from homeserver.config import ThumbnailSize

THUMBNAILABLE_TYPES = frozenset(
    {"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp", "image/bmp", "image/tiff", "image/apng", "image/avif"}
)
# The only decoders Pillow may use, whatever the upload claims to be: Image.open would
# otherwise try every format it knows, EPS among them, whose loader runs Ghostscript on
# the attacker's PostScript when it is installed. (A mislabelled type of this list, a JPEG
# sent as image/png, still works.)
DECODERS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF")

# Shrink by whole factors (box average) until within this factor of the target, then
# resample with Lanczos: Pillow's reducing_gap, done here strip by strip.
REDUCING_GAP = 2
STRIP_ROWS = 256

# EXIF orientation -> the transpose that shows the image upright (ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = {5, 6, 7, 8}


class ThumbnailError(Exception):
    pass


class ImageTooLarge(ThumbnailError):
    pass


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: the size as displayed (EXIF orientation applied)."""

    width: int
    height: int
    orientation: int


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    content_type: str
    width: int
    height: int


def scaled_size(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The size of ``width``x``height`` fitted inside the box, aspect kept (Synapse's
    Thumbnailer.aspect)."""
    if box_w * height < box_h * width:
        return box_w, max(1, (box_w * height) // width)
    return max(1, (box_h * width) // height), box_h


def select_size(
    image_w: int, image_h: int, desired_w: int, desired_h: int, method: str, sizes: Sequence[ThumbnailSize]
) -> ThumbnailSize | None:
    """The configured size to answer a request with: Synapse's ``_select_thumbnail`` over
    the thumbnails its ``_generate_thumbnails`` would have made of this image (crop: the
    box itself; scale: the box fitted to the image, never bigger than the image; a crop
    the size of a scaled one is dropped). Ties go to the size listed first; None when no
    size has that method (Synapse answers 404)."""
    made: dict[tuple[int, int], ThumbnailSize] = {}
    for size in sizes:
        if size.method == "crop":
            made.setdefault((size.width, size.height), size)
        else:
            t_w, t_h = scaled_size(image_w, image_h, size.width, size.height)
            key = (min(image_w, t_w), min(image_h, t_h))
            if key in made and made[key].method == "scale":
                continue  # the same thumbnail: keep the first size that makes it
            made[key] = size  # a crop of these dimensions is replaced in its place
    best: tuple[tuple[int, ...], ThumbnailSize] | None = None
    fallback: tuple[tuple[int, ...], ThumbnailSize] | None = None
    for (t_w, t_h), size in made.items():
        if size.method != method:
            continue
        if method == "crop":
            aspect_quality = abs(desired_w * t_h - desired_h * t_w)
            min_quality = 0 if desired_w <= t_w and desired_h <= t_h else 1
            size_quality = abs((desired_w - t_w) * (desired_h - t_h))
            rank: tuple[int, ...] = (aspect_quality, min_quality, size_quality)
        else:
            rank = (abs((desired_w - t_w) * (desired_h - t_h)),)
        if t_w >= desired_w or t_h >= desired_h:
            if best is None or rank < best[0]:
                best = (rank, size)
        elif fallback is None or rank < fallback[0]:
            fallback = (rank, size)
    chosen = best or fallback
    return chosen[1] if chosen else None


def needs_thumbnail(image_w: int, image_h: int, size: ThumbnailSize) -> bool:
    """False when the original is no bigger than the thumbnail: serve it as it is."""
    if size.method == "scale":
        t_w, t_h = scaled_size(image_w, image_h, size.width, size.height)
        return t_w < image_w and t_h < image_h
    return size.width < image_w or size.height < image_h


def output_type(source_type: str) -> str:
    return "image/jpeg" if source_type in ("image/jpeg", "image/jpg") else "image/png"


def probe(path: str, max_pixels: int) -> ImageInfo:
    """The image's displayed size, from its header only (nothing is decoded); refuses
    images over ``max_pixels``."""
    try:
        with Image.open(path, formats=DECODERS) as im:
            w, h = im.size
            orientation = _orientation(im)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(str(e)) from e
    except Exception as e:
        raise ThumbnailError(f"not an image: {e}") from e
    if w <= 0 or h <= 0:
        raise ThumbnailError("empty image")
    if w * h > max_pixels:
        raise ImageTooLarge(f"image has {w}x{h} pixels, more than {max_pixels}")
    if orientation in _SWAPS_AXES:
        w, h = h, w
    return ImageInfo(w, h, orientation)


def _orientation(im: Image.Image) -> int:
    # Only when the EXIF block was in the header: for PNG, getexif() would otherwise
    # decode the whole image to look for it after the pixel data.
    if "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION else 1


def make_thumbnail(path: str, source_type: str, size: ThumbnailSize, max_pixels: int) -> Thumbnail:
    """The thumbnail of the image at ``path`` for a configured size (the caller has
    checked with ``needs_thumbnail`` that the original is bigger)."""
    try:
        im = Image.open(path, formats=DECODERS)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(str(e)) from e
    except Exception as e:
        raise ThumbnailError(f"cannot decode image: {e}") from e
    with im:
        raw_w, raw_h = im.size
        if raw_w <= 0 or raw_h <= 0:
            raise ThumbnailError("empty image")
        if raw_w * raw_h > max_pixels:
            raise ImageTooLarge(f"image has {raw_w}x{raw_h} pixels, more than {max_pixels}")
        orientation = _orientation(im)
        # Work in the stored orientation and turn only the small result upright.
        box_w, box_h = (size.height, size.width) if orientation in _SWAPS_AXES else (size.width, size.height)
        try:
            im.seek(0)  # animated: the first frame
            target = _resized_size(raw_w, raw_h, box_w, box_h, size.method)
            if im.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale when that is still big enough.
                im.draft(None, (target[0] * REDUCING_GAP, target[1] * REDUCING_GAP))
            im.load()
            out = _shrink(im, target)
        except ThumbnailError:
            raise
        except Exception as e:
            raise ThumbnailError(f"cannot decode image: {e}") from e
    if size.method == "crop":
        out = _crop_centre(out, box_w, box_h)
    if orientation in _ORIENTATION:
        out = out.transpose(_ORIENTATION[orientation])
    return _encode(out, source_type)


def _resized_size(w: int, h: int, box_w: int, box_h: int, method: str) -> tuple[int, int]:
    """What the whole image is resized to before a crop cuts the box out of it."""
    if method == "scale":
        t_w, t_h = scaled_size(w, h, box_w, box_h)
        return min(w, t_w), min(h, t_h)
    scale = max(box_w / w, box_h / h)
    if scale >= 1:
        return w, h  # smaller than the box on one side: crop without scaling
    return max(box_w, round(w * scale)), max(box_h, round(h * scale))


def _shrink(im: Image.Image, target: tuple[int, int]) -> Image.Image:
    w, h = im.size
    factor = max(1, min(w // (target[0] * REDUCING_GAP), h // (target[1] * REDUCING_GAP)))
    mode = _working_mode(im)
    if factor > 1 or im.mode != mode:
        reduced = Image.new(mode, (-(-w // factor), -(-h // factor)))
        step = factor * max(1, STRIP_ROWS // factor)
        for top in range(0, h, step):
            strip = _to_mode(im.crop((0, top, w, min(h, top + step))), mode)
            reduced.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
        im = reduced
    if im.size == target:
        return im
    return im.resize(target, Image.Resampling.LANCZOS)


def _working_mode(im: Image.Image) -> str:
    if im.mode in ("RGB", "RGBA", "L", "LA"):
        return im.mode
    has_alpha = im.mode in ("PA", "RGBa", "La") or "transparency" in im.info or im.mode.endswith("A")
    if im.mode in ("1", "I", "F") or im.mode.startswith("I;16"):
        return "L"
    return "RGBA" if has_alpha else "RGB"


def _to_mode(strip: Image.Image, mode: str) -> Image.Image:
    if strip.mode == mode:
        return strip
    if strip.mode.startswith("I;16"):
        # 16-bit greyscale: keep the top 8 bits (a plain convert would clip at 255).
        return strip.convert("I").point(lambda v: v / 256).convert("L")
    return strip.convert(mode)


def _crop_centre(im: Image.Image, box_w: int, box_h: int) -> Image.Image:
    w, h = im.size
    if w >= box_w and h >= box_h:
        cw, ch = box_w, box_h
    else:
        # Smaller than the box on one side: the largest piece with the box's aspect ratio.
        ratio = box_w / box_h
        cw, ch = (w, max(1, round(w / ratio))) if w / h < ratio else (max(1, round(h * ratio)), h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return im.crop((left, top, left + cw, top + ch))


def _encode(im: Image.Image, source_type: str) -> Thumbnail:
    buf = io.BytesIO()
    has_alpha = im.mode in ("RGBA", "LA")
    if source_type in ("image/jpeg", "image/jpg") and not has_alpha:
        if im.mode != "RGB":
            im = im.convert("RGB")
        im.save(buf, "JPEG", quality=80, optimize=True)
        content_type = "image/jpeg"
    else:
        im.save(buf, "PNG", optimize=True)
        content_type = "image/png"
    return Thumbnail(buf.getvalue(), content_type, im.size[0], im.size[1])


def select_box(desired_w: int, desired_h: int, method: str, sizes: Sequence[ThumbnailSize]) -> ThumbnailSize | None:
    """The configured size to ask another server for when we do not have the image (so
    its dimensions are unknown): the smallest box of that method that covers the request,
    else the biggest; None when no size has that method. However many sizes clients ask
    for, each remote image is asked for in at most ``len(sizes)`` sizes."""
    boxes = [s for s in sizes if s.method == method]
    if not boxes:
        return None
    covering = [s for s in boxes if s.width >= desired_w and s.height >= desired_h]
    if covering:
        return min(covering, key=lambda s: (s.width * s.height, sizes.index(s)))
    return max(boxes, key=lambda s: (s.width * s.height, -sizes.index(s)))
