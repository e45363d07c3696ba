"""Uploaded image -> the 28x28 MNIST-style array the model reads, in the order it happens.

The model only knows MNIST: white ink (up to 255) on black, the digit scaled into a 20x20
box and centred by mass in a 28x28 field. Photos and drawings look nothing like that, so
:func:`preprocess_image` redoes what LeCun et al. did to build MNIST, after first finding
the digit on the page:

1. decode (:mod:`.decode`): PNG / JPEG / BMP / GIF only, bombs refused from the header;
2. orient and shrink (:mod:`.decode`): EXIF rotation, transparency flattened, <= WORK px;
3. find the ink (:mod:`.paper` estimates the paper, :mod:`.ink` thresholds and keeps the
   digit's components, dropping dust, ruled lines and page edges);
4. normalise the stroke width, fit into 20x20 and centre by mass (:mod:`.stroke`).

Raw pixel arrays (:func:`pixels_from_array`) are taken as already MNIST-style: validated,
never cropped or moved. Only numpy, Pillow and OpenCV are imported: no torch.

Usage::

    from mnist_mlops.imaging import preprocess_image
    pixels = preprocess_image(open("digit.png", "rb").read())  # float32 (28, 28), 0..255
"""

from __future__ import annotations

import numpy as np
from PIL import ImageOps

from mnist_mlops.imaging.decode import (
    ACCEPTED,
    FORMATS,
    MAX_BYTES,
    MAX_PIXELS,
    WORK,
    decode_image,
    shrink,
    to_channels,
)
from mnist_mlops.imaging.errors import (
    ImageError,
    ImageTooLargeError,
    NoInkError,
    UnsupportedFormatError,
)
from mnist_mlops.imaging.ink import find_ink
from mnist_mlops.imaging.pixels import pixels_from_array, to_uint8
from mnist_mlops.imaging.stroke import SIZE, mnist_field

MIN_CONTRAST = 32.0  # ink must differ from the background by this much (0..255 scale)

__all__ = [
    "ACCEPTED",
    "FORMATS",
    "MAX_BYTES",
    "MAX_PIXELS",
    "MIN_CONTRAST",
    "SIZE",
    "WORK",
    "ImageError",
    "ImageTooLargeError",
    "NoInkError",
    "UnsupportedFormatError",
    "decode_image",
    "mnist_style",
    "pixels_from_array",
    "preprocess_image",
    "to_uint8",
]


def preprocess_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> MNIST-style float32 (28, 28), values 0..255 (steps 1-4)."""
    image = ImageOps.exif_transpose(decode_image(data, draft=WORK))
    return mnist_style(to_channels(shrink(image)))


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
