"""Turn an uploaded image (or a raw pixel array) into a 28x28 MNIST-style array.

The model only knows MNIST: white ink (up to 255) on a black (0) background,
the digit scaled to fit a 20x20 box and placed in a 28x28 field so that its
centre of mass is at the centre. Photos and drawings look nothing like that, so
:func:`preprocess_image` redoes what LeCun et al. did to build MNIST, after
first finding the digit in a real photo:

1. decode PNG / JPEG / BMP / GIF (first frame) with Pillow, refusing other
   formats and anything over :data:`MAX_PIXELS` *before* decoding it; a big
   JPEG is decoded at a reduced scale (draft mode), which is most of the speed;
2. honour the EXIF orientation, flatten transparency, shrink to :data:`WORK`;
3. find the ink (:mod:`mnist_mlops.serve.imaging_ink`): background subtracted,
   Otsu threshold, components (dust, ruled lines and page edges dropped);
4. normalise the stroke width, fit into 20x20, centre by mass
   (:mod:`mnist_mlops.serve.imaging_stroke`).

Raw pixel arrays (:func:`pixels_from_array`) are taken as already MNIST-style:
they are validated, never cropped or moved.

Usage::

    from mnist_mlops.serve.imaging import preprocess_image
    pixels = preprocess_image(open("digit.png", "rb").read())  # float32 (28, 28), 0..255

Only numpy and Pillow are imported: the serving image has no torch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from mnist_mlops.serve.imaging_ink import find_ink
from mnist_mlops.serve.imaging_stroke import SIZE, mnist_field

FORMATS = ("PNG", "JPEG", "BMP", "GIF")
MAX_BYTES = 8 * 1024 * 1024  # a photo of a digit needs far less
MAX_PIXELS = 40_000_000  # checked on the header, before any pixel is decoded
MIN_CONTRAST = 32.0  # ink must differ from the background by this much (0..255 scale)
WORK = 320  # photos are shrunk to this longer side before the ink is looked for

# Magic numbers of formats people send by mistake, so the error can name them.
_KNOWN_UNSUPPORTED: tuple[tuple[bytes, int, str], ...] = (
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"WEBP", 8, "WebP"),
    (b"ftypheic", 4, "HEIC"),
    (b"ftypavif", 4, "AVIF"),
    (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"%PDF", 0, "PDF"),
    (b"<svg", 0, "SVG"),
    (b"<?xml", 0, "SVG/XML"),
)


class ImageError(ValueError):
    """The input cannot be turned into a digit image; the message says why and what to send."""


class UnsupportedFormatError(ImageError):
    """A recognisable image in a format we do not decode (TIFF, WebP, SVG...)."""


class ImageTooLargeError(ImageError):
    """Too many bytes or pixels: refused before decoding (decompression-bomb defence)."""


class NoInkError(ImageError):
    """A valid image with nothing drawn on it (blank, or too little contrast)."""


def preprocess_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> MNIST-style float32 (28, 28), values 0..255."""
    img = ImageOps.exif_transpose(decode_image(data, draft=WORK))
    return mnist_style(to_channels(shrink(img)))


def decode_image(data: bytes, draft: int | None = None) -> Image.Image:
    """Decode PNG/JPEG/BMP/GIF bytes (GIF: first frame), refusing bombs before decoding.

    ``draft``: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale as long as both
    sides stay at least this long (the DCT does the shrinking, almost for free).
    """
    if not data:
        raise ImageError("the image is empty (0 bytes); send a PNG, JPEG, BMP or GIF file")
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
        img.load()  # GIF: the first frame (Pillow opens at frame 0)
    except Exception as exc:  # truncated data, bad CRC, broken LZW...: the file is corrupt
        raise ImageError(f"the {img.format} image could not be decoded: {exc}") from exc
    return img


def _unidentified(data: bytes) -> ImageError:
    head = data[:64].lstrip()
    for magic, offset, name in _KNOWN_UNSUPPORTED:
        if head[offset : offset + len(magic)].lower() == magic.lower():
            return UnsupportedFormatError(
                f"{name} images are not supported; send a PNG, JPEG, BMP or GIF file"
            )
    return ImageError("the data is not a PNG, JPEG, BMP or GIF image")


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


def mnist_style(image: np.ndarray) -> np.ndarray:
    """Grayscale (H, W) or colour (H, W, C), 0..255, any polarity -> MNIST-style (28, 28)."""
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.size == 0:
        raise ImageError(f"expected a 2-D grayscale or colour image, got shape {image.shape}")
    mask = find_ink(img, MIN_CONTRAST)
    if mask is None:
        raise NoInkError(
            "no ink found: the image is blank or has too little contrast; "
            "draw a dark digit on a light background (or light on dark)"
        )
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    ink = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return mnist_field(ink.astype(np.float32))


def pixels_from_array(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Validate a raw pixel array (28x28 nested or 784 flat, numbers 0..255) -> float32 (28, 28).

    The values are taken as already MNIST-style (white ink on black, centred):
    nothing is cropped, moved or inverted.
    """
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError) as exc:  # ragged nesting
        raise ImageError(
            f"pixels must be a 28x28 nested list or 784 numbers; got a ragged array ({exc})"
        ) from exc
    if arr.dtype.kind not in "iuf":
        raise ImageError(
            f"pixels must all be numbers in 0..255; got values of type {arr.dtype.name!r}"
        )
    if arr.shape not in ((SIZE, SIZE), (SIZE * SIZE,)):
        raise ImageError(
            f"pixels must be a 28x28 nested list or 784 numbers; got shape {arr.shape}"
        )
    arr = arr.astype(np.float64)  # check range before float32 could turn 1e300 into inf
    if not np.isfinite(arr).all():
        raise ImageError("pixels must be finite numbers; got NaN or infinity")
    low, high = float(arr.min()), float(arr.max())
    if low < 0.0 or high > 255.0:
        raise ImageError(f"pixels must be in 0..255; got values from {low:g} to {high:g}")
    return arr.astype(np.float32).reshape(SIZE, SIZE)
