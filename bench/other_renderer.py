"""Scenes of the shapes world's 30 classes drawn by other code, to test what the models learned.

Nothing here comes from ``clip_widgets.world``: shapes are rasterized from their own geometry
(supersampled masks, not Pillow polygons), colours are drawn in HSV around their own hues,
backgrounds come from scikit-image's photographs and textures or from noise, dark and tinted
fields, and words are set in DejaVu fonts, not the font the training world writes with.
Only the class names are shared: that is what a zero-shot prompt names.

    from other_renderer import CONDITIONS, render
    image, mask = render(np.random.default_rng(0), "red", "star", condition="photo")
"""

from __future__ import annotations

import colorsys
import math
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from skimage import data as skdata
from skimage.draw import polygon as fill_polygon

HUES = {"red": 0.0, "orange": 0.075, "yellow": 0.15, "green": 0.35, "blue": 0.62, "purple": 0.78}
SHAPE_NAMES = ("circle", "square", "triangle", "cross", "star")
CONDITIONS = ("close", "photo", "texture", "noise", "dark", "tinted", "small", "large", "camera")
"""``close``: a soft grey field, mid sizes (near the training world's look); ``photo``,
``texture``, ``noise``, ``dark``, ``tinted``: other backgrounds; ``small`` (radius 0.06-0.11 of
the side) and ``large`` (0.28-0.36); ``camera``: colour jitter, blur and strong sensor noise."""
NEUTRAL_WORDS = {4: ("lamp", "door", "milk"), 5: ("house", "chair", "bread"), 6: ("window", "garden", "pencil"),
                 8: ("umbrella", "elephant", "sandwich")}  # fmt: skip
"""Words no training caption or scene uses, with the lengths of the shape names."""
FONTS = Path("/usr/share/fonts/truetype/dejavu")
SUPERSAMPLE = 4


def colour_rgb(rng: np.random.Generator, colour: str) -> np.ndarray:
    """An RGB (0..255) of the named colour: its hue, jittered, at a high saturation and value."""
    hue = (HUES[colour] + rng.normal(0, 0.012)) % 1.0
    saturation = rng.uniform(0.75, 1.0)
    value = rng.uniform(0.75, 1.0) if colour != "purple" else rng.uniform(0.55, 0.8)
    return np.array(colorsys.hsv_to_rgb(hue, saturation, value)) * 255


def shape_mask(shape: str, side: int, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """(side, side) float coverage in 0..1 of a shape, rasterized at 4x and averaged down."""
    big = side * SUPERSAMPLE
    cx, cy, r = center[0] * SUPERSAMPLE, center[1] * SUPERSAMPLE, radius * SUPERSAMPLE
    canvas = np.zeros((big, big), np.float32)
    if shape == "circle":
        yy, xx = np.mgrid[0:big, 0:big] + 0.5
        canvas[(xx - cx) ** 2 + (yy - cy) ** 2 <= r**2] = 1
    else:
        if shape == "square":
            outline = [(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)]
        elif shape == "triangle":
            outline = [(0.0, -1.0), (0.87, 0.6), (-0.87, 0.6)]
        elif shape == "cross":
            a = 0.33
            outline = [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a),
                       (-1, -a), (-a, -a)]  # fmt: skip
        elif shape == "star":
            outline = [(0.5 ** (k % 2) * math.sin(k * math.pi / 5), -(0.5 ** (k % 2)) * math.cos(k * math.pi / 5))
                       for k in range(10)]  # fmt: skip
        else:
            raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPE_NAMES}")
        c, s = math.cos(angle), math.sin(angle)
        xs = [cx + r * (x * c - y * s) for x, y in outline]
        ys = [cy + r * (x * s + y * c) for x, y in outline]
        rows, cols = fill_polygon(ys, xs, canvas.shape)
        canvas[rows, cols] = 1
    return canvas.reshape(side, SUPERSAMPLE, side, SUPERSAMPLE).mean((1, 3))


@cache
def _photos() -> list[np.ndarray]:
    names = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "moon")
    photos = []
    for name in names:
        image = getattr(skdata, name)()
        photos.append(np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3])
    return photos


@cache
def _textures() -> list[np.ndarray]:
    return [np.repeat(getattr(skdata, name)()[..., None], 3, -1) for name in ("brick", "grass", "gravel")]


