"""Batched augmentation of uint8 digit images, as torch ops on the training device.

What preprocessing hands the model varies in place, angle, size, shape and stroke (a 2 px pen
and a 90 px marker both end up near MNIST's stroke width, but not exactly): these ops draw
that variation for a whole batch at once, so augmentation costs no per-image Python work and
runs where the batch lives (GPU when present).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    x: torch.Tensor, max_degrees: float, max_scale: float, elastic: float = 0.0
) -> torch.Tensor:
    """Rotate each image by up to ``max_degrees``, scale it by up to ``1 ± max_scale`` and,
    with ``elastic`` > 0, bend it by a smooth random field of about that many pixels.

    One sampling grid + bilinear ``grid_sample`` on the batch's device: an MLP
    has no built-in invariance to small deformations, so it has to see them.
    Returns float pixels on the input's 0..255 scale.
    """
    n = x.shape[0]
    imgs = x.reshape(n, 1, 28, 28).to(torch.float32)
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(max_degrees)
    scale = 1 + (torch.rand(n, device=x.device) * 2 - 1) * max_scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(imgs.shape), align_corners=False)
    if elastic > 0:
        # Smooth noise: white noise on a coarse 4x4 grid, upsampled bicubically.
        coarse = torch.randn(n, 2, 4, 4, device=x.device) * (elastic * 2 / 28)
        field = F.interpolate(coarse, size=(28, 28), mode="bicubic", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1)
    return F.grid_sample(imgs, grid, align_corners=False).reshape(n, 28, 28)


def _neighbours(imgs: torch.Tensor) -> torch.Tensor:
    """The 3x3 neighbourhood of every pixel as 9 shifted views (9, N, 28, 28), zero-padded.

    Slicing a padded tensor is several times faster on CPU than max_pool2d/conv2d with
    stride 1 on single-channel 28x28 images.
    """
    padded = F.pad(imgs, (1, 1, 1, 1))
    return torch.stack([padded[:, r : r + 28, c : c + 28] for r in range(3) for c in range(3)])


def random_stroke(x: torch.Tensor, max_change: float, max_blur: float) -> torch.Tensor:
    """Thicken or thin each image's strokes and soften its edges by a random amount.

    A 3x3 max (dilation) or min (erosion) filter changes a stroke by 2 px, too
    coarse at 28x28, so each image mixes in a random fraction (up to
    ``max_change``) of one of them: continuous widths, as a pen, a marker or
    the preprocessing's width normalisation leave them. Then a random fraction
    (up to ``max_blur``) of a 3x3 blur: focus and JPEG softness.
    """
    n = x.shape[0]
    imgs = x.reshape(n, 28, 28).to(torch.float32)
    views = _neighbours(imgs)
    dilated, eroded = views.amax(0), views.amin(0)
    amount = (torch.rand(n, 1, 1, device=x.device) * 2 - 1) * max_change
    out = imgs + amount.clamp(min=0) * (dilated - imgs) + (-amount).clamp(min=0) * (eroded - imgs)
    if max_blur > 0:
        weights = torch.tensor([1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0], device=x.device) / 16
        blurred = (_neighbours(out) * weights[:, None, None, None]).sum(0)
        mix = torch.rand(n, 1, 1, device=x.device) * max_blur
        out = out + mix * (blurred - out)
    return out.reshape(n, 28, 28)


def random_shift(
    x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by its own random whole-pixel offset in [-max_shift, max_shift].

    Done on the batch, on its device, by padding and gathering a shifted window,
    so augmentation costs no CPU work per image.
    """
    n = x.shape[0]
    imgs = x.reshape(n, 28, 28)
    padded = F.pad(imgs, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=x.device, generator=generator)
    rows = torch.arange(28, device=x.device)[None, :] + offsets[0][:, None]  # (n, 28)
    cols = torch.arange(28, device=x.device)[None, :] + offsets[1][:, None]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]
