"""Sparse probes find the neurons a class is made of, and pool real layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.examples import positions_of
from clip_widgets.probe import pooled_activations, sparse_probe
from clip_widgets.world import draw_scene


def test_sparse_probes_pick_the_neurons_that_carry_the_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    features = rng.normal(size=(600, 40))
    features[:, 5] += 2.5 * (labels == 0)  # class 0 lives in neuron 5, class 1 in neuron 17
    features[:, 17] += 2.5 * (labels == 1)
    path = sparse_probe(features, labels, ["a", "b", "c"], Cs=[0.003, 0.01, 0.03, 1.0, 10.0], progress=False)
    assert path.coefs.shape == (5, 3, 40)
    sparse = int(np.argmax((path.neurons > 0) & (path.accuracy > 0.7)))  # the sparsest probe that works
    assert path.neurons[sparse] <= 4, path.neurons
    assert path.top_neurons("a", sparse, k=1)[0][0] == 5 and path.top_neurons("b", sparse, k=1)[0][0] == 17
    assert path.neurons[-1] > 20  # dense at the end of the path
    assert path.accuracy[-1] > 0.8 and path.accuracy.max() - path.accuracy[-1] < 0.1
    assert path.neurons[0] <= path.neurons[-1]
    with pytest.raises(KeyError, match="the probe has"):
        path.top_neurons("d")
    with pytest.raises(ValueError, match="must index the 2 classes"):
        sparse_probe(features, labels, ["a", "b"], progress=False)


@pytest.mark.parametrize("layer", ["blocks.1", "ln_post"])
def test_pooled_activations_are_the_mean_over_positions(vit_session, layer):
    images = [draw_scene(i, size=40).image for i in range(5)]
    pooled = pooled_activations(vit_session, images, layer, batch_size=2, progress=False)
    with torch.no_grad(), vit_session.layers.capture(layer) as out:
        vit_session.model.visual(vit_session.preprocess(images))
    values, _ = positions_of(out[layer].float())
    np.testing.assert_allclose(pooled, values.mean(1).numpy(), rtol=1e-5, atol=1e-6)
