"""Typographic attacks (Goh et al., 2021): write a word into an image and watch the zero-shot
prediction follow the word (an apple labelled "iPod").

    from clip_widgets.typographic import write_text, attack
    attacked = write_text(photo, "iPod", position=(0.5, 0.8), size=0.15)
    report = attack(session, "photos/", "iPod", classes=["an apple", "an iPod", "a pear"], target="an iPod")
    report.success_rate, report.flip_rate
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .errors import ImageLoadError
from .images import _expand, load_image


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
    height) in a font ``size`` times the image height, ``fill`` with an ``outline`` (None: none)."""
    picture = load_image(image).convert("RGB").copy()
    width, height = picture.size
    font = ImageFont.load_default(size=max(6, round(size * height)))
    x, y = position[0] * width, position[1] * height
    stroke = max(1, round(size * height / 12)) if outline is not None else 0
    ImageDraw.Draw(picture).text((x, y), text, fill=fill, font=font, anchor="mm", stroke_width=stroke,
                                 stroke_fill=outline)  # fmt: skip
    return picture


def zero_shot(session: Any, images: Sequence[Any], classes: Sequence[str],
              templates: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """Zero-shot probabilities ``(N, C)`` of ``images`` over the class prompts."""
    return class_probabilities(session, session.encode_image(session.preprocess(list(images))), classes, templates)


def class_probabilities(session: Any, features: torch.Tensor, classes: Sequence[str],
                        templates: Sequence[str] | None = None) -> np.ndarray:  # fmt: skip
    """Zero-shot probabilities ``(N, C)`` of unit-norm image embeddings over the class prompts."""
    text = session.encode_text(list(classes), templates=templates)
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
    each image before and after. Unreadable images are named in a warning, listed in
    ``report.skipped`` and left out; the rest go on."""
    classes = list(classes)
    if target is not None and target not in classes:
        raise ValueError(f"target {target!r} is not among the classes {classes}")
    report = AttackReport(text, classes, target)
    clean_probs, attacked_probs = [], []
    batch: list[tuple[str, Image.Image]] = []

    def flush() -> None:
        if not batch:
            return
        pictures = [picture for _, picture in batch]
        clean_probs.append(zero_shot(session, pictures, classes, templates))
        attacked_probs.append(zero_shot(session, [write_text(p, text, **write_kw) for p in pictures], classes,
                                        templates))  # fmt: skip
        report.sources.extend(name for name, _ in batch)
        batch.clear()

    with tqdm(desc=f"typographic attack {text!r}", unit="img", disable=not progress) as bar:
        for index, source in enumerate(_expand(sources)):
            name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"
            try:
                batch.append((name, load_image(source)))
            except ImageLoadError as exc:
                warnings.warn(f"skipping unreadable image: {exc}", UserWarning, stacklevel=2)
                report.skipped.append(name)
                continue
            bar.update(1)
            if len(batch) >= batch_size:
                flush()
        flush()
    if clean_probs:
        report.clean_probs, report.attacked_probs = np.concatenate(clean_probs), np.concatenate(attacked_probs)
        report.clean, report.attacked = report.clean_probs.argmax(1), report.attacked_probs.argmax(1)
    return report
