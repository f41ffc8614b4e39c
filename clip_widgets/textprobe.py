"""Text-side probing of units: which words excite a unit, as written text and as language.

Multimodal neurons respond to a concept as a photo, as a drawing and as the written word. Two
ways to see the word side:

* :func:`rank_words_by_image`: write each word of a vocabulary into an image (dark text on a
  light ground, and light on dark), run the image tower, and rank words by the unit's
  activation (its maximum over positions);
* :func:`rank_words_by_embedding`: for units of layers that map linearly into the joint
  embedding (a ViT's ``ln_post``, a ResNet's ``attnpool``), rank words by how their text
  embedding points along the unit's direction in that space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .errors import UnsupportedModelError
from .examples import positions_of
from .texts import template_list, text_list


@dataclass(frozen=True)
class WordScores:
    """Words ranked for one unit, highest first, with their scores."""

    words: list[str]
    scores: np.ndarray

    def top(self, n: int = 10) -> list[tuple[str, float]]:
        return [(w, float(s)) for w, s in zip(self.words[:n], self.scores[:n], strict=True)]


def word_image(word: str, size: int = 224, *, ink: int = 20, paper: int = 235) -> Image.Image:
    """``word`` written large and centred on a plain square: the typographic stimulus."""
    image = Image.new("RGB", (size, size), (paper,) * 3)
    draw = ImageDraw.Draw(image)
    font_size = size // 2
    while font_size > 6:
        font = ImageFont.load_default(size=font_size)
        left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
        if right - left <= 0.9 * size and bottom - top <= 0.9 * size:
            break
        font_size = int(font_size * 0.85)
    x = (size - (right - left)) / 2 - left
    y = (size - (bottom - top)) / 2 - top
    draw.text((x, y), word, fill=(ink,) * 3, font=font)
    return image


def _ranked(words: Sequence[str], scores: torch.Tensor) -> WordScores:
    order = torch.argsort(scores, descending=True)
    return WordScores([words[i] for i in order.tolist()], scores[order].numpy())


def rank_words_by_image(
    session: Any,
    layer: str,
    units: int | Sequence[int],
    vocabulary: Sequence[str],
    *,
    batch_size: int = 64,
    progress: bool = True,
) -> list[WordScores]:
    """For each unit: the vocabulary ranked by the unit's maximum activation over positions on
    the word written into an image (the mean over dark-on-light and light-on-dark versions)."""
    units = [units] if isinstance(units, int) else list(units)
    words = list(dict.fromkeys(str(w) for w in text_list(vocabulary, "vocabulary")))
    if not words:
        raise ValueError("the vocabulary is empty")
    info = session.layers[layer]
    bad = [u for u in units if not 0 <= u < info.units]
    if bad:
        raise IndexError(f"units {bad} out of range for layer {layer!r}, which has {info.units} units")
    side = int(session.image_size[0])
    totals = torch.zeros(len(words), len(units))
    index = torch.tensor(units)
    with tqdm(total=len(words), desc=f"words through {layer}", unit="word", disable=not progress) as bar:
        for start in range(0, len(words), batch_size):
            chunk = words[start : start + batch_size]
            for ink, paper in ((20, 235), (235, 20)):
                images = [word_image(w, side, ink=ink, paper=paper) for w in chunk]
                with torch.no_grad():
                    captured, _ = session.layers.forward(session.preprocess(images), layer)
                values, _ = positions_of(captured[layer].float().cpu())
                totals[start : start + len(chunk)] += values[:, :, index].amax(dim=1) / 2
            bar.update(len(chunk))
    return [_ranked(words, totals[:, j]) for j in range(len(units))]


def unit_directions(session: Any, layer: str, units: Sequence[int]) -> torch.Tensor:
    """``(len(units), embed_dim)`` unit directions in the joint embedding space, for layers that
    map linearly into it: a ViT's ``ln_post`` (through the projection) or the embedding itself
    (a ResNet's ``attnpool``, a ViT's ``attn_pool``-free output)."""
    visual = session.model.visual
    units = [units] if isinstance(units, int) else list(units)
    count = session.layers[layer].units
    bad = [u for u in units if not 0 <= u < count]
    if bad:  # indexing would wrap a negative unit to the last ones silently
        raise IndexError(f"units {bad} out of range for layer {layer!r}: valid units are 0 to {count - 1}")
    if layer == "ln_post" and getattr(visual, "proj", None) is not None:
        return visual.proj.detach().float().cpu()[units]
    if layer == "attnpool" or (layer == "ln_post" and getattr(visual, "proj", None) is None):
        return torch.eye(session.embed_dim)[units]
    raise UnsupportedModelError(
        f"layer {layer!r} does not map linearly into the embedding space; text-embedding ranking needs "
        "'ln_post' (ViT) or 'attnpool' (ResNet). rank_words_by_image works for every layer."
    )


def rank_words_by_embedding(
    session: Any,
    layer: str,
    units: int | Sequence[int],
    vocabulary: Sequence[str],
    *,
    templates: Sequence[str] | None = None,
) -> list[WordScores]:
    """For each unit: the vocabulary ranked by the cosine between each word's text embedding
    and the unit's direction in the joint embedding space (see :func:`unit_directions`)."""
    units = [units] if isinstance(units, int) else list(units)
    words = list(dict.fromkeys(str(w) for w in text_list(vocabulary, "vocabulary")))
    if not words:
        raise ValueError("the vocabulary is empty")
    directions = F.normalize(unit_directions(session, layer, units), dim=-1)
    text = session.encode_text(words, templates=template_list(templates)).float().cpu()
    scores = text @ directions.T  # (words, units)
    return [_ranked(words, scores[:, j]) for j in range(len(units))]


EMBEDDING_LAYERS = ("ln_post", "attnpool")
"""Layers that map linearly into the joint embedding space (see :func:`unit_directions`)."""

QUERY_SCORES = {
    "embedding": "cosine of the query's text embedding with each unit's direction",
    "image": "each unit's activation on the query written in an image",
}
"""What the scores of :func:`units_for_text` are, by :func:`text_query_method`."""


def text_query_method(layer: str) -> str:
    """How :func:`units_for_text` scores the units of ``layer``: ``"embedding"`` for layers that
    map into the embedding space, else ``"image"`` (see :data:`QUERY_SCORES`)."""
    return "embedding" if layer in EMBEDDING_LAYERS else "image"


def units_for_text(session: Any, layer: str, query: str, top: int = 10) -> list[tuple[int, float]]:
    """The units of ``layer`` a text query excites most, best first: by the query's text
    embedding along each unit's direction where the layer maps into the embedding space, else
    by each unit's response to the query written in an image (see :func:`text_query_method`)."""
    query = str(query).strip()
    if not query:
        raise ValueError("the query is empty")
    units = range(session.layers[layer].units)
    if text_query_method(layer) == "embedding":
        directions = F.normalize(unit_directions(session, layer, units), dim=-1)
        scores = directions @ session.encode_text([query]).float().cpu()[0]
    else:
        images = [word_image(query, int(session.image_size[0]), ink=i, paper=p) for i, p in ((20, 235), (235, 20))]
        with torch.no_grad():
            captured, _ = session.layers.forward(session.preprocess(images), layer)
        values, _ = positions_of(captured[layer].float().cpu())
        scores = values.amax(dim=1).mean(0)
    best = torch.argsort(scores, descending=True)[:top]
    return [(int(u), float(scores[u])) for u in best]
