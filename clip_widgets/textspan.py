"""Attention heads explained in words (TextSpan; Gandelsman et al., ICLR 2024) and the
mean-ablation of heads and layers, on the exact decomposition of :mod:`clip_widgets.decompose`.

* :func:`collect_parts`: every head's, MLP's and the direct part of the embedding over a set of
  images (the heads summed over tokens).
* :func:`text_span`: for one head's outputs over the images, a few texts from a vocabulary that
  span them: the text whose direction varies most over the images, then the same again once
  that direction is taken out of the outputs and of every text, and so on. Each text comes with
  the share of the head's variance it explains.
* :func:`explain_heads`: :func:`text_span` for every head of the chosen layers.
* :func:`mean_ablation`: zero-shot accuracy when a head's (or a layer's) direct part of the
  embedding is replaced by its mean over the images.
* :func:`head_map`: where in one image a head writes a text's direction; :func:`span_maps` the
  same for every head and each of its texts at once (:func:`span_directions`).
* :func:`class_indices`: images' labels (class indices or class prompts) as indices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .decompose import EmbeddingParts, decompose
from .texts import text_list
from .world import CLASSES, COLOURS, SHAPES, WORDS, class_prompt

__all__ = [
    "WORLD_VOCABULARY",
    "Ablation",
    "HeadSpans",
    "SpanTexts",
    "class_indices",
    "collect_parts",
    "explain_heads",
    "first_text_shares",
    "head_map",
    "mean_ablation",
    "span_directions",
    "span_maps",
    "text_span",
]

PHOTO_CLASSES = ("cat", "dog", "car", "ship", "bird", "truck", "airplane", "frog", "horse")
WORLD_VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *(class_prompt(c) for c in CLASSES),
            *(class_prompt(f"{c} shape") for c in COLOURS),
            *(f"something {c}" for c in COLOURS),
            *(class_prompt(s) for s in SHAPES),
            *(f"the word {w} written" for w in WORDS),
            *(f"a photo of {class_prompt(w)}" for w in PHOTO_CLASSES),
            *(f"a {size} shape" for size in ("small", "large", "tiny", "huge")),
            *(f"a shape on the {side}" for side in ("left", "right", "top", "bottom")),
            "a shape in the middle",
            *(f"two {s}s" for s in SHAPES),
            *(f"a {b} background" for b in ("dark", "light", "noisy", "textured", "striped", "plain", "tinted")),
            "a sign with writing",
            "text",
            "a blurry picture",
            "an empty picture",
        ]
    )
)
"""A vocabulary for heads of the embedded models: classes, colours, shapes, written words,
photos, sizes, places, counts and backgrounds. For other models pass your own (the paper uses
a few thousand general image descriptions)."""


def collect_parts(
    session: Any,
    images: Sequence[Any],
    *,
    batch_size: int = 32,
    progress: bool = True,
    callback: Callable[[int, int], None] | None = None,
) -> EmbeddingParts:
    """:func:`~clip_widgets.decompose.decompose` over ``images`` in batches, heads summed over
    tokens: ``heads`` is ``(N, L, H, D)``. ``callback(done, total)`` is called after each batch
    with the number of images decomposed so far."""
    images = list(images)
    if not images:
        raise ValueError("give at least one image")
    chunks = []
    for start in tqdm(range(0, len(images), batch_size), desc="decomposing", disable=not progress):
        chunks.append(decompose(session, images[start : start + batch_size], spatial=False))
        if callback is not None:
            callback(min(start + batch_size, len(images)), len(images))
    first = chunks[0]
    return EmbeddingParts(
        **{
            name: np.concatenate([getattr(c, name) for c in chunks])
            for name in ("direct", "heads", "mlps", "bias", "embedding")
        },
        grid=first.grid,
    )


@dataclass
class SpanTexts:
    """The texts that span one head's outputs, in the order they were found, with the share of
    the head's variance (over the images) that each one took out (``explained``, summing to at
    most 1) and the share left after all of them (``residual``)."""

    texts: list[str]
    explained: np.ndarray
    residual: float


def text_span(
    outputs: np.ndarray | torch.Tensor,
    text_embeddings: np.ndarray | torch.Tensor,
    texts: Sequence[str],
    *,
    count: int = 5,
    rank: int | None = None,
) -> SpanTexts:
    """TextSpan for one head: ``outputs`` ``(N, D)`` (its part of N images' embeddings),
    ``text_embeddings`` ``(M, D)`` for ``texts``.

    The texts are first projected onto the head's output space (the span of the top ``rank``
    principal directions of ``outputs``; by default all directions with non-negligible
    variance), so a text counts only through what the head can write. Then, ``count`` times:
    pick the text whose projection of the centred outputs has the largest standard deviation,
    and remove its direction from the outputs and from every text.
    """
    data = torch.as_tensor(np.asarray(outputs), dtype=torch.float64)
    words = torch.as_tensor(np.asarray(text_embeddings), dtype=torch.float64)
    texts = [str(t) for t in text_list(texts, "texts")]
    if data.ndim != 2 or words.ndim != 2 or data.shape[1] != words.shape[1]:
        raise ValueError(f"outputs (N, D) and text embeddings (M, D) must share D; got {tuple(data.shape)} and "
                         f"{tuple(words.shape)}")  # fmt: skip
    if len(texts) != words.shape[0]:
        raise ValueError(f"{len(texts)} texts for {words.shape[0]} text embeddings")
    _, singular, vh = torch.linalg.svd(data, full_matrices=False)
    if rank is None:
        rank = int((singular > singular[0] * 1e-6).sum()) if singular.numel() and singular[0] > 0 else 0
    basis = vh[: max(1, rank)]  # orthonormal rows: the projection onto their span is basis.T @ basis
    words = words @ basis.T @ basis
    data = data - data.mean(0, keepdim=True)
    total = float((data**2).sum())
    picked, explained = [], []
    for _ in range(min(count, len(texts))):
        spread = (data @ words.T).std(0)
        best = int(spread.argmax())
        direction = words[best]
        length = float(direction @ direction)
        if length <= 1e-12:
            break  # no text has any direction left in the head's space
        before = float((data**2).sum())
        data = data - torch.outer(data @ direction / length, direction)
        words = words - torch.outer(words @ direction / length, direction)
        picked.append(texts[best])
        explained.append((before - float((data**2).sum())) / total if total > 0 else 0.0)
    residual = float((data**2).sum()) / total if total > 0 else 0.0
    return SpanTexts(texts=picked, explained=np.asarray(explained, dtype=np.float32), residual=residual)


@dataclass
class HeadSpans:
    """:func:`text_span` for each head of ``layers``: ``spans[i][h]`` for layer ``layers[i]``,
    head ``h``; ``variance`` ``(len(layers), H)`` each head's variance over the images (how much
    it moves the embedding from image to image, in squared embedding units)."""

    layers: list[int]
    spans: list[list[SpanTexts]]
    variance: np.ndarray

    def texts(self, layer: int, head: int) -> list[str]:
        return self.spans[self.layers.index(layer)][head].texts


def explain_heads(
    session: Any,
    parts: EmbeddingParts,
    vocabulary: Sequence[str] = WORLD_VOCABULARY,
    *,
    layers: Sequence[int] | None = None,
    count: int = 5,
    rank: int | None = None,
) -> HeadSpans:
    """TextSpan for every head of ``layers`` (default: all), from :func:`collect_parts`'s
    ``parts``; the vocabulary is embedded by the session's text tower (cached)."""
    words = [str(w) for w in dict.fromkeys(text_list(vocabulary, "vocabulary"))]
    if not words:
        raise ValueError("the vocabulary is empty")
    heads = parts.head_totals()
    layer_count = heads.shape[1]
    layers = list(range(layer_count)) if layers is None else [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i < layer_count]
    if bad:
        raise IndexError(f"layers {bad} out of range; the tower has layers 0..{layer_count - 1}")
    embeddings = session.encode_text(words).cpu().numpy()
    spans = [[text_span(heads[:, i, h], embeddings, words, count=count, rank=rank) for h in range(heads.shape[2])]
             for i in layers]  # fmt: skip
    variance = heads[:, layers].var(axis=0).sum(-1)
    return HeadSpans(layers=layers, spans=spans, variance=variance.astype(np.float32))


