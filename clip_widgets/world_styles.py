"""The varied look of the shapes world: many kinds of background and a camera's imperfections.

The plain world (:func:`clip_widgets.world.draw_scene` with ``style="plain"``) draws shapes over
soft, desaturated textures at two sizes. A model trained only on that learns shortcuts that
break on any other renderer: the shape's edge against a mid-grey field, not the shape. The
varied style draws the same objects over photographs, strong textures, pixel noise, dark and
tinted fields, at radii from 0.06 to 0.36 of the side, then jitters the colours and adds sensor
noise and blur, so that what stays constant is what the caption names: the colour and the shape.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageFilter

BACKGROUNDS = ("texture", "photo", "noise", "dark", "tinted", "blobs", "flat")
"""Kinds of background in the varied style (``photo`` needs photographs, else a texture is drawn)."""
RADIUS_RANGE = (0.06, 0.36)
"""Radius of a lone shape in the varied style, as a fraction of the side; shapes in a crowd stay under 0.26."""


def _smooth_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    noise = Image.fromarray(rng.uniform(0, 255, (size, size)).astype(np.uint8))
    field = np.asarray(noise.filter(ImageFilter.GaussianBlur(sigma)), np.float32) - 128
    return field / max(1e-3, float(np.abs(field).max()))


def varied_background(rng: np.random.Generator, size: int, photos: np.ndarray | None = None) -> np.ndarray:
    """(size, size, 3) float32 in 0..255. Colours are kept below the saturation of the named
    colours (photos are partly desaturated), so the object's colour stays the one to name."""
    kind = str(rng.choice(BACKGROUNDS))
    if kind == "photo" and photos is None:
        kind = "texture"
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == "photo":
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(max(8, min(h, w) // 2), min(h, w) + 1))
        top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((size, size), Image.BILINEAR)
        pixels = np.asarray(crop, np.float32)
        grey = pixels.mean(-1, keepdims=True)
        pixels = grey + rng.uniform(0.2, 0.7) * (pixels - grey)
    elif kind == "noise":  # pixel noise, grey or coloured, at one of a few grain sizes
        grain = int(rng.choice([1, 2, 4]))
        cells = -(-size // grain)
        channels = 3 if rng.random() < 0.5 else 1
        noise = rng.uniform(-1, 1, (cells, cells, channels)) * rng.uniform(30, 130)  # up to the full range
        noise = np.repeat(np.repeat(noise, grain, 0), grain, 1)[:size, :size]
        pixels = rng.uniform(70, 180) + np.broadcast_to(noise, (size, size, 3))
    elif kind == "dark":
        pixels = rng.uniform(0, 45) + 15 * _smooth_field(rng, size, 3)[..., None] + np.zeros(3)
    elif kind == "tinted":  # a pale or deep field of one hue
        hue = rng.uniform(0, 2 * math.pi)
        tint = 45 * np.array([math.cos(hue), math.cos(hue - 2.1), math.cos(hue + 2.1)])
        pixels = rng.uniform(60, 200) + tint + 12 * _smooth_field(rng, size, 4)[..., None]
    elif kind == "blobs":  # large soft shapes of several greys
        pixels = rng.uniform(70, 180) + 70 * _smooth_field(rng, size, size / 10)[..., None] + np.zeros(3)
    elif kind == "flat":
        pixels = np.full((size, size, 3), rng.uniform(20, 235), np.float32)
    else:  # texture: stripes or checks at a strong contrast
        frequency = rng.uniform(2, 14)
        direction = rng.uniform(0, math.pi)
        phase = xx * math.cos(direction) + yy * math.sin(direction)
        wave = np.sin(2 * math.pi * frequency * phase)
        if rng.random() < 0.5:
            cells = int(rng.integers(3, 12))
            wave = ((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 * 2 - 1.0
        pixels = rng.uniform(70, 180) + rng.uniform(15, 60) * wave[..., None] + rng.normal(0, 10, 3)
    return np.clip(pixels, 0, 255).astype(np.float32)


def camera(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Lighting, white balance, blur and sensor noise, as a different camera would add them."""
    pixels = np.asarray(image, np.float32)
    gain = rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3)  # exposure and white balance
    contrast = rng.uniform(0.75, 1.15)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean
    pixels = pixels * gain + rng.uniform(-20, 20)
    out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * image.size[0] / 64))
    noise = rng.normal(0, rng.uniform(0, 14), (*pixels.shape[:2], 3))
    return Image.fromarray(np.clip(np.asarray(out, np.float32) + noise, 0, 255).astype(np.uint8))
