"""Dense label maps from CLIP, one verb across methods (the captum way).

    from clip_widgets.dense import dense_maps
    result = dense_maps(session, "photo.jpg", ["a cat", "a dog"], method="naclip")
    result.maps     # (L, H, W) float32 in [0, 1], one scale for all labels
    result.tokens   # (L, h, w) raw values on the patch grid (similarities, or relevance)
    result.probs    # (L,) zero-shot probabilities of the labels for the whole image

Methods (see :data:`METHODS`; ``method_names(tower)`` lists those that apply to a tower):

* ``raw`` (ViT, ResNet): the model's own patch tokens through ``ln_post`` and ``proj`` (ResNet:
  its attention pool with every position as a query).
* ``surgery`` (ViT, ResNet): CLIP Surgery (:mod:`clip_widgets.surgery`), feature surgery included.
* ``maskclip`` (ViT, ResNet): MaskCLIP, the value path only in the last attention.
* ``sclip`` (ViT): SCLIP, correlative self-attention (q-q + k-k) in the last block.
* ``clearclip`` (ViT): ClearCLIP, the q-q attention output alone (no residual, no FFN).
* ``naclip`` (ViT): NACLIP, k-k attention plus a Gaussian neighbourhood prior, reduced block.
* ``gem`` (ViT): GEM, a self-self (q-q, k-k, v-v) path through the last blocks.
* ``grad_eclip`` (ViT, ResNet): Grad-ECLIP, gradient x value x loosened attention, last attention.
* ``legrad`` (ViT, ResNet): LeGrad, positive gradients of the score w.r.t. the last attention maps.

The first seven give patch embeddings; their token maps are cosine similarities with each
label's text embedding. The last two give gradient relevance (>= 0). Method details, choices
and sources are in :mod:`clip_widgets.dense_attention` and :mod:`clip_widgets.dense_gradients`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from . import dense_attention as attention
from . import dense_gradients as gradients
from .errors import UnsupportedModelError
from .surgery import (
    DEFAULT_DEPTH,
    MapScale,
    dense_tokens,
    map_range,
    similarity_map_to_points,
    similarity_to_maps,
    surgery_maps,
    whole_image_pixels,
)

Tower = Literal["vit", "resnet"]


@dataclass(frozen=True)
class DenseMethod:
    """One dense-map method: its name, the towers it covers, what it returns (``"features"``:
    patch embeddings; ``"relevance"``: gradient maps that need the text; ``"surgery"``: delegated
    to :func:`surgery_maps`), its functions per tower, its options and their defaults."""

    name: str
    title: str
    towers: tuple[Tower, ...]
    kind: Literal["features", "relevance", "surgery"]
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    reference: str = ""


def _raw_features(visual: nn.Module, pixels: torch.Tensor) -> attention.DenseFeatures:
    tokens = dense_tokens(visual, pixels)
    return attention.DenseFeatures(tokens=tokens.raw[:, 1:], image=tokens.raw[:, 0], grid=tokens.grid)


METHODS: dict[str, DenseMethod] = {
    m.name: m
    for m in (
        DenseMethod("raw", "raw CLIP", ("vit", "resnet"), "features",
                    {"vit": _raw_features, "resnet": _raw_features}),
        DenseMethod("surgery", "CLIP Surgery", ("vit", "resnet"), "surgery",
                    options={"depth": DEFAULT_DEPTH, "temperature": 2.0, "redundant_prompt": ""},
                    reference="Li et al., 2023, arXiv:2304.05653"),
        DenseMethod("maskclip", "MaskCLIP", ("vit", "resnet"), "features",
                    {"vit": attention.maskclip_tokens, "resnet": attention.resnet_maskclip_tokens},
                    {"residual": True, "ffn": True}, "Zhou et al., ECCV 2022"),
        DenseMethod("sclip", "SCLIP", ("vit",), "features", {"vit": attention.sclip_tokens},
                    {"residual": True, "ffn": True}, "Wang et al., ECCV 2024"),
        DenseMethod("clearclip", "ClearCLIP", ("vit",), "features", {"vit": attention.clearclip_tokens},
                    reference="Lan et al., ECCV 2024"),
        DenseMethod("naclip", "NACLIP", ("vit",), "features", {"vit": attention.naclip_tokens},
                    {"std": attention.NACLIP_STD}, "Hajimiri et al., WACV 2025"),
        DenseMethod("gem", "GEM", ("vit",), "features", {"vit": attention.gem_tokens},
                    {"depth": attention.GEM_DEPTH, "iterations": 1, "inverse_temperature": None},
                    "Bousselham et al., CVPR 2024"),
        DenseMethod("grad_eclip", "Grad-ECLIP", ("vit", "resnet"), "relevance",
                    {"vit": gradients.grad_eclip_vit, "resnet": gradients.grad_eclip_resnet},
                    reference="Zhao et al., ICML 2024"),
        DenseMethod("legrad", "LeGrad", ("vit", "resnet"), "relevance",
                    {"vit": gradients.legrad_vit, "resnet": gradients.legrad_resnet},
                    {"depth": gradients.LEGRAD_DEPTH}, "Bousselham et al., 2024, arXiv:2404.03214"),
    )
}  # fmt: skip
"""Every method :func:`dense_maps` knows, by name."""

TOWER_NAMES = {"vit": "ViT", "resnet": "ModifiedResNet"}


def tower_of(model: nn.Module) -> Tower:
    """``"vit"`` or ``"resnet"`` for an open_clip model (or its ``.visual``); raises
    :class:`UnsupportedModelError` for other image towers."""
    visual = getattr(model, "visual", model)
    if hasattr(visual, "transformer") and hasattr(visual, "conv1"):
        return "vit"
    if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
        return "resnet"
    raise UnsupportedModelError(
        f"dense maps cover open_clip ViT and ModifiedResNet image towers, not {type(visual).__name__}"
    )


def method_names(tower: Tower | None = None) -> list[str]:
    """The method names, all or those that apply to ``tower`` (``"vit"`` or ``"resnet"``)."""
    return [name for name, m in METHODS.items() if tower is None or tower in m.towers]


def _check_method(method: str, tower: Tower, options: dict[str, Any]) -> DenseMethod:
    if method not in METHODS:
        raise ValueError(f"unknown dense-map method {method!r}; choose one of {', '.join(METHODS)}")
    spec = METHODS[method]
    if tower not in spec.towers:
        needs = " or ".join(TOWER_NAMES[t] for t in spec.towers)
        raise UnsupportedModelError(
            f"{spec.title} ({method!r}) needs a {needs} image tower; for this {TOWER_NAMES[tower]} "
            f"use one of: {', '.join(method_names(tower))}"
        )
    accepted = _tower_options(spec, tower)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        names, given = ", ".join(accepted) or "none", ", ".join(map(repr, unknown))
        raise TypeError(f"{method!r} on a {TOWER_NAMES[tower]} takes no option {given}; its options: {names}")
    return spec


def _tower_options(spec: DenseMethod, tower: Tower) -> dict[str, Any]:
    """The method's options with their defaults, those its form for ``tower`` takes."""
    if spec.kind == "surgery":
        return dict(spec.options)
    parameters = inspect.signature(spec.functions[tower]).parameters
    return {k: v for k, v in spec.options.items() if k in parameters}


