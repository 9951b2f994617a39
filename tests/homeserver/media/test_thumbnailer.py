"""Thumbnail size selection against Synapse's own code, and decoding bounds (issue 9,
finding 4)."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import tempfile

from PIL import Image
from twisted.trial import unittest

from homeserver.config import DEFAULT_THUMBNAIL_SIZES, ThumbnailSize
from homeserver.media.thumbnailer import (
    ImageTooLarge,
    ThumbnailError,
    make_thumbnail,
    needs_thumbnail,
    probe,
    scaled_size,
    select_box,
    select_size,
)


def synapse_choice(image_w: int, image_h: int, w: int, h: int, method: str, sizes: tuple[ThumbnailSize, ...]) -> tuple[int, int, str] | None:
    """What Synapse (dynamic_thumbnails: false) serves: the thumbnails its
    _generate_thumbnails makes for this image, then its _select_thumbnail."""
    from synapse.media._base import ThumbnailInfo
    from synapse.media.thumbnailer import ThumbnailProvider

    made: dict[tuple[int, int], str] = {}
    for s in sizes:
        if s.method == "crop":
            made.setdefault((s.width, s.height), "crop")
        else:
            t_w, t_h = scaled_size(image_w, image_h, s.width, s.height)
            made[(min(image_w, t_w), min(image_h, t_h))] = "scale"
    infos = [ThumbnailInfo(tw, th, m, "image/png", 0) for (tw, th), m in made.items()]
    chosen = ThumbnailProvider._select_thumbnail(None, w, h, method, "image/png", infos, "id", False, None)  # type: ignore[arg-type]
    if chosen is None or chosen.thumbnail is None:
        return None
    t = chosen.thumbnail
    return t.width, t.height, t.method


def our_choice(image_w: int, image_h: int, w: int, h: int, method: str, sizes: tuple[ThumbnailSize, ...]) -> tuple[int, int, str] | None:
    size = select_size(image_w, image_h, w, h, method, sizes)
    if size is None:
        return None
    if size.method == "crop":
        return size.width, size.height, "crop"
    t_w, t_h = scaled_size(image_w, image_h, size.width, size.height)
    return min(image_w, t_w), min(image_h, t_h), "scale"


def png_file(width: int, height: int, mode: str = "RGBA") -> str:
    f = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
    Image.new(mode, (width, height), (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)).save(f, "PNG")
    f.close()
    return f.name


class SelectSizeTest(unittest.TestCase):
    def test_same_choice_as_synapse(self) -> None:
        rng = random.Random(9)
        custom = (ThumbnailSize(64, 64, "crop"), ThumbnailSize(100, 50, "scale"), ThumbnailSize(64, 64, "scale"), ThumbnailSize(1000, 1000, "scale"))
        for sizes in (DEFAULT_THUMBNAIL_SIZES, custom):
            for _ in range(3000):
                image = (rng.randint(1, 3000), rng.randint(1, 3000))
                want = (rng.randint(1, 1200), rng.randint(1, 1200), rng.choice(["crop", "scale"]))
                self.assertEqual(our_choice(*image, *want, sizes), synapse_choice(*image, *want, sizes), (image, want, sizes))

    def test_examples(self) -> None:
        sizes = DEFAULT_THUMBNAIL_SIZES
        self.assertEqual(select_size(1000, 1000, 50, 50, "crop", sizes), ThumbnailSize(96, 96, "crop"))
        self.assertEqual(select_size(900, 900, 640, 480, "scale", sizes), ThumbnailSize(640, 480, "scale"))
        # Bigger than every size: the biggest, never the size asked for.
        self.assertEqual(select_size(5650, 5650, 4000, 4000, "scale", sizes), ThumbnailSize(800, 600, "scale"))
        self.assertIsNone(select_size(100, 100, 32, 32, "crop", (ThumbnailSize(32, 32, "scale"),)))

    def test_needs_thumbnail(self) -> None:
        self.assertFalse(needs_thumbnail(20, 20, ThumbnailSize(96, 96, "crop")))
        self.assertTrue(needs_thumbnail(2000, 20, ThumbnailSize(96, 96, "crop")))
        self.assertFalse(needs_thumbnail(300, 200, ThumbnailSize(320, 240, "scale")))


class SelectBoxTest(unittest.TestCase):
    """The size asked of another server when the image's own size is unknown."""

    def test_smallest_covering_else_biggest(self) -> None:
        sizes = DEFAULT_THUMBNAIL_SIZES
        self.assertEqual(select_box(32, 32, "crop", sizes), ThumbnailSize(32, 32, "crop"))
        self.assertEqual(select_box(40, 20, "crop", sizes), ThumbnailSize(96, 96, "crop"))
        self.assertEqual(select_box(500, 500, "crop", sizes), ThumbnailSize(96, 96, "crop"))
        self.assertEqual(select_box(100, 100, "scale", sizes), ThumbnailSize(320, 240, "scale"))
        self.assertEqual(select_box(700, 300, "scale", sizes), ThumbnailSize(800, 600, "scale"))
        self.assertEqual(select_box(4000, 4000, "scale", sizes), ThumbnailSize(800, 600, "scale"))
        self.assertIsNone(select_box(32, 32, "crop", [ThumbnailSize(320, 240, "scale")]))
        # However many sizes clients ask for, only the configured ones are asked for.
        asked = {select_box(w, h, m, sizes) for w in range(1, 1200, 37) for h in range(1, 1200, 41) for m in ("crop", "scale")}
        self.assertLessEqual(asked, set(sizes))


