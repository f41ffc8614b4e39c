"""A procedural world of coloured shapes with captions and ground-truth masks.

Every scene is drawn from a seed (Pillow + numpy, deterministic): one to a few shapes in named
colours, sizes and positions over a textured, desaturated background, sometimes with a word
written into the image. Each scene carries its caption ("a red circle and a large blue
square") and, per object, a mask and a label, so explanation methods can be scored against
ground truth. The embedded model is trained on this world; users can draw scenes too::

    from clip_widgets.world import draw_scene
    scene = draw_scene(7)
    scene.image, scene.caption, scene.masks, scene.labels
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 160, 55),
    "blue": (35, 75, 220),
    "yellow": (240, 210, 30),
    "purple": (135, 50, 175),
    "orange": (245, 130, 20),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "star")
CLASSES: tuple[str, ...] = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)
"""The 30 colour x shape classes."""
WORDS: tuple[str, ...] = (*COLOURS, *SHAPES, "cat", "dog", "car", "ship", "apple", "ipod", "bird", "truck")
"""Words that may be written into scenes."""

_SIZES = {"small": (0.11, 0.15), "large": (0.19, 0.25)}  # radius as a fraction of the image side


@dataclass
class SceneObject:
    """One shape: what it is, where it is and exactly which pixels it covers."""

    shape: str
    colour: str
    size: str
    center: tuple[float, float]
    radius: float
    mask: np.ndarray = field(repr=False)
    size_in_caption: bool = True

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    """An image with its caption and ground truth."""

    image: Image.Image
    caption: str
    objects: list[SceneObject]
    word: str | None = None
    word_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def masks(self) -> np.ndarray:
        """(objects, H, W) bool: the visible pixels of each object."""
        return np.stack([o.mask for o in self.objects])

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.objects]


def shape_polygon(shape: str, center: tuple[float, float], radius: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a shape (circles are many-sided polygons) around ``center``, rotated by ``angle``."""
    cx, cy = center
    if shape == "circle":
        points = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
    elif shape == "square":
        s = 0.8
        points = [(-s, -s), (s, -s), (s, s), (-s, s)]
    elif shape == "triangle":
        points = [(math.cos(t), math.sin(t)) for t in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "cross":
        a, b = 0.3, 0.95
        points = [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
                  (-a, -a)]  # fmt: skip
    elif shape == "star":
        points = [
            ((1.0 if k % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
             (1.0 if k % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5))
            for k in range(10)
        ]  # fmt: skip
    else:
        raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in points]


def _background(rng: np.random.Generator, size: int) -> Image.Image:
    """A textured, desaturated background, so object colours stay unambiguous."""
    base = rng.uniform(60, 200)
    tint = rng.normal(0, 8, 3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = rng.integers(4)
    if kind == 0:  # gradient
        direction = rng.uniform(0, 2 * math.pi)
        field_ = (xx * math.cos(direction) + yy * math.sin(direction)) * rng.uniform(-60, 60)
    elif kind == 1:  # blurred noise
        noise = Image.fromarray(rng.uniform(0, 255, (size, size)).astype(np.uint8))
        field_ = (np.asarray(noise.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4))), np.float32) - 128) * 1.5
    elif kind == 2:  # stripes
        frequency = rng.uniform(3, 10)
        direction = rng.uniform(0, math.pi)
        field_ = 25 * np.sin(2 * math.pi * frequency * (xx * math.cos(direction) + yy * math.sin(direction)))
    else:  # checks
        cells = rng.integers(3, 9)
        field_ = 20 * (((xx * cells).astype(int) + (yy * cells).astype(int)) % 2 * 2 - 1)
    pixels = base + field_[..., None] + tint + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def class_prompt(label: str) -> str:
    """The zero-shot prompt for a class: 'a red circle', 'an orange star'."""
    return _with_article(label)


def caption_for(objects: list[SceneObject], word: str | None = None) -> str:
    """'a red circle and a large blue square', plus ', with the word "cat"' when a word is written.
    An object's size is named only when its ``size_in_caption`` is set."""
    names = [_with_article(f"{o.size + ' ' if o.size_in_caption else ''}{o.colour} {o.shape}") for o in objects]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    if word:
        text += f', with the word "{word}"'
    return text


def draw_scene(
    seed: int | np.random.Generator,
    *,
    size: int = 64,
    objects: int | tuple[int, int] = (1, 3),
    word_probability: float = 0.25,
    words: tuple[str, ...] = WORDS,
    spec: list[tuple[str, str]] | None = None,
    word: str | None = None,
) -> Scene:
    """Draw one scene. ``objects`` is a count or an inclusive range; ``spec`` fixes the
    (colour, shape) of each object; ``word`` forces a written word (else one is written with
    ``word_probability``). Same seed and arguments, same scene."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    image = _background(rng, size)
    if spec is None:
        count = objects if isinstance(objects, int) else int(rng.integers(objects[0], objects[1] + 1))
        spec = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))) for _ in range(count)]
    draw = ImageDraw.Draw(image)
    placed: list[SceneObject] = []
    occupied = np.zeros((size, size), bool)
    for colour, shape in spec:
        if colour not in COLOURS or shape not in SHAPES:
            raise ValueError(f"unknown object {colour!r} {shape!r}; colours {list(COLOURS)}, shapes {SHAPES}")
        # captions name the size only half the time, so "a red circle" describes a lone shape of
        # either size, as zero-shot prompts do
        size_name = "large" if rng.random() < (0.6 if len(spec) == 1 else 0.35) else "small"
        size_in_caption = bool(rng.random() < 0.5)
        radius = rng.uniform(*_SIZES[size_name]) * size
        for _ in range(50):  # rejection sampling keeps objects from covering each other much
            center = (rng.uniform(radius, size - radius), rng.uniform(radius, size - radius))
            if all(math.dist(center, o.center) > 0.9 * (radius + o.radius) for o in placed):
                break
        # the angle is drawn for circles too, so scenes that differ only in one object's shape or
        # colour (same seed, edited spec) share background, sizes, places and word
        angle = rng.uniform(0, 2 * math.pi)
        polygon = shape_polygon(shape, center, radius, angle if shape != "circle" else 0.0)
        fill = tuple(int(np.clip(c + rng.normal(0, 10), 0, 255)) for c in COLOURS[colour])
        draw.polygon(polygon, fill=fill)
        mask_image = Image.new("L", (size, size))
        ImageDraw.Draw(mask_image).polygon(polygon, fill=255)
        mask = np.asarray(mask_image) > 127
        for other in placed:  # later shapes are drawn on top
            other.mask &= ~mask
        occupied |= mask
        placed.append(SceneObject(shape, colour, size_name, center, radius, mask, size_in_caption))

    word_mask = None
    if word is None and rng.random() < word_probability:
        word = str(rng.choice(words))
    if word:
        font = _font(int(rng.integers(max(9, size // 6), max(10, size // 4))))
        box = draw.textbbox((0, 0), word, font=font)
        width, height = box[2] - box[0], box[3] - box[1]
        x = rng.uniform(0, max(1, size - width)) - box[0]
        y = rng.uniform(0, max(1, size - height)) - box[1]
        ink = (20, 20, 20) if rng.random() < 0.5 else (245, 245, 245)
        draw.text((x, y), word, fill=ink, font=font)
        text_image = Image.new("L", (size, size))
        ImageDraw.Draw(text_image).text((x, y), word, fill=255, font=font)
        word_mask = np.asarray(text_image) > 127
    return Scene(image=image, caption=caption_for(placed, word), objects=placed, word=word, word_mask=word_mask)