def first_text_shares(
    parts: EmbeddingParts, spans: HeadSpans, vocabulary: Sequence[str] = WORLD_VOCABULARY, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Each head's share of variance explained by its first TextSpan text (``spans`` made from
    ``vocabulary``), and the same for a null: TextSpan over as many random unit directions in
    place of the texts' embeddings. Both ``(len(spans.layers) * H,)``, layer-major. A head whose
    first text does not beat the null is not explained by the vocabulary."""
    heads = parts.head_totals()
    count = len(text_list(vocabulary, "vocabulary"))
    random = np.random.default_rng(seed).standard_normal((count, heads.shape[-1]))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    names = [f"random {i}" for i in range(len(random))]
    real = np.array([span.explained[0] if len(span.explained) else 0.0 for layer in spans.spans for span in layer])
    null = np.array([text_span(heads[:, i, h], random, names, count=1).explained[0]
                     for i in spans.layers for h in range(heads.shape[2])])  # fmt: skip
    return real, null


@dataclass
class Ablation:
    """Zero-shot accuracy over the images with parts of the embedding mean-ablated:
    ``baseline`` with none, ``heads`` ``(L, H)`` one head at a time, ``layers`` ``(L,)`` all
    heads of a layer at once, ``mlps`` ``(L,)`` one MLP at a time."""

    baseline: float
    heads: np.ndarray
    layers: np.ndarray
    mlps: np.ndarray


def _accuracy(embeddings: np.ndarray, classifier: np.ndarray, labels: np.ndarray) -> float:
    return float(((embeddings @ classifier.T).argmax(-1) == labels).mean())


def mean_ablation(parts: EmbeddingParts, classifier: np.ndarray | torch.Tensor, labels: Sequence[int]) -> Ablation:
    """Replace each part's direct contribution to the embedding by its mean over the images and
    classify zero-shot with ``classifier`` ``(C, D)`` (class text embeddings); ``labels`` are
    the images' true classes. Only the direct path is ablated (later layers still see the
    original), as in the paper: it asks what the part writes into the embedding."""
    classifier = np.asarray(classifier.cpu() if torch.is_tensor(classifier) else classifier, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.shape != (parts.embedding.shape[0],):
        raise ValueError(f"{labels.shape[0] if labels.ndim else 0} labels for {parts.embedding.shape[0]} images")
    heads = parts.head_totals().astype(np.float64)
    mlps = parts.mlps.astype(np.float64)
    total = parts.total().astype(np.float64)
    head_change = heads.mean(0, keepdims=True) - heads  # (N, L, H, D): what mean-ablation adds
    mlp_change = mlps.mean(0, keepdims=True) - mlps
    _, layer_count, head_count, _ = heads.shape
    by_head = np.array([[_accuracy(total + head_change[:, i, h], classifier, labels) for h in range(head_count)]
                        for i in range(layer_count)])  # fmt: skip
    by_layer = np.array([_accuracy(total + head_change[:, i].sum(1), classifier, labels) for i in range(layer_count)])
    by_mlp = np.array([_accuracy(total + mlp_change[:, i], classifier, labels) for i in range(layer_count)])
    return Ablation(baseline=_accuracy(total, classifier, labels), heads=by_head, layers=by_layer, mlps=by_mlp)


def head_map(
    parts: EmbeddingParts, layer: int, head: int, direction: np.ndarray | torch.Tensor, image: int = 0
) -> np.ndarray:
    """``(h, w)``: how much head ``head`` of ``layer`` writes ``direction`` (e.g. a text
    embedding) into the embedding from each patch of image ``image``; needs ``parts`` made with
    ``spatial=True``. The class token's own share is left out."""
    if not parts.spatial:
        raise ValueError("head_map needs parts made with spatial=True")
    direction = np.asarray(direction.cpu() if torch.is_tensor(direction) else direction, dtype=np.float32)
    values = parts.heads[image, layer, head, 1:] @ direction
    return values.reshape(parts.grid)