class DecodeBoundsTest(unittest.TestCase):
    def test_pixel_limit_refused_from_header(self) -> None:
        path = png_file(3000, 3000)
        with self.assertRaises(ImageTooLarge):
            probe(path, 4_000_000)
        with self.assertRaises(ImageTooLarge):
            make_thumbnail(path, "image/png", ThumbnailSize(32, 32, "crop"), 4_000_000)
        self.assertEqual((probe(path, 32_000_000).width, probe(path, 32_000_000).height), (3000, 3000))

    def test_only_raster_decoders(self) -> None:
        """An upload labelled image/png that is PostScript never reaches Pillow's EPS
        loader (which runs Ghostscript)."""
        f = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
        Image.new("RGB", (50, 50)).save(f, "EPS")
        f.close()
        self.assertEqual(Image.open(f.name).format, "EPS")  # what Pillow would have used
        with self.assertRaises(ThumbnailError):
            probe(f.name, 32_000_000)
        with self.assertRaises(ThumbnailError):
            make_thumbnail(f.name, "image/png", ThumbnailSize(32, 32, "crop"), 32_000_000)
        # A JPEG labelled image/png is still thumbnailed.
        f = tempfile.NamedTemporaryFile(suffix=".png", delete=False)
        Image.new("RGB", (500, 500)).save(f, "JPEG")
        f.close()
        self.assertEqual(make_thumbnail(f.name, "image/png", ThumbnailSize(32, 32, "crop"), 32_000_000).content_type, "image/png")

    def test_exif_orientation(self) -> None:
        buf = io.BytesIO()
        im = Image.new("RGB", (400, 200), (0, 0, 255))
        exif = im.getexif()
        exif[0x0112] = 6  # rotate 90: displayed 200 wide, 400 high
        im.save(buf, "JPEG", exif=exif.tobytes())
        f = tempfile.NamedTemporaryFile(suffix=".jpg", delete=False)
        f.write(buf.getvalue())
        f.close()
        info = probe(f.name, 32_000_000)
        self.assertEqual((info.width, info.height), (200, 400))
        thumb = make_thumbnail(f.name, "image/jpeg", ThumbnailSize(100, 100, "scale"), 32_000_000)
        self.assertEqual((thumb.width, thumb.height), (50, 100))
        thumb = make_thumbnail(f.name, "image/jpeg", ThumbnailSize(60, 30, "crop"), 32_000_000)
        self.assertEqual((thumb.width, thumb.height), (60, 30))

    def test_modes(self) -> None:
        for mode in ("RGBA", "RGB", "L", "LA", "P", "1", "I;16", "CMYK"):
            im = Image.new(mode, (700, 500))
            f = tempfile.NamedTemporaryFile(suffix=".png" if mode != "CMYK" else ".jpg", delete=False)
            im.save(f, "PNG" if mode != "CMYK" else "JPEG")
            f.close()
            src = "image/png" if mode != "CMYK" else "image/jpeg"
            for size in DEFAULT_THUMBNAIL_SIZES:
                if needs_thumbnail(700, 500, size):
                    thumb = make_thumbnail(f.name, src, size, 32_000_000)
                    got = Image.open(io.BytesIO(thumb.data))
                    want = (size.width, size.height) if size.method == "crop" else scaled_size(700, 500, size.width, size.height)
                    self.assertEqual(got.size, want, (mode, size))

    def test_decoded_memory_is_one_image(self) -> None:
        """Thumbnailing a 5650x5650 RGBA PNG (138 KB) holds about one decoded copy
        (4 bytes a pixel, 122 MiB), not the several Pillow's resize and exif_transpose
        would make (the old code peaked near 400 MiB)."""
        path = png_file(5650, 5650)
        code = (
            "import resource,sys;"
            "from homeserver.media.thumbnailer import make_thumbnail;"
            "from homeserver.config import ThumbnailSize;"
            "before=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
            f"make_thumbnail({path!r}, 'image/png', ThumbnailSize(800, 600, 'scale'), 32*1024*1024);"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-before)//1024)"
        )
        grown_mib = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
        self.assertLess(grown_mib, 170)
