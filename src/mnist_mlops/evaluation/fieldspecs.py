"""The ranges each field set draws from: one spec per set, and nothing else decides them.

:mod:`mnist_mlops.evaluation.fieldsets` draws every random choice of an image from
its set's spec, so how hard a set is can be read (and changed) here. A range is
(low, high) for ``rng.uniform``, or for ``rng.integers`` (high excluded) where
the field ends in ``_px`` or ``quality``; a ``share`` is the probability of a trait.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_mlops.data.fonts import FIELD_FONTS

Range = tuple[float, float]
IntRange = tuple[int, int]

MARGIN = 0.45  # the digit's centre stays this share of its height away from the edges


@dataclass(frozen=True)
class PhotoSpec:
    page_px: IntRange  # width and height, each drawn
    digit: Range  # digit height as a share of the page's shorter side
    stroke: Range  # stroke width as a share of the digit height
    rotation_deg: Range
    paper: Range  # grey level of the paper, per channel ...
    paper_tint: Range  # ... times a factor per channel: off-white, yellowish, grey
    ink: Range  # grey level of the ink: black marker to grey pencil ...
    ink_tint: Range  # ... times a factor per channel ...
    ink_blue: Range  # ... and the blue channel once more: blue ballpoint
    light_falloff: Range  # share of brightness lost across the page along the light
    shadow_share: float  # a soft shadow (a hand, the phone) over part of the page
    shadow_edge: Range  # where its edge crosses the page, as a share of width/height
    shadow_depth: Range  # share of brightness lost under it
    shadow_softness: Range  # px: how gradual its edge is
    ruled_share: float  # a notebook's ruled line through the page
    ruled_at: Range  # its height on the page, as a share
    ruled_px: IntRange  # its thickness
    ruled_tint: tuple[float, float, float]  # RGB factors: light blue
    noise_sd: Range  # grey levels of sensor grain
    blur: Range  # Gaussian radius in px: focus and shake
    exif_share: float  # stored rotated, with an EXIF orientation tag that undoes it
    jpeg_quality: IntRange


@dataclass(frozen=True)
class DrawnSpec:
    """A digit redrawn with one tool; its stroke width is either relative or in px."""

    canvas_px: IntRange  # side of the square canvas
    digit: Range  # digit height as a share of the side
    stroke: Range | None  # stroke width as a share of the digit height (at least 1 px) ...
    # ... or in px: the width asked of redraw.stroke_mask; a thin line on a big canvas
    # comes out a little wider (it is scaled up from redraw.BASE_PX, then eroded).
    stroke_px: Range | None
    rotation_deg: Range
    paper: Range | None  # grey level of the paper per channel; None: pure white
    ink: Range  # grey level of the ink per channel ...
    ink_blue: Range  # ... with the blue channel times this
    jpeg_share: float  # saved as JPEG (else PNG)
    jpeg_quality: IntRange

    def __post_init__(self) -> None:
        if (self.stroke is None) == (self.stroke_px is None):
            raise ValueError("DrawnSpec: give exactly one of stroke and stroke_px")


@dataclass(frozen=True)
class CanvasSpec:
    side: int  # px, of the draw page's square canvas (transparent, white strokes)
    digit: Range  # digit height as a share of the side
    stroke_px: Range
    rotation_deg: Range


@dataclass(frozen=True)
class TypedSpec:
    fonts: tuple[str, ...]  # in matplotlib's font folder
    size_px: IntRange  # font size
    # The page around a glyph of font size s, as (factor, pad) for the low and the high
    # end: width ((1, 40), (3, 80)) is drawn from [s + 40, 3 s + 80).
    width: tuple[IntRange, IntRange]
    height: tuple[IntRange, IntRange]
    rotation_deg: Range


PHOTO = PhotoSpec(
    page_px=(480, 900), digit=(0.3, 0.7), stroke=(0.05, 0.12), rotation_deg=(-15, 15),
    paper=(170, 250), paper_tint=(0.9, 1.0), ink=(10, 120), ink_tint=(0.8, 1.0),
    ink_blue=(1, 1.6), light_falloff=(0.15, 0.45), shadow_share=0.6, shadow_edge=(0.2, 0.8),
    shadow_depth=(0.2, 0.45), shadow_softness=(8, 40), ruled_share=0.35, ruled_at=(0.1, 0.9),
    ruled_px=(1, 4), ruled_tint=(0.75, 0.85, 1.0), noise_sd=(3, 10), blur=(0.5, 1.8),
    exif_share=1 / 3, jpeg_quality=(55, 90),
)  # fmt: skip
MARKER = DrawnSpec(
    canvas_px=(700, 1400), digit=(0.35, 0.85), stroke=(0.13, 0.20), stroke_px=None,
    rotation_deg=(-10, 10), paper=None, ink=(0, 80), ink_blue=(1, 3), jpeg_share=0.5,
    jpeg_quality=(70, 95),
)  # fmt: skip
PEN = DrawnSpec(
    canvas_px=(600, 1200), digit=(0.35, 0.85), stroke=None, stroke_px=(1.0, 3.0),
    rotation_deg=(-10, 10), paper=(225, 255), ink=(0, 80), ink_blue=(1, 3), jpeg_share=0.5,
    jpeg_quality=(70, 95),
)  # fmt: skip
CANVAS = CanvasSpec(side=280, digit=(0.4, 0.95), stroke_px=(6, 24), rotation_deg=(-8, 8))
FONTS = TypedSpec(
    fonts=FIELD_FONTS, size_px=(40, 220), width=((1, 40), (3, 80)), height=((1, 60), (2, 120)),
    rotation_deg=(-8, 8),
)  # fmt: skip

# Set name -> spec. The order seeds each set's random stream: add new sets at the end.
SPECS: dict[str, PhotoSpec | DrawnSpec | CanvasSpec | TypedSpec] = {
    "photo": PHOTO,
    "marker": MARKER,
    "pen": PEN,
    "canvas": CANVAS,
    "fonts": FONTS,
}
