"""Steps 1-2: encoded bytes -> float32 (H, W, C) channels, bounded before any pixel is decoded.

Pillow decodes PNG / JPEG / WebP / BMP / GIF (first frame), refusing other formats and anything
over :data:`MAX_PIXELS` *before* decoding it; a big JPEG is decoded at a reduced scale
(draft mode), which is most of the speed. Then the EXIF orientation is honoured,
transparency flattened, and the image shrunk to :data:`WORK` on its longer side.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from mnist_mlops.imaging.errors import ImageError, ImageTooLargeError, UnsupportedFormatError

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")  # Pillow's names; WebP: browsers' "Save image"
ACCEPTED = "PNG, JPEG, WebP, BMP or GIF"  # FORMATS, as errors and docs say them
MAX_BYTES = 8 * 1024 * 1024  # a photo of a digit needs far less
MAX_PIXELS = 40_000_000  # checked on the header, before any pixel is decoded
WORK = 320  # photos are shrunk to this longer side before the ink is looked for

# Magic numbers of formats people send by mistake, so the error can name them.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypavif", 4, "AVIF"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"%PDF", 0, "PDF"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "SVG/XML"),
)


def decode_image(data: bytes, draft: int | None = None) -> Image.Image:
    """Decode PNG/JPEG/WebP/BMP/GIF bytes (first frame), refusing bombs before decoding.

    ``draft``: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both
    sides stay at least this long (the DCT does the shrinking, almost for free).
    """
    if not data:
        raise ImageError(f"the image is empty (0 bytes); send a {ACCEPTED} file")
    if len(data) > MAX_BYTES:
        raise ImageTooLargeError(f"the image is {len(data)} bytes; the limit is {MAX_BYTES} bytes")
    try:
        # Image.open reads only the header, so the size check below runs before decoding.
        img = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"the image has too many pixels: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for junk; all mean "not an image"
        raise _unidentified(data) from exc
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"the image is {width}x{height} pixels; the limit is {MAX_PIXELS:,} pixels"
        )
    if draft is not None and img.format == "JPEG":
        img.draft(img.mode, (draft, draft))
    try:
        img.load()  # GIF, animated WebP: the first frame (Pillow opens at frame 0)
    except Exception as exc:  # truncated data, bad CRC, broken LZW...: the file is corrupt
        raise ImageError(f"the {img.format} image could not be decoded: {exc}") from exc
    return img


def _unidentified(data: bytes) -> ImageError:
    head = data[:64].lstrip()
    for magic, offset, name in _KNOWN_UNSUPPORTED:
        if head[offset : offset + len(magic)].lower() == magic.lower():
            message = f"{name} images are not supported; send a {ACCEPTED} file"
            return UnsupportedFormatError(message)
    return ImageError(f"the data is not a {ACCEPTED} image")


def shrink(img: Image.Image) -> Image.Image:
    """Shrink so the longer side is at most WORK (area averaging also evens out grain)."""
    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit grayscale PNG: 0..65535
        img = Image.fromarray(np.asarray(img, dtype=np.float32) / 257.0, "F")
    elif img.mode not in ("L", "RGB", "RGBA", "F"):
        has_alpha = "A" in img.getbands() or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    scale = WORK / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BOX)
    return img


def to_channels(img: Image.Image) -> np.ndarray:
    """L / RGB / RGBA / F image -> float32 (H, W, C) on a 0..255 scale, transparency flattened."""
    if img.mode == "RGBA":
        return _flatten_alpha(img)
    arr = np.clip(np.asarray(img, dtype=np.float32), 0.0, 255.0)
    return arr[..., None] if arr.ndim == 2 else arr


def _flatten_alpha(rgba: Image.Image) -> np.ndarray:
    """Composite onto white, unless the visible strokes are light (white ink on a
    transparent canvas), then onto black: either way the ink stays visible."""
    arr = np.asarray(rgba, dtype=np.float32)
    alpha = arr[..., 3:] / 255.0
    rgb = arr[..., :3]
    weight = float(alpha.sum())
    ink_is_light = (
        weight > 0 and float((rgb.mean(-1, keepdims=True) * alpha).sum()) / weight > 127.5
    )
    background = 0.0 if ink_is_light else 255.0
    return rgb * alpha + background * (1.0 - alpha)