def _crop(rng: np.random.Generator, image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    crop = int(rng.integers(min(h, w) // 4, min(h, w) + 1))
    top, left = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    piece = Image.fromarray(np.ascontiguousarray(image[top : top + crop, left : left + crop]))
    return np.asarray(piece.resize((side, side), Image.LANCZOS), np.float32)


def background(rng: np.random.Generator, condition: str, side: int) -> np.ndarray:
    """(side, side, 3) float background for a condition."""
    if condition == "photo":
        pixels = _crop(rng, _photos()[int(rng.integers(len(_photos())))], side)
        grey = pixels.mean(-1, keepdims=True)
        return grey + 0.6 * (pixels - grey)  # the named colours stay the most saturated thing in view
    if condition == "texture":
        texture = _crop(rng, _textures()[int(rng.integers(len(_textures())))], side)
        return (texture - texture.mean()) * rng.uniform(0.8, 1.5) + rng.uniform(80, 170)
    if condition == "noise":
        return rng.uniform(0, 255, (side, side, 1 if rng.random() < 0.5 else 3)) * np.ones(3)
    if condition == "dark":
        return np.full((side, side, 3), rng.uniform(0, 40)) + rng.normal(0, 3, (side, side, 3))
    if condition == "tinted":
        hue = rng.uniform(0, 1)
        rgb = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.25, 0.45), rng.uniform(0.35, 0.85))) * 255
        return np.ones((side, side, 3)) * rgb
    # close, small, large, camera: a soft grey gradient
    yy, xx = np.mgrid[0:side, 0:side] / side
    ramp = (xx * rng.normal() + yy * rng.normal()) * 30
    return np.ones((side, side, 3)) * (rng.uniform(90, 170) + ramp)[..., None]


def radius_for(rng: np.random.Generator, condition: str, side: int) -> float:
    low, high = {"small": (0.06, 0.11), "large": (0.28, 0.36)}.get(condition, (0.12, 0.26))
    return rng.uniform(low, high) * side


def render(
    rng: np.random.Generator, colour: str, shape: str, *, condition: str = "close", side: int = 64
) -> tuple[Image.Image, np.ndarray]:
    """One shape of a class over a background of ``condition``; returns the image and its mask."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose one of {CONDITIONS}")
    pixels = background(rng, condition, side)
    radius = radius_for(rng, condition, side)
    center = (rng.uniform(radius, side - radius), rng.uniform(radius, side - radius))
    coverage = shape_mask(shape, side, center, radius, rng.uniform(0, 2 * math.pi))[..., None]
    pixels = pixels * (1 - coverage) + colour_rgb(rng, colour) * coverage
    if condition == "camera":
        pixels = pixels * rng.uniform(0.8, 1.15, 3) + rng.uniform(-25, 25)
        pixels = np.asarray(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
            ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9))), np.float32)  # fmt: skip
        pixels = pixels + rng.normal(0, rng.uniform(10, 22), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), coverage[..., 0] > 0.5


def write(rng: np.random.Generator, image: Image.Image, word: str, avoid: np.ndarray | None = None,
          height: float = 0.2) -> Image.Image:  # fmt: skip
    """Write ``word`` in a DejaVu font, about ``height`` of the side tall, where it covers the
    least of ``avoid`` (a mask), in black or white, whichever stands out more there."""
    side = image.size[0]
    font_file = ("DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf")[int(rng.integers(3))]
    points = max(7, int(height * side))
    font = ImageFont.truetype(str(FONTS / font_file), points)
    while points > 7 and ImageDraw.Draw(image).textbbox((0, 0), word, font=font)[2] > side - 2:
        points -= 1
        font = ImageFont.truetype(str(FONTS / font_file), points)
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((0, 0), word, font=font)
    width, tall = right - left, bottom - top
    best, best_cost = (0, 0), math.inf
    for _ in range(12):  # the least-covering of a few random places
        x, y = int(rng.integers(0, max(1, side - width))), int(rng.integers(0, max(1, side - tall)))
        cost = 0.0 if avoid is None else float(avoid[y : y + tall, x : x + width].sum())
        if cost < best_cost:
            best, best_cost = (x, y), cost
    x, y = best
    under = np.asarray(image, np.float32)[y : y + tall, x : x + width].mean() if width and tall else 128
    out = image.copy()
    ImageDraw.Draw(out).text((x - left, y - top), word, fill=(15, 15, 15) if under > 110 else (240, 240, 240),
                             font=font)  # fmt: skip
    return out


def neutral_word(rng: np.random.Generator, length: int) -> str:
    """A word of ``length`` letters that no training caption or scene uses."""
    return str(rng.choice(NEUTRAL_WORDS[length]))


def word_image(rng: np.random.Generator, word: str, *, condition: str = "close", side: int = 64) -> Image.Image:
    """Only the word, written large over a background of ``condition``."""
    base = Image.fromarray(np.clip(background(rng, condition, side), 0, 255).astype(np.uint8))
    return write(rng, base, word, height=rng.uniform(0.22, 0.3))