def span_directions(session: Any, spans: HeadSpans) -> np.ndarray:
    """``(len(spans.layers), H, K, D)``: the text embeddings of each head's TextSpan texts (``K``
    the most texts any head has; a head with fewer is padded with zero directions)."""
    texts = sorted({t for layer in spans.spans for span in layer for t in span.texts})
    width = max([len(span.texts) for layer in spans.spans for span in layer], default=0)
    embeddings = session.encode_text(texts).cpu().numpy() if texts else np.zeros((0, 0), np.float32)
    where = {t: i for i, t in enumerate(texts)}
    size = embeddings.shape[1] if texts else 0
    out = np.zeros((len(spans.spans), len(spans.spans[0]) if spans.spans else 0, width, size), np.float32)
    for i, layer in enumerate(spans.spans):
        for h, span in enumerate(layer):
            for k, text in enumerate(span.texts):
                out[i, h, k] = embeddings[where[text]]
    return out


def span_maps(parts: EmbeddingParts, directions: np.ndarray | torch.Tensor, image: int = 0) -> np.ndarray:
    """``(L, H, K, h, w)``: :func:`head_map` of every head of every layer for each of its ``K``
    directions (``directions`` ``(L, H, K, D)``, e.g. :func:`span_directions` over all layers)
    in image ``image``; needs ``parts`` made with ``spatial=True``."""
    if not parts.spatial:
        raise ValueError("span_maps needs parts made with spatial=True")
    directions = np.asarray(directions.cpu() if torch.is_tensor(directions) else directions, dtype=np.float32)
    heads = parts.heads[image, :, :, 1:]  # (L, H, h*w, D), the class token's own share left out
    if directions.shape[:2] != heads.shape[:2] or directions.shape[-1] != heads.shape[-1]:
        raise ValueError(f"directions {directions.shape} do not match heads (L, H, K, D) = "
                         f"{(*heads.shape[:2], '*', heads.shape[-1])}")  # fmt: skip
    values = np.einsum("lhtd,lhkd->lhkt", heads, directions)
    return values.reshape(*values.shape[:3], *parts.grid).astype(np.float32)


def class_indices(labels: Sequence[int | str], classes: Sequence[str]) -> np.ndarray:
    """Images' labels as class indices: each label is an index into ``classes`` or one of the
    class prompts itself."""
    classes = [str(c) for c in text_list(classes, "classes")]
    out = []
    for label in labels:
        if isinstance(label, str):
            if label not in classes:
                raise ValueError(f"label {label!r} is none of the {len(classes)} classes")
            out.append(classes.index(label))
        elif isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if not 0 <= int(label) < len(classes):
                raise IndexError(f"label {int(label)} out of range: classes are 0..{len(classes) - 1}")
            out.append(int(label))
        else:
            raise TypeError(f"a label is a class index or a class prompt, not {type(label).__name__}")
    return np.asarray(out, dtype=np.int64)
