"""Classic saliency for zero-shot CLIP classes: one verb, several methods (the captum way).

    from clip_widgets.saliency import attribute
    result = attribute(session, "photo.jpg", "a cat", classes=["a cat", "a dog"], method="integrated_gradients")
    result.maps         # (N, H, W) float32 per-pixel saliency, at the model's input size
    result.attributions # (N, 3, H, W) per-channel attributions in the model's input space

The score a map explains is a zero-shot logit: ``logit_scale * cos(image embedding, text
embedding)`` of the target class (with ``classes``, the target's logit among them; softmax
probabilities would couple the classes). Gradients are taken with respect to the model's input
(after its own resizing and normalization), as captum sees a model. Methods:

* ``"gradient"``: the absolute gradient (Simonyan et al., 2014); the map is its maximum over channels.
* ``"grad_x_input"``: gradient times input; the map is the sum over channels.
* ``"integrated_gradients"``: Sundararajan et al., 2017, from a baseline (default: zeros in
  the model's input space, the image of its normalization mean) along a straight path,
  Gauss-Legendre quadrature with ``steps`` points; the map is the sum over channels.
  Completeness: attributions sum to the score's change from the baseline (``result.delta``
  reports how far the quadrature is from that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .texts import template_list, text_list

METHODS = ("gradient", "grad_x_input", "integrated_gradients")


@dataclass
class SaliencyResult:
    """Attributions of one class score for a batch of images."""

    method: str
    target: str
    attributions: np.ndarray
    maps: np.ndarray
    scores: np.ndarray
    delta: np.ndarray | None = None


def class_logits(session: Any, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Zero-shot logits ``(N, C)`` of model-input ``pixels`` against unit-norm ``text`` ``(C, D)``,
    differentiable with respect to ``pixels``."""
    with session.lock:  # the graph is built here; the backward pass needs no lock (it runs no hooks)
        embedding = session.model.encode_image(pixels.to(device=session.device, dtype=session.dtype)).float()
    return session.logit_scale * F.normalize(embedding, dim=-1) @ text.T


def _pixels(session: Any, images: Any) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        pixels = images if images.ndim == 4 else images[None]
        return pixels.to(device=session.device, dtype=session.dtype)
    return session.preprocess(images)


def _gradient(session: Any, pixels: torch.Tensor, text: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = pixels.detach().requires_grad_(True)
    scores = class_logits(session, pixels, text)[:, index]
    (grad,) = torch.autograd.grad(scores.sum(), pixels)
    return grad.float(), scores.detach()


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alphas`` in (0, 1) and weights that integrate over [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (nodes + 1), 0.5 * weights


def attribute(
    session: Any,
    images: Any,
    target: str,
    *,
    classes: Sequence[str] | None = None,
    method: str = "gradient",
    templates: Sequence[str] | None = None,
    steps: int = 32,
    baseline: torch.Tensor | None = None,
    chunk: int = 16,
) -> SaliencyResult:
    """Attribute the zero-shot logit of ``target`` (a text prompt) to the input pixels of
    ``images`` (one or a batch, anything ``session.preprocess`` takes, or model-input tensors)."""
    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of {METHODS}")
    prompts = text_list(classes, "classes") if classes is not None else [target]
    if target not in prompts:
        raise ValueError(f"target {target!r} is not among the classes {prompts}")
    index = prompts.index(target)
    text = session.encode_text(prompts, templates=template_list(templates)).float()
    pixels = _pixels(session, images)
    delta = None
    with torch.enable_grad():
        if method == "integrated_gradients":
            if steps < 1:
                raise ValueError(f"steps must be positive, got {steps}")
            base = torch.zeros_like(pixels) if baseline is None else baseline.to(pixels).expand_as(pixels)
            alphas, weights = gauss_legendre(steps)
            total = torch.zeros(pixels.shape, dtype=torch.float32, device=pixels.device)
            for start in range(0, steps, chunk):  # several path points per backward pass
                a = torch.as_tensor(alphas[start : start + chunk], dtype=pixels.dtype, device=pixels.device)
                w = torch.as_tensor(weights[start : start + chunk], dtype=torch.float32, device=pixels.device)
                path = base[None] + a.view(-1, 1, 1, 1, 1) * (pixels - base)[None]  # (k, N, 3, H, W)
                grad, _ = _gradient(session, path.flatten(0, 1), text, index)
                total += (grad.view(len(a), *pixels.shape) * w.view(-1, 1, 1, 1, 1)).sum(0)
            attributions = (pixels - base).float() * total
            with torch.no_grad():
                ends = class_logits(session, torch.cat([pixels, base]), text)[:, index]
            scores = ends[: len(pixels)]
            delta = (attributions.flatten(1).sum(1) - (scores - ends[len(pixels) :])).cpu().numpy()
            maps = attributions.sum(1)
        else:
            grad, scores = _gradient(session, pixels, text, index)
            if method == "gradient":
                attributions = grad.abs()
                maps = attributions.amax(1)
            else:
                attributions = grad * pixels.float()
                maps = attributions.sum(1)
    return SaliencyResult(method, target, attributions.detach().cpu().numpy(), maps.detach().cpu().numpy(),
                          scores.detach().cpu().numpy(), delta)  # fmt: skip
