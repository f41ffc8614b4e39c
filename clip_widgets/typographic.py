"""Typographic attacks (Goh et al., 2021): write a word into an image and watch the zero-shot
prediction follow the word (an apple labelled "iPod").

    from clip_widgets.typographic import write_text, attack
    attacked = write_text(photo, "iPod", position=(0.5, 0.8), size=0.15)
    report = attack(session, "photos/", "iPod", classes=["an apple", "an iPod", "a pear"], target="an iPod")
    report.success_rate, report.flip_rate
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from . import images
from .images import _expand, load_image, skip_warning
from .texts import template_list, text_list


def write_text(
    image: Any,
    text: str,
    *,
    position: tuple[float, float] = (0.5, 0.5),
    size: float = 0.2,
    fill: tuple[int, int, int] = (255, 255, 255),
    outline: tuple[int, int, int] | None = (0, 0, 0),
) -> Image.Image:
    """A copy of ``image`` with ``text`` written centred at ``position`` (fractions of width and
    height) in a font ``size`` times the image height, ``fill`` with an ``outline`` (None: none).
    Text whose rendering would be larger than :data:`clip_widgets.images.MAX_PIXELS` (a tall
    strip makes a huge font) is refused with a ``ValueError`` before it is drawn."""
    picture = load_image(image).convert("RGB").copy()
    width, height = picture.size
    font_px = max(6, round(size * height))
    font = ImageFont.load_default(size=font_px)
    x, y = position[0] * width, position[1] * height
    stroke = max(1, round(size * height / 12)) if outline is not None else 0
    draw = ImageDraw.Draw(picture)
    left, top, right, bottom = draw.textbbox((x, y), text, font=font, anchor="mm", stroke_width=stroke)
    limit = images.MAX_PIXELS
    if limit is not None and (right - left) * (bottom - top) > limit:  # measured, not rendered
        raise ValueError(
            f"the text {text!r} at {font_px} px (size {size:g} of a {width} x {height} image) would be "
            f"{right - left} x {bottom - top} pixels, over the limit of {limit / 1e6:g} megapixels "
            "(clip_widgets.images.MAX_PIXELS); use a smaller size"
        )
    draw.text((x, y), text, fill=fill, font=font, anchor="mm", stroke_width=stroke, stroke_fill=outline)
    return picture


def zero_shot(session: Any, images: Sequence[Any], classes: Sequence[str],
              templates: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """Zero-shot probabilities ``(N, C)`` of ``images`` (one image or a sequence) over the class prompts."""
    if not isinstance(images, (list, tuple, str, os.PathLike, Image.Image, np.ndarray, torch.Tensor)):
        images = list(images)  # any other iterable; the rest ModelSession.preprocess reads as it is
    return class_probabilities(session, session.encode_image(session.preprocess(images)), classes, templates)


def class_probabilities(session: Any, features: torch.Tensor, classes: Sequence[str],
                        templates: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """Zero-shot probabilities ``(N, C)`` of unit-norm image embeddings over the class prompts."""
    text = session.encode_text(text_list(classes, "classes"), templates=template_list(templates))
    return torch.softmax(session.logit_scale * features @ text.T, dim=-1).cpu().numpy()


@dataclass
class AttackReport:
    """What writing ``text`` did to each image: predictions before and after (class indices into
    ``classes``), and the images that could not be read."""

    text: str
    classes: list[str]
    target: str | None
    sources: list[str] = field(default_factory=list)
    clean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    attacked: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    clean_probs: np.ndarray | None = None
    attacked_probs: np.ndarray | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def flip_rate(self) -> float:
        """The share of images whose predicted class changed."""
        return float(np.mean(self.clean != self.attacked)) if len(self.clean) else float("nan")

    @property
    def success_rate(self) -> float:
        """The share of images not already predicted as ``target`` that the attack moved to it
        (without a target: the flip rate)."""
        if self.target is None:
            return self.flip_rate
        index = self.classes.index(self.target)
        eligible = self.clean != index
        return float(np.mean(self.attacked[eligible] == index)) if eligible.any() else float("nan")


def attack(
    session: Any,
    sources: Iterable[Any] | str,
    text: str,
    classes: Sequence[str],
    *,
    target: str | None = None,
    templates: Sequence[str] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    **write_kw: Any,
) -> AttackReport:
    """Write ``text`` into every image of ``sources`` (a folder, paths or images) and classify
    each image before and after. An image that cannot be read, written on or preprocessed (a
    broken file, one over the pixel budget, a strip too tall for its text) is named in a
    warning, listed in ``report.skipped`` and left out; the rest go on."""
    classes = text_list(classes, "classes")
    templates = template_list(templates)
    if target is not None and target not in classes:
        raise ValueError(f"target {target!r} is not among the classes {classes}")
    write_text(Image.new("RGB", (8, 8)), text, **write_kw)  # bad options fail here, not once per image
    report = AttackReport(text, classes, target)
    clean_probs, attacked_probs = [], []
    names: list[str] = []
    clean_pixels: list[torch.Tensor] = []
    attacked_pixels: list[torch.Tensor] = []

    def flush() -> None:
        if not names:
            return
        for pixels, probs in ((clean_pixels, clean_probs), (attacked_pixels, attacked_probs)):
            probs.append(class_probabilities(session, session.encode_image(torch.cat(pixels)), classes, templates))
            pixels.clear()
        report.sources.extend(names)
        names.clear()

    with tqdm(desc=f"typographic attack {text!r}", unit="img", disable=not progress) as bar:
        for index, source in enumerate(_expand(sources)):
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"
            try:  # everything that concerns this image alone; a failure costs only this image
                picture = load_image(source)
                pixels = session.preprocess([picture, write_text(picture, text, **write_kw)])
            except Exception as exc:  # noqa: BLE001 - named in the warning and the report
                skip_warning(name, exc)
                report.skipped.append(name)
                continue
            names.append(name)
            clean_pixels.append(pixels[:1])
            attacked_pixels.append(pixels[1:])
            bar.update(1)
            if len(names) >= batch_size:
                flush()
        flush()
    if clean_probs:
        report.clean_probs, report.attacked_probs = np.concatenate(clean_probs), np.concatenate(attacked_probs)
        report.clean, report.attacked = report.clean_probs.argmax(1), report.attacked_probs.argmax(1)
    return report
