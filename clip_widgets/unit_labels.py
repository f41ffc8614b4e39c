"""Automatic unit labels with CLIP-Dissect (Oikarinen & Weng, ICLR 2023).

For every unit of a layer, the concept of a vocabulary that best describes the probing images
that excite it, and how clearly it wins::

    labels = label_units(session, images, "layer4")      # the shapes-world vocabulary by default
    labels.labels[:5], labels.confidence[:5]
    labels.top(12)                                       # [(concept, score), ...] of unit 12

CLIP-Dissect needs two matrices over the probing images: ``P`` ``(N, C)``, each image's cosine
similarity to each concept (the model's own image and text towers play the paper's multimodal
model), and ``A`` ``(N, units)``, each unit's activation averaged over positions (as the
paper's ``pool_mode="avg"``). A unit's label is the concept whose column of ``P`` matches the
unit's column of ``A`` best, under one of two similarity functions:

``soft_wpmi`` (the paper's best; the definition follows the authors' reference implementation):
    ``p(c|x) = softmax_c(a * P[x])`` with ``a = 10``; the unit's ``top_k`` most activating images
    ``x_1..x_k`` (in decreasing order) belong to its example set with probabilities falling
    linearly from ``p_start = 0.998`` to ``p_end = 0.97`` (``p_i = p_start - i/k (p_start - p_end)``,
    ``i = 0..k-1``);
    ``log p(c|unit) = sum_i log(1 - p_i + p_i p(c|x_i) + 1e-7)``;
    ``log p(c) = log mean_u p(c|u)`` over all units of the layer (the prior);
    ``score = log p(c|unit) - lam * log p(c)`` with ``lam = 1``.
``cos3``:
    both columns are centred over images, cubed and L2-normalized (norms clipped at 1e-3); the
    score is their dot product.

``confidence`` is the z-value of the winning score among the unit's scores over all concepts,
``(best - mean) / std``: how far the label stands out of the vocabulary, comparable across
units and methods. ``margin`` (best minus second best, in score units) comes along too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .probe import pooled_activations
from .texts import text_list
from .textspan import WORLD_VOCABULARY

__all__ = ["DEFAULT_CONCEPTS", "METHODS", "UnitLabels", "concept_similarities", "cos3", "label_units", "soft_wpmi"]

DEFAULT_CONCEPTS: tuple[str, ...] = WORLD_VOCABULARY
"""The shapes world's vocabulary (:data:`clip_widgets.textspan.WORLD_VOCABULARY`): the 30
colour-shape classes, "a red shape" and "something red" per colour, each shape, "the word X
written" per written word, photo classes, sizes, places, counts and backgrounds. For real models
pass your own, e.g. the paper's list of the 20,000 most common English words."""

METHODS = ("soft_wpmi", "cos3")