@dataclass
class DenseMapResult:
    """Maps of one method for one image and a list of labels.

    ``maps`` (L, H, W) float32 in [0, 1] at the requested output size, on one scale for all
    labels by default (``info["scale"]`` holds its low and high in ``tokens`` units);
    ``tokens`` (L, h, w) the raw values on the model's patch grid: cosine similarities of patch
    embeddings and text (relevance >= 0 for gradient methods; feature-surgery similarities for
    ``"surgery"``); ``probs`` (L,) the labels' zero-shot probabilities for the whole image.
    """

    labels: list[str]
    maps: np.ndarray
    tokens: np.ndarray
    probs: np.ndarray
    method: str
    info: dict[str, Any] = field(default_factory=dict)

    def _index(self, label: int | str) -> int:
        return self.labels.index(label) if isinstance(label, str) else int(label)

    def value_range(self, label: int | str) -> tuple[float, float]:
        """The ``tokens`` values drawn as 0 and 1 in ``label``'s map."""
        index, scale = self._index(label), self.info["scale"]
        pick = index if len(scale["low"]) > 1 else 0
        return float(scale["low"][pick]), float(scale["high"][pick])

    def points(self, label: int | str, *, threshold: float = 0.8, down_sample: int = 2):
        """Segment Anything point prompts for a label (see :func:`similarity_map_to_points`)."""
        index = self._index(label)
        return similarity_map_to_points(self.tokens[index], self.maps.shape[-2:], threshold=threshold,
                                        down_sample=down_sample, value_range=self.value_range(index))  # fmt: skip


def _output_size(size: Any, picture: Any, pixels: torch.Tensor) -> tuple[int, int]:
    if isinstance(size, str):
        if size == "image":
            return (picture.height, picture.width)
        if size == "input":
            return (int(pixels.shape[-2]), int(pixels.shape[-1]))
        raise ValueError(f"size must be 'image', 'input' or (H, W), got {size!r}")
    return (int(size[0]), int(size[1]))


