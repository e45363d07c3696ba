"""Preprocessing speed: a 200x200 PNG drawing, a 12-megapixel phone JPEG and a PNG bomb.

    PYTHONPATH=src python bench/preprocess_speed.py
    PYTHONPATH=src python bench/preprocess_speed.py --repeat 50 --out /tmp/x.json
    PYTHONPATH=src python bench/preprocess_speed.py --quick --out /tmp/x.json  # runs?

For each image, in one run: (a) the baseline, Pillow decoding the whole image and
nothing else (what any server pays to look at an upload), and (b) our
``imaging.preprocess_image`` (JPEG draft decode, EXIF, background, threshold,
components, stroke width, 28x28). Median over ``--repeat`` runs after a warm-up;
the ratio (b)/(a) is what to compare across machines, not the milliseconds. The
bomb is a 200-byte PNG whose header claims 20,000x20,000 pixels: (b) is the time to
refuse it, and its ratio is against decoding the drawing, the cheapest real upload
(the bomb itself cannot be decoded), so a refusal that read pixel data would show.
Prints a table and writes JSON (bench/results/preprocess_speed.json by default).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mnist_mlops import imaging


def drawing_png() -> bytes:
    """A "7" drawn on the page's 200x200 canvas: white strokes on black."""
    img = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(img).line([(50, 40), (150, 40), (90, 170)], fill=255, width=14)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def phone_jpeg() -> bytes:
    """A 4000x3000 photo of a "7" on grainy paper with a light gradient, EXIF-rotated."""
    rng = np.random.default_rng(0)
    img = Image.new("L", (4000, 3000), 0)
    ImageDraw.Draw(img).line([(1500, 800), (2500, 800), (1900, 2300)], fill=255, width=110)
    ink = np.asarray(img, dtype=np.float32)[..., None] / 255.0
    gradient = np.linspace(1.0, 0.7, 4000, dtype=np.float32)[None, :, None]
    paper = np.array([215.0, 205.0, 185.0], dtype=np.float32) * gradient
    rgb = paper * (1 - ink) + 40.0 * ink + rng.normal(0, 6, (3000, 1, 1)).astype(np.float32)
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    photo = photo.filter(ImageFilter.GaussianBlur(1.5)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # as a phone held upright stores it
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=88, exif=exif.tobytes())
    return buffer.getvalue()


def png_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny 8x8 PNG whose header (IHDR, CRC fixed) claims ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def refuse(data: bytes) -> None:
    """Preprocess an image that must be refused for its size."""
    try:
        imaging.preprocess_image(data)
    except imaging.ImageTooLargeError:
        return
    raise AssertionError("the bomb was not refused")


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", default="bench/results/preprocess_speed.json")
    parser.add_argument("--quick", action="store_true", help="--repeat 2: proves it runs")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 2
    rows = []
    drawing, bomb = drawing_png(), png_bomb()
    cases = (
        ("200x200 PNG drawing", drawing, drawing, imaging.preprocess_image),
        ("12-MP JPEG photo", (photo := phone_jpeg()), photo, imaging.preprocess_image),
        ("PNG bomb, refused", bomb, drawing, refuse),
    )
    for name, data, baseline, ours_fn in cases:
        decode = median_ms(lambda d=baseline: full_decode(d), args.repeat)
        ours = median_ms(lambda d=data, f=ours_fn: f(d), args.repeat)
        rows.append(
            {"image": name, "bytes": len(data), "decode_ms": round(decode, 2),
             "preprocess_ms": round(ours, 2), "ratio": round(ours / decode, 3)}
        )  # fmt: skip
    print(f"{'image':22s} {'bytes':>9s} {'decode ms':>10s} {'preprocess ms':>14s} {'ratio':>6s}")
    for r in rows:
        print(
            f"{r['image']:22s} {r['bytes']:9d} {r['decode_ms']:10.2f} "
            f"{r['preprocess_ms']:14.2f} {r['ratio']:6.2f}"
        )
    result = {
        "rows": rows,
        "repeat": args.repeat,
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
