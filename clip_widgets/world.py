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

from .world_styles import RADIUS_RANGE, camera, varied_background

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

BOLD_ODDS = 0.5
"""How often a word in a varied or text scene is written in bold (thickened strokes)."""

STYLES = ("plain", "varied")
"""``plain``: soft desaturated textures, two sizes; ``varied``: see :mod:`clip_widgets.world_styles`."""
READABLE: dict[str, str] = {
    **{shape: f"a {shape}" for shape in SHAPES},
    **{word: f"a {word}" for word in ("cat", "dog", "car", "ship", "bird", "truck")},
    "apple": "an apple",
}
"""Words a text scene can show, with the caption that names what each word names."""

_SIZES = {"small": (0.11, 0.15), "large": (0.19, 0.25)}  # radius as a fraction of the image side
_LARGE_FROM = 0.17  # in the varied style, radii from here up are called large


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
    style: str = "plain",
    photos: np.ndarray | None = None,
    nonce_probability: float = 0.0,
) -> Scene:
    """Draw one scene. ``objects`` is a count or an inclusive range; ``spec`` fixes the
    (colour, shape) of each object; ``word`` forces a written word (else one is written with
    ``word_probability``). ``style="varied"`` draws other backgrounds (``photos``, uint8
    (N, h, w, 3), among them), sizes and camera effects. A word written at random is, with
    ``nonce_probability``, a made-up string that the caption leaves out, as captions leave out
    the stray text of real photos; so unknown text teaches the model to look past it.
    Same seed and arguments, same scene."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {STYLES}")
    varied = style == "varied"
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    image = Image.fromarray(varied_background(rng, size, photos).astype(np.uint8)) if varied else _background(rng, size)
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
        if varied:  # the whole range of sizes; a crowd keeps to the smaller ones
            fraction = rng.uniform(RADIUS_RANGE[0], RADIUS_RANGE[1] if len(spec) == 1 else 0.26)
            radius, size_name = fraction * size, "large" if fraction >= _LARGE_FROM else "small"
        for _ in range(50):  # rejection sampling keeps objects from covering each other much
            center = (rng.uniform(radius, size - radius), rng.uniform(radius, size - radius))
            if all(math.dist(center, o.center) > 0.9 * (radius + o.radius) for o in placed):
                break
        # the angle is drawn for circles too, so scenes that differ only in one object's shape or
        # colour (same seed, edited spec) share background, sizes, places and word
        angle = rng.uniform(0, 2 * math.pi)
        polygon = shape_polygon(shape, center, radius, angle if shape != "circle" else 0.0)
        fill = tuple(int(np.clip(c + rng.normal(0, 18 if varied else 10), 0, 255)) for c in COLOURS[colour])
        draw.polygon(polygon, fill=fill)
        mask_image = Image.new("L", (size, size))
        ImageDraw.Draw(mask_image).polygon(polygon, fill=255)
        mask = np.asarray(mask_image) > 127
        for other in placed:  # later shapes are drawn on top
            other.mask &= ~mask
        occupied |= mask
        placed.append(SceneObject(shape, colour, size_name, center, radius, mask, size_in_caption))

    word_mask, named = None, True
    if word is None and rng.random() < word_probability:
        word = str(rng.choice(words))
        if nonce_probability and rng.random() < nonce_probability:  # no draw when off: old scenes stay
            word, named = nonce_word(rng), False
    if word:
        heights = (size // 8, size // 3) if varied else (size // 6, size // 4)
        dark = bool(np.asarray(image).mean() > 120) if varied else None  # legible on any background
        height = int(rng.integers(max(9, heights[0]), max(10, heights[1])))
        bold = int(rng.random() < BOLD_ODDS) if varied else 0  # regular and bold type, as signs and labels use
        word_mask = _write(draw, rng, word, height, size, dark, bold=bold)
    if varied:
        image = camera(image, rng)
    caption = caption_for(placed, word if named else None)
    return Scene(image=image, caption=caption, objects=placed, word=word, word_mask=word_mask)


_ONSETS = (
    *"bcdfghjklmnprstvwz",
    "bl",
    "br",
    "ch",
    "cl",
    "cr",
    "dr",
    "fl",
    "fr",
    "gl",
    "gr",
    "pl",
    "pr",
    "sh",
    "sl",
    "sp",
    "st",
    "str",
    "th",
    "tr",
    "wh",
)
_NUCLEI = (*"aeiou", "ai", "ea", "ee", "oo", "ou")
_CODAS = ("", "", "", *"lmnrst", "ck", "ld", "mp", "nd", "ng", "nt", "rd", "rk", "sh", "st", "ll")


def nonce_word(rng: np.random.Generator) -> str:
    """A made-up, pronounceable lowercase string of 3 to 8 letters ("bodeka", "strun", "gleamp"):
    syllables with English-like clusters, so that unknown writing looks like words a model may
    meet, not one letter pattern it could learn to spot. Never a word the world names."""
    while True:
        word = "".join(
            str(rng.choice(_ONSETS)) + str(rng.choice(_NUCLEI)) + str(rng.choice(_CODAS))
            for _ in range(int(rng.integers(1, 4)))
        )
        if 3 <= len(word) <= 8 and word not in WORDS and word not in READABLE:
            return word


def _write(
    draw: ImageDraw.ImageDraw,
    rng: np.random.Generator,
    word: str,
    height: int,
    size: int,
    dark: bool | None = None,
    region: tuple[float, float, float, float] | None = None,
    bold: int = 0,
) -> np.ndarray:
    """Write ``word`` at a random place (inside ``region``, x0 y0 x1 y1, if given) in near-black
    or near-white ink (``dark`` picks, else chance), its strokes thickened by ``bold`` px;
    returns its mask."""
    font = _font(height)
    box = draw.textbbox((0, 0), word, font=font, stroke_width=bold)
    width, text_height = box[2] - box[0], box[3] - box[1]
    x0, y0, x1, y1 = region or (0, 0, size, size)
    x = x0 + rng.uniform(0, max(1, x1 - x0 - width)) - box[0]
    y = y0 + rng.uniform(0, max(1, y1 - y0 - text_height)) - box[1]
    coin = rng.random() < 0.5  # drawn either way, so a plain scene's later draws stay as they were
    ink = (20, 20, 20) if (coin if dark is None else dark) else (245, 245, 245)
    draw.text((x, y), word, fill=ink, font=font, stroke_width=bold, stroke_fill=ink)
    text_image = Image.new("L", (size, size))
    ImageDraw.Draw(text_image).text((x, y), word, fill=255, font=font, stroke_width=bold, stroke_fill=255)
    return np.asarray(text_image) > 127


def draw_text_scene(
    seed: int | np.random.Generator,
    *,
    size: int = 64,
    text: str | None = None,
    photos: np.ndarray | None = None,
) -> Scene:
    """A scene that shows only writing, captioned with what the writing names, as a caption on
    the web names the thing a sign or label names: "star" is captioned "a star", "red star"
    "a red star", "cat" "a cat". Sometimes the word stands on a sign. ``text`` forces the
    writing (a key of :data:`READABLE` or a colour-shape class), else one is drawn."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if text is None:
        text = str(rng.choice(list(READABLE))) if rng.random() < 0.6 else str(rng.choice(CLASSES))
    if text in READABLE:
        caption = READABLE[text]
    elif text in CLASSES:
        caption = class_prompt(text)
    else:
        raise ValueError(f"cannot caption the writing {text!r}; choose a class or one of {list(READABLE)}")
    image = Image.fromarray(varied_background(rng, size, photos).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    dark_ink, region = bool(np.asarray(image).mean() > 120), None
    if rng.random() < 0.4:  # a sign: a light or dark board behind the word, ink in the other
        w, h = rng.uniform(0.6, 0.95) * size, rng.uniform(0.3, 0.55) * size
        x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
        dark_ink = bool(rng.random() < 0.5)
        shade = int(rng.integers(180, 250) if dark_ink else rng.integers(10, 70))
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=(shade, shade, shade))
        region = (x0, y0, x0 + w, y0 + h)
    height = int(rng.integers(max(9, size // 6), max(10, size // 3)))
    while height > 9 and draw.textbbox((0, 0), text, font=_font(height))[2] > size:
        height -= 1
    word_mask = _write(draw, rng, text, height, size, dark_ink, region, bold=int(rng.random() < BOLD_ODDS))
    image = camera(image, rng)
    return Scene(image=image, caption=caption, objects=[], word=text, word_mask=word_mask)
