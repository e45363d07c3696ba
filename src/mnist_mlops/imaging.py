"""Turn an uploaded image (or a raw pixel array) into a 28x28 MNIST-style array.

The model only knows MNIST: white ink (up to 255) on a black (0) background,
the digit scaled to fit a 20x20 box and placed in a 28x28 field so that its
centre of mass is at the centre. Photos and drawings look nothing like that, so
:func:`preprocess_image` redoes what LeCun et al. did to build MNIST:

1. decode PNG / JPEG / BMP / GIF (first frame) with Pillow, refusing other
   formats and anything over :data:`MAX_PIXELS` *before* decoding it;
2. flatten transparency onto a background that contrasts with the ink;
3. grayscale, and invert when the background (border median) is light;
4. stretch contrast so the background is 0 and the darkest ink 255;
5. crop to the ink's bounding box, fit it into 20x20 keeping the aspect ratio;
6. paste into 28x28 with the centre of mass at the centre.

Raw pixel arrays (:func:`pixels_from_array`) are taken as already MNIST-style:
they are validated, never cropped or moved.

Usage::

    from mnist_mlops.imaging import preprocess_image
    pixels = preprocess_image(open("digit.png", "rb").read())  # float32 (28, 28), 0..255

Only numpy and Pillow are imported: the serving image has no torch.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

SIZE = 28  # MNIST field
BOX = 20  # the digit's longer side after scaling, as in MNIST
FORMATS = ("PNG", "JPEG", "BMP", "GIF")
MAX_BYTES = 8 * 1024 * 1024  # a photo of a digit needs far less
MAX_PIXELS = 40_000_000  # checked on the header, before any pixel is decoded
MIN_CONTRAST = 32.0  # ink must differ from the background by this much (0..255 scale)
INK_THRESHOLD = 0.1  # fraction of the contrast above background that counts as ink

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
    return mnist_style(to_grayscale(decode_image(data)))


def decode_image(data: bytes) -> Image.Image:
    """Decode PNG/JPEG/BMP/GIF bytes (GIF: first frame), refusing bombs before decoding."""
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


def to_grayscale(img: Image.Image) -> np.ndarray:
    """Any decoded mode -> float32 (H, W) on a 0..255 scale, transparency flattened."""
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale (PNG): 0..65535 -> 0..255.
        return np.clip(np.asarray(img, dtype=np.float32) / 257.0, 0.0, 255.0)
    if img.mode == "F":
        return np.clip(np.asarray(img, dtype=np.float32), 0.0, 255.0)
    if "A" in img.getbands() or "transparency" in img.info:
        return _flatten_alpha(img.convert("RGBA"))
    return np.asarray(img.convert("L"), dtype=np.float32)


def _flatten_alpha(rgba: Image.Image) -> np.ndarray:
    """Composite onto white, unless the visible strokes are light (white ink on a
    transparent canvas), then onto black: either way the ink stays visible."""
    arr = np.asarray(rgba, dtype=np.float32)
    alpha = arr[..., 3] / 255.0
    gray = np.asarray(rgba.convert("RGB").convert("L"), dtype=np.float32)
    weight = float(alpha.sum())
    ink_is_light = weight > 0 and float((gray * alpha).sum()) / weight > 127.5
    background = 0.0 if ink_is_light else 255.0
    return gray * alpha + background * (1.0 - alpha)


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """Grayscale (H, W) 0..255, any polarity -> centred MNIST-style float32 (28, 28)."""
    img = np.asarray(gray, dtype=np.float32)
    if img.ndim != 2 or img.size == 0:
        raise ImageError(f"expected a 2-D grayscale image, got shape {img.shape}")
    border = np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])
    if float(np.median(border)) > 127.5:  # light background: dark ink, as on paper
        img, border = 255.0 - img, 255.0 - border
    background = float(np.median(border))
    contrast = float(img.max()) - background
    if contrast < MIN_CONTRAST:
        raise NoInkError(
            "no ink found: the image is blank or has too little contrast; "
            "draw a dark digit on a light background (or light on dark)"
        )
    # Background -> 0, strongest ink -> 255; faint noise below the threshold -> 0.
    img = np.clip((img - background) * (255.0 / contrast), 0.0, 255.0)
    img[img < 255.0 * INK_THRESHOLD] = 0.0
    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    digit = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return _centre_by_mass(_fit_box(digit))


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Scale so the longer side is BOX pixels, keeping the aspect ratio (anti-aliased)."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # float32 -> mode "F": full precision; LANCZOS anti-aliases when shrinking, as MNIST did.
    resized = Image.fromarray(digit).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste into SIZE x SIZE so the centre of mass lands on the centre (whole pixels)."""
    height, width = digit.shape
    total = float(digit.sum())
    if total > 0:
        com_r = float((digit.sum(axis=1) * np.arange(height)).sum()) / total
        com_c = float((digit.sum(axis=0) * np.arange(width)).sum()) / total
    else:  # only possible if resizing wiped a tiny speck; centre the box instead
        com_r, com_c = (height - 1) / 2, (width - 1) / 2
    # Clamp so a lopsided digit is shifted as far as it can go but never cut off.
    top = min(max(round(SIZE / 2 - com_r), 0), SIZE - height)
    left = min(max(round(SIZE / 2 - com_c), 0), SIZE - width)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return out


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