@dataclass
class UnitLabels:
    """Labels of ``units`` of ``layer``: ``labels[i]`` is unit ``units[i]``'s best concept,
    ``scores[i]`` its score for every concept (``(units, C)``, higher is better),
    ``confidence[i]`` the z-value of the best score over concepts and ``margin[i]`` the best
    score minus the second best."""

    layer: str
    units: np.ndarray
    labels: list[str]
    scores: np.ndarray
    confidence: np.ndarray
    margin: np.ndarray
    concepts: list[str]
    method: str

    def __len__(self) -> int:
        return len(self.units)

    def label_of(self, unit: int) -> str:
        return self.labels[self._row(unit)]

    def top(self, unit: int, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` best concepts of ``unit`` (a unit number of the layer) with their scores."""
        row = self.scores[self._row(unit)]
        return [(self.concepts[i], float(row[i])) for i in np.argsort(-row, kind="stable")[:k]]

    def _row(self, unit: int) -> int:
        hits = np.flatnonzero(self.units == unit)
        if not len(hits):
            raise KeyError(f"unit {unit} was not labelled; labelled units: {self.units.min()}..{self.units.max()}")
        return int(hits[0])


@torch.no_grad()
def concept_similarities(session: Any, images: Sequence[Any], concepts: Sequence[str], *, batch_size: int = 32,
                         progress: bool = True) -> np.ndarray:  # fmt: skip
    """``(N, C)`` cosine similarities between each image's and each concept's normalized
    embeddings (no logit scale, as the paper; soft-WPMI's ``a`` sets the temperature)."""
    concepts = _concepts(concepts)
    text = session.encode_text(concepts).float()
    rows = []
    for start in tqdm(range(0, len(images), batch_size), desc="embedding images", disable=not progress):
        pixels = session.preprocess(list(images[start : start + batch_size]))
        rows.append((session.encode_image(pixels) @ text.T).cpu().numpy())
    return np.concatenate(rows).astype(np.float32)


def soft_wpmi(similarities: np.ndarray, activations: np.ndarray, *, top_k: int = 10, a: float = 10.0,
              lam: float = 1.0, p_start: float = 0.998, p_end: float = 0.97,
              min_prob: float = 1e-7) -> np.ndarray:  # fmt: skip
    """``(units, C)`` soft-WPMI scores of every unit (a column of ``activations`` ``(N, units)``)
    against every concept (a column of ``similarities`` ``(N, C)``); see the module docstring."""
    sims, acts = _pair(similarities, activations)
    top_k = min(int(top_k), len(sims))
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    logits = a * sims
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)  # p(c|x)
    top = np.argsort(-acts, axis=0, kind="stable")[:top_k]  # (k, units), most activating first
    p_in = p_start - np.arange(top_k) / top_k * (p_start - p_end)  # (k,)
    log_given_unit = np.empty((acts.shape[1], sims.shape[1]))  # log p(c|unit), (units, C)
    step = max(1, 4_000_000 // (top_k * sims.shape[1]))  # bounded memory for large vocabularies
    for start in range(0, acts.shape[1], step):
        in_set = 1.0 + p_in[:, None, None] * (probs[top[:, start : start + step]] - 1.0)  # (k, step, C)
        log_given_unit[start : start + step] = np.log(in_set + min_prob).sum(0)
    peak = log_given_unit.max(0, keepdims=True)  # log-mean-exp over units, the prior
    log_prior = peak + np.log(np.exp(log_given_unit - peak).mean(0, keepdims=True))
    return log_given_unit - lam * log_prior


def cos3(similarities: np.ndarray, activations: np.ndarray, *, min_norm: float = 1e-3) -> np.ndarray:
    """``(units, C)`` cosine similarity of the centred, cubed columns (see the module docstring)."""
    sims, acts = _pair(similarities, activations)

    def cubed(x: np.ndarray) -> np.ndarray:
        x = (x - x.mean(0, keepdims=True)) ** 3
        return x / np.maximum(np.linalg.norm(x, axis=0, keepdims=True), min_norm)

    return cubed(acts).T @ cubed(sims)


def label_units(
    session: Any | None,
    images: Sequence[Any] | None,
    layer: str,
    concepts: Sequence[str] = DEFAULT_CONCEPTS,
    *,
    units: Sequence[int] | None = None,
    method: str = "soft_wpmi",
    top_k: int | None = None,
    activations: np.ndarray | None = None,
    similarities: np.ndarray | None = None,
    batch_size: int = 32,
    progress: bool = True,
    **method_kw: Any,
) -> UnitLabels:
    """CLIP-Dissect labels for ``units`` (default: all) of ``layer`` over the probing ``images``.

    ``activations`` (:func:`clip_widgets.probe.pooled_activations`, ``(N, units)``, all units of
    the layer) and ``similarities`` (:func:`concept_similarities`, ``(N, C)``) may be passed to
    reuse them across layers or methods; ``images`` (and ``session``, which then only checks the
    layer name) may then be ``None``. ``top_k``: soft-WPMI's example-set size, by default 2.5% of
    the images, at least 5 and at most 100 (the paper's value for probing sets of 50,000 images
    and more): an example set larger than the images of one concept in the probing set must mix
    concepts. Other keywords go to :func:`soft_wpmi` or :func:`cos3`. The soft-WPMI prior is
    taken over all units of ``activations`` whatever ``units`` picks."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    concepts = _concepts(concepts)
    if session is not None:
        session.layers[layer]  # unknown names raise, listing the valid ones  # noqa: B018
    if (activations is None or similarities is None) and (images is None or session is None):
        raise ValueError("pass the session and the probing images, or both activations and similarities")
    if activations is None:
        activations = pooled_activations(session, images, layer, batch_size=batch_size, progress=progress)
    if similarities is None:
        similarities = concept_similarities(session, images, concepts, batch_size=batch_size, progress=progress)
    if np.shape(similarities)[1:] != (len(concepts),):
        raise ValueError(
            f"similarities must have one column per concept ({len(concepts)}); got {np.shape(similarities)}"
        )
    if method == "soft_wpmi":
        k = top_k if top_k is not None else int(np.clip(round(len(activations) / 40), 5, 100))
        scores = soft_wpmi(similarities, activations, top_k=k, **method_kw)
    else:
        scores = cos3(similarities, activations, **method_kw)
    chosen = np.arange(scores.shape[0]) if units is None else np.asarray(units, dtype=int).reshape(-1)
    if len(chosen) and (chosen.min() < 0 or chosen.max() >= scores.shape[0]):
        raise ValueError(f"units must lie in 0..{scores.shape[0] - 1}; got {chosen.min()}..{chosen.max()}")
    scores = scores[chosen]
    order = np.sort(scores, axis=1)
    best = scores.argmax(1)
    spread = scores.std(1)
    confidence = np.where(spread > 0, (order[:, -1] - scores.mean(1)) / np.where(spread > 0, spread, 1), 0.0)
    margin = order[:, -1] - order[:, -2] if len(concepts) > 1 else np.zeros(len(chosen))
    return UnitLabels(
        layer=layer,
        units=chosen,
        labels=[concepts[i] for i in best],
        scores=scores.astype(np.float32),
        confidence=confidence.astype(np.float32),
        margin=margin.astype(np.float32),
        concepts=concepts,
        method=method,
    )


def _concepts(concepts: Sequence[str]) -> list[str]:
    words = [str(c) for c in text_list(concepts, "concepts")]
    if not words:
        raise ValueError("the concept vocabulary is empty; pass at least one concept")
    if len(set(words)) != len(words):
        raise ValueError("the concept vocabulary repeats concepts; pass each once")
    return words


def _pair(similarities: np.ndarray, activations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sims = np.asarray(similarities, np.float64)
    acts = np.asarray(activations, np.float64)
    if sims.ndim != 2 or acts.ndim != 2 or len(sims) != len(acts):
        raise ValueError(
            f"similarities (N, C) and activations (N, units) must share their images; got {sims.shape} and {acts.shape}"
        )
    return sims, acts
