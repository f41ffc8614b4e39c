"""Random transforms for transformation robustness.

An image that excites a unit only at one exact pixel alignment is an adversarial pattern, not a
feature. Each optimization step sees the image padded, jittered, scaled and rotated at random,
so what survives is what the unit responds to robustly. Every transform is a callable
``(images, generator) -> images`` on ``(N, 3, H, W)`` batches; each image in a batch gets its own
random draw (one batch may optimize many different units), and a seeded generator makes a
render reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _choose(values: Sequence[float], n: int, generator: torch.Generator | None, device) -> torch.Tensor:
    index = torch.randint(len(values), (n,), generator=generator)
    return torch.tensor([float(v) for v in values])[index].to(device)


def pad(width: int, value: float = 0.5) -> Transform:
    """Pad every side by ``width`` pixels of constant ``value`` (grey), so jitter and rotation
    have margin to move into without wrapping."""

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.pad(images, (width,) * 4, mode="constant", value=value)

    return transform


def jitter(distance: int) -> Transform:
    """Shift each image by up to ``distance`` - 1 pixels in x and y (a random crop that loses
    ``distance`` - 1 pixels of each dimension)."""
    if distance < 1:
        raise ValueError(f"jitter distance must be >= 1, got {distance}")

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if distance == 1:
            return images
        n, _, h, w = images.shape
        dy = torch.randint(distance, (n,), generator=generator).tolist()
        dx = torch.randint(distance, (n,), generator=generator).tolist()
        crop_h, crop_w = h - distance + 1, w - distance + 1
        return torch.stack([images[i, :, dy[i] : dy[i] + crop_h, dx[i] : dx[i] + crop_w] for i in range(n)])

    return transform


def _affine(images: torch.Tensor, scale: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Scale and rotate each image about its centre (bilinear, border pixels repeat)."""
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom each image about its centre by a factor drawn from ``scales`` (same output size)."""

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        scale = _choose(scales, len(images), generator, images.device)
        return _affine(images, scale, torch.zeros_like(scale))

    return transform


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotate each image about its centre by an angle (degrees) drawn from ``degrees``."""

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        angle = _choose(degrees, len(images), generator, images.device) * (math.pi / 180)
        return _affine(images, torch.ones_like(angle), angle)

    return transform


def random_crop(min_scale: float = 0.5, noise: float = 0.0) -> Transform:
    """Crop each image to a random square-ish box of ``min_scale``..1 of its sides and resize it
    back, then add Gaussian pixel noise of standard deviation ``noise`` (MACO's crops and noise):
    a feature must show at many positions and zooms, and survive noise, to be kept."""
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = images.shape
        scale = min_scale + (1 - min_scale) * torch.rand(n, generator=generator)
        # an affine grid crops and resizes every image of the batch in one call
        offset_y = (torch.rand(n, generator=generator) * 2 - 1) * (1 - scale)
        offset_x = (torch.rand(n, generator=generator) * 2 - 1) * (1 - scale)
        zero = torch.zeros(n)
        theta = torch.stack([torch.stack([scale, zero, offset_x], -1), torch.stack([zero, scale, offset_y], -1)], 1)
        grid = F.affine_grid(theta.to(images), [n, 3, h, w], align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if noise:
            out = out + noise * torch.randn(out.shape, generator=generator).to(out)
        return out

    return transform


def random_dihedral() -> Transform:
    """Turn each image by a random multiple of 90 degrees (of 180 when it is not square) and
    mirror it at random: exact, with no resampling or padding. For pictures of things that can
    lie at any angle, such as the world's shapes: evidence tied to one orientation cancels out
    over the draws, an outline does not."""

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = images.shape
        turns = torch.randint(4, (n,), generator=generator) * (1 if h == w else 2)
        mirror = torch.randint(2, (n,), generator=generator).bool()
        return torch.stack([
            torch.rot90(image.flip(-1) if flip else image, int(k) % 4, dims=(1, 2))
            for image, k, flip in zip(images, turns, mirror, strict=True)
        ])  # fmt: skip

    return transform


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def transform(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in transforms:
            images = t(images, generator)
        return images

    return transform


def standard_transforms(size: int) -> list[Transform]:
    """Pad, jitter, scale, rotate, jitter again, with distances proportional to the image
    ``size`` (the values lucid uses at 224 px: 12 px pad, 8 px jitter, +-10 %, +-10 degrees)."""
    unit = max(1, round(size / 224 * 8))
    return [
        pad(max(1, round(size / 224 * 12))),
        jitter(unit),
        random_scale([1 + (i - 5) / 50 for i in range(11)]),
        random_rotate([*range(-10, 11), *[0] * 5]),
        jitter(max(1, unit // 2)),
    ]


def crop_transforms(min_scale: float = 0.4, noise: float = 0.05) -> list[Transform]:
    """MACO's robustness (Fel et al., 2023): one random crop of ``min_scale``..1 of the sides per
    image and step, resized back, plus pixel noise. Larger moves than :func:`standard_transforms`
    (whose few-pixel jitter at 64 px leaves the optimizer free to draw pixel patterns)."""
    return [random_crop(min_scale, noise)]
