"""What can be wrong with an upload, as types a caller maps to a response (HTTP 4xx, a skip)."""

from __future__ import annotations


class ImageError(ValueError):
    """The input cannot be turned into a digit image; the message says why and what to send."""


class UnsupportedFormatError(ImageError):
    """A recognisable image in a format we do not decode (TIFF, WebP, SVG...)."""


class ImageTooLargeError(ImageError):
    """Too many bytes or pixels: refused before decoding (decompression-bomb defence)."""


class NoInkError(ImageError):
    """A valid image with nothing drawn on it (blank, or too little contrast)."""
