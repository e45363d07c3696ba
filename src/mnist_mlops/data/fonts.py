"""Fonts to type digits in: the ones matplotlib ships, so no system fonts are needed.

The 'fonts' field set (evaluation) types in :data:`FIELD_FONTS`; the prepare stage
(training data) must type in other fonts, and checks against this list. It lives here,
apart from both, so training data does not depend on the evaluation code.
"""

from __future__ import annotations

from pathlib import Path

FIELD_FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
)


def font_dir() -> Path:
    """matplotlib's bundled TrueType folder."""
    import matplotlib  # heavy; only the callers that type digits need it

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"
