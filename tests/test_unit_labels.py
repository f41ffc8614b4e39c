"""CLIP-Dissect unit labels: the similarity functions by hand, and labels that name what units see."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from clip_widgets.errors import LayerNotFoundError
from clip_widgets.unit_labels import cos3, label_units, soft_wpmi

CONCEPTS = ["red", "circle", "star"]


def _planted():
    """Six images, three concepts (two images clearly each), three units that each follow one
    concept's column of the similarity matrix (unit u follows concept (u + 1) % 3)."""
    rng = np.random.default_rng(0)
    sims = np.full((6, 3), 0.2) + rng.uniform(0, 0.02, (6, 3))
    for concept in range(3):
        sims[2 * concept : 2 * concept + 2, concept] += 0.3
    acts = np.stack([sims[:, (u + 1) % 3] + rng.normal(0, 0.01, 6) for u in range(3)], 1)
    return sims, acts


def _soft_wpmi_by_hand(sims, acts, top_k, a=10.0, lam=1.0, p_start=0.998, p_end=0.97):
    n, c = sims.shape
    units = acts.shape[1]
    given = np.zeros((units, c))
    for u in range(units):
        top = sorted(range(n), key=lambda i: -acts[i, u])[:top_k]
        for j in range(c):
            for rank, i in enumerate(top):
                p_c = math.exp(a * sims[i, j]) / sum(math.exp(a * sims[i, m]) for m in range(c))
                p_in = p_start - rank / top_k * (p_start - p_end)
                given[u, j] += math.log(1 - p_in + p_in * p_c + 1e-7)
    prior = [math.log(sum(math.exp(given[u, j]) for u in range(units)) / units) for j in range(c)]
    return given - lam * np.array(prior)


def _cos3_by_hand(sims, acts):
    def column(x):
        x = (x - x.mean()) ** 3
        return x / max(np.sqrt((x**2).sum()), 1e-3)

    return np.array([[column(acts[:, u]) @ column(sims[:, j]) for j in range(sims.shape[1])] for u in range(3)])


def test_soft_wpmi_and_cos3_match_a_hand_computation_and_find_the_planted_concepts():
    sims, acts = _planted()
    scores = soft_wpmi(sims, acts, top_k=2)
    np.testing.assert_allclose(scores, _soft_wpmi_by_hand(sims, acts, 2), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(soft_wpmi(sims, acts, top_k=3, a=4, lam=0.5), _soft_wpmi_by_hand(sims, acts, 3, 4, 0.5))
    np.testing.assert_allclose(cos3(sims, acts), _cos3_by_hand(sims, acts), rtol=1e-9, atol=1e-12)
    for method in ("soft_wpmi", "cos3"):
        labels = label_units(None, None, "any", CONCEPTS, method=method, top_k=2, activations=acts, similarities=sims)
        assert labels.labels == ["circle", "star", "red"], (method, labels.scores)
        assert labels.scores.shape == (3, 3) and labels.confidence.shape == (3,)
        assert (labels.confidence > 1.0).all() and (labels.margin > 0).all()
        assert labels.top(1, k=1)[0][0] == "star" and labels.label_of(2) == "red"
    one = label_units(None, None, "any", CONCEPTS, units=[2], top_k=2, activations=acts, similarities=sims)
    assert one.labels == ["red"] and one.units.tolist() == [2]  # the prior still spans every unit
    np.testing.assert_allclose(one.scores[0], scores[2], rtol=1e-6)


def _mentions(label: str, word: str) -> bool:
    return re.search(rf"\b{word}s?\b", label) is not None


def test_units_dominated_by_a_colour_or_shape_are_labelled_with_it():
    from clip_widgets.probe import pooled_activations
    from clip_widgets.session import ModelSession
    from clip_widgets.unit_labels import DEFAULT_CONCEPTS, concept_similarities
    from clip_widgets.world import COLOURS, SHAPES, draw_scene

    session = ModelSession.from_embedded("world-rn-robust", device="cpu")
    rng = np.random.default_rng(0)
    specs = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))) for _ in range(200)]
    images = [
        draw_scene(np.random.default_rng(1000 + k), spec=[s], word_probability=0.0).image for k, s in enumerate(specs)
    ]
    acts = pooled_activations(session, images, "layer4", progress=False)
    sims = concept_similarities(session, images, DEFAULT_CONCEPTS, progress=False)
    colours, shapes = np.array([c for c, _ in specs]), np.array([s for _, s in specs])
    # dominated: at least 7 of the unit's 10 most activating scenes share a colour (or a shape)
    top = np.argsort(-acts, 0, kind="stable")[:10]
    dominant: dict[int, list[str]] = {}
    for unit in range(acts.shape[1]):
        for attribute in (colours, shapes):
            values, counts = np.unique(attribute[top[:, unit]], return_counts=True)
            if counts.max() >= 7:
                dominant.setdefault(unit, []).append(str(values[counts.argmax()]))
    assert len(dominant) > 100  # measured: 211 of 512

    def share(labels: list[str]) -> float:
        return float(np.mean([any(_mentions(labels[u], w) for w in dominant[u]) for u in dominant]))

    for method, floor in (("soft_wpmi", 0.8), ("cos3", 0.75)):  # measured: 0.87 and 0.84
        labels = label_units(session, None, "layer4", activations=acts, similarities=sims, method=method).labels
        null = np.mean(
            [share([labels[i] for i in np.random.default_rng(r).permutation(len(labels))]) for r in range(20)]
        )
        assert share(labels) >= floor and null < 0.25 and share(labels) - null > 0.5, (method, share(labels), null)


def test_bad_input_is_named(resnet_session):
    sims, acts = _planted()
    with pytest.raises(LayerNotFoundError, match="Valid names: .*layer4"):
        label_units(resnet_session, None, "layer9", CONCEPTS, activations=acts, similarities=sims)
    with pytest.raises(ValueError, match="empty"):
        label_units(None, None, "any", [], activations=acts, similarities=sims[:, :0])
    with pytest.raises(ValueError, match="unknown method"):
        label_units(None, None, "any", CONCEPTS, method="cosine", activations=acts, similarities=sims)
    with pytest.raises(ValueError, match="one column per concept"):
        label_units(None, None, "any", ["red", "circle"], activations=acts, similarities=sims)
    with pytest.raises(ValueError, match="share their images"):
        soft_wpmi(sims[:4], acts)
    with pytest.raises(ValueError, match="pass the session"):
        label_units(None, ["image"], "any", CONCEPTS)
