"""Digit-like test images, built with Pillow: one place for the imaging, serving and
scoring tests' drawings.

tests/conftest.py exposes the common ones as fixtures; modules that build tables of cases
at import time (test_bad_inputs.py) import them directly.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageDraw

# A "7": top bar then a slanted stem, as fractions of the drawing box (x, y).
SEVEN = [(0.05, 0.05), (0.95, 0.05), (0.45, 0.95)]


def draw_digit(
    size: tuple[int, int] = (300, 200),
    box: tuple[int, int, int, int] = (30, 20, 130, 180),
    ink: int | tuple[int, ...] = 0,
    background: int | tuple[int, ...] = 255,
    mode: str = "L",
    width: int = 20,
) -> Image.Image:
    """A "7" drawn with Pillow inside ``box`` (left, top, right, bottom) of a ``size`` canvas."""
    img = Image.new(mode, size, background)
    left, top, right, bottom = box
    points = [(left + x * (right - left), top + y * (bottom - top)) for x, y in SEVEN]
    ImageDraw.Draw(img).line(points, fill=ink, width=width, joint="curve")
    return img


def encode(img: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """Encode ``img`` as ``fmt`` bytes."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header claims ``width`` x ``height`` pixels.

    The IHDR chunk of a real 8x8 PNG is patched (and its CRC recomputed): a few
    hundred bytes that would decode to gigabytes, i.e. a decompression bomb.
    """
    data = bytearray(encode(Image.new("L", (8, 8))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def animated_gif(first_blank: bool) -> bytes:
    """A two-frame GIF: a "7" and a blank frame, the blank one first if ``first_blank``."""
    blank = Image.new("L", (120, 120), 255)
    seven = draw_digit((120, 120), (20, 15, 100, 105), width=10)
    frames = [blank, seven] if first_blank else [seven, blank]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()