def dense_maps(
    session: Any,
    image: Any,
    labels: Sequence[str],
    *,
    method: str = "surgery",
    size: tuple[int, int] | Literal["image", "input"] = "image",
    input_size: int | tuple[int, int] | None = None,
    templates: Sequence[str] | None = None,
    scale: MapScale = "joint",
    floor: float | None | Literal["default"] = "default",
    centre: bool = False,
    **options: Any,
) -> DenseMapResult:
    """Dense maps of ``labels`` over one image by one ``method`` (a name in :data:`METHODS`).

    ``session`` is a :class:`clip_widgets.ModelSession`; ``image`` anything
    :func:`clip_widgets.images.load_image` reads; the whole image (no crop) is resized to
    ``input_size`` (a side or ``(H, W)``; default: the model's own) and normalized the model's
    way. Text embeddings come from the session's cache, with an optional template ensemble.
    ``size`` is the output map size: the image's own (``"image"``), the model input's
    (``"input"``) or ``(H, W)``.

    ``scale="joint"`` (the default) draws all labels' maps on one scale, from the lowest to the
    highest token value over all labels, so an absent label looks colder than a present one
    where the method separates them; ``"label"`` stretches each map on its own. ``floor``: token
    values at or below it map to 0; ``"default"`` is 0.0 for ``"surgery"`` (as
    :func:`surgery_maps`) and none for the other methods. ``options`` are the method's own
    (``METHODS[method].options`` lists them with their defaults, ViT forms' included), e.g.
    ``std=3.0`` for NACLIP; ``info["options"]`` holds those used. ``centre=True`` subtracts from
    each patch its mean value over the labels (what every label shares, which on small models
    often outweighs what tells them apart; feature surgery removes it its own way, so
    ``"surgery"`` ignores it); it needs at least two labels.

    Raises ``ValueError`` for an unknown method (listing the valid ones) and
    :class:`UnsupportedModelError` for a method that does not apply to the session's tower
    (naming those that do).
    """
    from .images import load_image
    from .texts import template_list, text_list

    tower = tower_of(session.model)
    spec = _check_method(method, tower, options)
    labels = [str(label) for label in text_list(labels)]
    templates = template_list(templates)
    if not labels:
        raise ValueError("give at least one label")
    if centre and len(labels) < 2:
        raise ValueError("centre=True needs at least two labels: a patch's mean over one label is its value")
    if floor == "default":
        floor = 0.0 if spec.kind == "surgery" else None
    settings = {**_tower_options(spec, tower), **options}

    if spec.kind == "surgery":
        result = surgery_maps(session, image, labels, templates=templates, size=size, scale=scale, floor=floor,
                              input_size=input_size, **settings)  # fmt: skip
        info = {**result.info, "method": method, "options": settings, "scale": result.info["scale"]["surgery"]}
        return DenseMapResult(labels=labels, maps=result.surgery, tokens=result.surgery_tokens, probs=result.probs,
                              method=method, info=info)  # fmt: skip

    picture = load_image(image)
    pixels = whole_image_pixels(session, picture, input_size)
    out_size = _output_size(size, picture, pixels)
    text = session.encode_text(labels, templates)
    visual = session.model.visual
    function = spec.functions[tower]
    with session.lock:  # runs the tower's modules directly: no other thread's hooks may be on them
        if spec.kind == "features":
            with torch.no_grad():
                features = function(visual, pixels, **settings)
            values = features.tokens @ text.to(features.tokens).T  # (1, h*w, L)
            image_embedding, grid = features.image, features.grid
        else:
            relevance, image_embedding, grid = function(visual, pixels, text.to(session.device), **settings)
            values = relevance.T[None]  # (1, h*w, L)
    with torch.no_grad():
        values = values.float()
        if centre:
            values = values - values.mean(dim=-1, keepdim=True)
        probs = (image_embedding.float() @ text.to(values).T * session.logit_scale).softmax(dim=-1)[0]
        maps = similarity_to_maps(values, grid, out_size, scale=scale, floor=floor)[0]
        low, high = (t.flatten().tolist() for t in map_range(values, scale, floor))
    h, w = grid
    return DenseMapResult(
        labels=labels,
        maps=maps.cpu().numpy(),
        tokens=values[0].T.reshape(len(labels), h, w).cpu().numpy(),
        probs=probs.cpu().numpy(),
        method=method,
        info={
            "method": method,
            "grid": (h, w),
            "input_size": tuple(pixels.shape[-2:]),
            "options": settings,
            "centre": centre,
            "templates": None if templates is None else list(templates),
            "scale": {"kind": scale, "low": low, "high": high, "floor": floor is not None},
        },
    )
