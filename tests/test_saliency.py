"""Saliency of zero-shot class scores, checked against captum on the same model and input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets.saliency import attribute, class_logits, gauss_legendre
from clip_widgets.world import draw_scene

captum_attr = pytest.importorskip("captum.attr")
CLASSES = ["a red circle", "a blue star", "a photo of a cat"]


@pytest.fixture(params=["vit", "resnet"])
def session(request, vit_session, resnet_session):
    return vit_session if request.param == "vit" else resnet_session


@pytest.fixture
def pixels(session):
    return session.preprocess([draw_scene(1).image, draw_scene(2).image])


def captum_forward(session):
    text = session.encode_text(CLASSES).float()
    return lambda x: class_logits(session, x, text)


def test_gradient_and_grad_x_input_equal_captum(session, pixels):
    forward = captum_forward(session)
    target = CLASSES.index("a blue star")
    expected = captum_attr.Saliency(forward).attribute(pixels.clone(), target=target, abs=True)
    result = attribute(session, pixels, "a blue star", classes=CLASSES, method="gradient")
    np.testing.assert_allclose(result.attributions, expected.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(result.maps, expected.amax(1).numpy(), rtol=1e-4, atol=1e-7)
    assert result.maps.shape == (2, *session.image_size) and result.maps.max() > 0

    expected = captum_attr.InputXGradient(forward).attribute(pixels.clone(), target=target)
    result = attribute(session, pixels, "a blue star", classes=CLASSES, method="grad_x_input")
    np.testing.assert_allclose(result.attributions, expected.detach().numpy(), rtol=1e-4, atol=1e-7)


def test_integrated_gradients_equal_captum_and_are_complete(session, pixels):
    forward = captum_forward(session)
    target = CLASSES.index("a red circle")
    baseline = torch.zeros_like(pixels)
    ig = captum_attr.IntegratedGradients(forward)
    expected, delta = ig.attribute(pixels.clone(), baselines=baseline, target=target, n_steps=24,
                                   method="gausslegendre", return_convergence_delta=True)  # fmt: skip
    result = attribute(session, pixels, "a red circle", classes=CLASSES, method="integrated_gradients", steps=24,
                       chunk=5)  # fmt: skip
    np.testing.assert_allclose(result.attributions, expected.detach().numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(result.delta, delta.detach().numpy(), rtol=1e-2, atol=1e-4)
    # completeness by hand: attributions sum to the score change from the baseline
    with torch.no_grad():
        change = (forward(pixels) - forward(baseline))[:, target].numpy()
    np.testing.assert_allclose(result.attributions.reshape(2, -1).sum(1), change, rtol=0.05, atol=0.05)


def test_gauss_legendre_quadrature_integrates_over_the_unit_interval():
    alphas, weights = gauss_legendre(5)
    assert np.isclose(weights.sum(), 1.0) and ((alphas > 0) & (alphas < 1)).all()
    assert np.isclose((weights * alphas**3).sum(), 0.25)  # exact for polynomials: int_0^1 a^3 = 1/4


def test_errors_name_the_choices(vit_session):
    image = draw_scene(0).image
    with pytest.raises(ValueError, match="choose one of"):
        attribute(vit_session, image, "a cat", method="smoothgrad")
    with pytest.raises(ValueError, match="not among the classes"):
        attribute(vit_session, image, "a cat", classes=["a dog"])
