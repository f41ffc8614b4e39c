"""CLIP Surgery (Li et al., 2023): training-free explanation maps for CLIP.

Two changes to a trained CLIP, both applied at inference time:

* **Architecture surgery.** Beside the model's own path, a second path runs through the last
  ``depth`` blocks of the image tower in which each attention is value-value attention
  (``softmax(v v^T) v``) and the feed-forward layers are skipped. Its patch tokens keep their
  locality, whereas the original path's patch tokens are dominated by global features. The class
  token comes from the original path. ResNets get the same treatment in their attention pool.
* **Feature surgery.** Each patch-label similarity is split into per-channel products; the part
  every label shares (their mean, weighted by how likely each label is for the whole image) is
  redundant and removed. Done as matrix products, so large label sets never build a
  tokens x labels x channels tensor.

The forward passes here reuse the model's own modules and weights and never modify the model.
Everything returns tensors or numpy arrays; widgets are views over :func:`surgery_maps`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnsupportedModelError
from .points import ThresholdMethod, otsu_threshold, similarity_map_to_points, threshold_map, threshold_value
from .towers import (
    attend,
    merge_heads,
    resnet_features,
    resnet_pool_inputs,
    run_blocks,
    split_heads,
    unit_norm,
    vit_blocks,
    vit_embed,
    vit_global_token,
    vit_projection,
)

__all__ = [  # thresholds and point prompts live in .points, the towers' pieces in .towers
    "DEFAULT_DEPTH", "DenseTokens", "MapScale", "SurgeryResult", "ThresholdMethod", "dense_tokens", "feature_surgery",
    "input_hw", "map_range", "otsu_threshold", "similarity_map_to_points", "similarity_to_maps", "surgery_maps",
    "threshold_map", "threshold_value", "whole_image_pixels",
]  # fmt: skip

DEFAULT_DEPTH = 6
"""Blocks of a ViT that get the value-value path: the reference implementation's choice."""

MapScale = Literal["joint", "label"]


# ---------------------------------------------------------------------------------------------
# Dense image tokens: the surgery path and the raw path in one forward pass
# ---------------------------------------------------------------------------------------------


@dataclass
class DenseTokens:
    """Projected image tokens of both paths, L2-normalized over channels.

    ``surgery`` and ``raw`` are ``(N, 1 + h*w, D)``; token 0 is the global (class) token,
    the rest are patch tokens in row-major order over a ``grid`` of ``(h, w)``.
    """

    surgery: torch.Tensor
    raw: torch.Tensor
    grid: tuple[int, int]


def _vit_dense_tokens(visual: nn.Module, pixels: torch.Tensor, depth: int) -> DenseTokens:
    blocks = vit_blocks(visual)
    depth = max(1, min(depth, len(blocks)))
    x, grid = vit_embed(visual, pixels)
    x = run_blocks(visual, blocks[: len(blocks) - depth], x)

    # Dual path: `original` is the unmodified model; `surgery` accumulates value-value attention
    # computed from the original path's tokens and skips every feed-forward layer.
    original, surgery = x, x
    for block in blocks[len(blocks) - depth :]:
        attn: nn.MultiheadAttention = block.attn
        heads = attn.num_heads
        scale = (attn.embed_dim // heads) ** -0.5
        qkv = F.linear(block.ln_1(original), attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = (split_heads(t, heads) for t in qkv.chunk(3, dim=-1))
        out_original = attn.out_proj(merge_heads(attend(q, k, v, scale)))
        out_surgery = attn.out_proj(merge_heads(attend(v, v, v, scale)))
        surgery = surgery + block.ls_1(out_surgery)
        original = original + block.ls_1(out_original)
        original = original + block.ls_2(block.mlp(block.ln_2(original)))

    # Average-pooled ViTs have no class token to keep; their global token is the patch mean.
    global_token = vit_global_token(visual, original)
    surgery = torch.cat([global_token, surgery[:, 1:]], dim=1)
    original = torch.cat([global_token, original[:, 1:]], dim=1)
    project = vit_projection(visual)
    return DenseTokens(surgery=project(surgery), raw=project(original), grid=grid)


def _resnet_dense_tokens(visual: nn.Module, pixels: torch.Tensor) -> DenseTokens:
    pool = visual.attnpool
    features, grid = resnet_features(visual, pixels)
    x = resnet_pool_inputs(visual, features, grid)

    heads = pool.num_heads
    scale = (x.shape[-1] // heads) ** -0.5

    # Raw CLIP: the model's own attention pool with every token as a query.
    q = split_heads(pool.q_proj(x), heads)
    k = split_heads(pool.k_proj(x), heads)
    v = split_heads(pool.v_proj(x), heads)
    raw = pool.c_proj(merge_heads(attend(q, k, v, scale)))

    # Surgery: value-value attention for every token. The paper mentions L2-normalized values at
    # a higher temperature for ResNets, but its public implementation never switches that
    # setting on for the attention pool; maps here follow the implementation.
    surgery = pool.c_proj(merge_heads(attend(v, v, v, scale)))
    return DenseTokens(surgery=unit_norm(surgery), raw=unit_norm(raw), grid=grid)


def dense_tokens(model: nn.Module, pixels: torch.Tensor, *, depth: int = DEFAULT_DEPTH) -> DenseTokens:
    """Surgery and raw image tokens of an open_clip model for preprocessed ``pixels`` (N, 3, H, W).

    ``model`` is an ``open_clip.CLIP`` (or its ``.visual``). ``depth`` is how many final ViT
    blocks get the value-value path (clipped to the number of blocks; ResNets ignore it).
    Raises :class:`UnsupportedModelError` for towers the method does not cover.
    """
    visual = getattr(model, "visual", model)
    with torch.no_grad():
        pixels = pixels.to(next(visual.parameters()).dtype)
        if hasattr(visual, "transformer") and hasattr(visual, "conv1"):
            return _vit_dense_tokens(visual, pixels, depth)
        if hasattr(visual, "attnpool") and hasattr(visual, "layer4"):
            return _resnet_dense_tokens(visual, pixels)
    raise UnsupportedModelError(
        f"CLIP Surgery covers open_clip ViT and ModifiedResNet image towers, not {type(visual).__name__}"
    )


# ---------------------------------------------------------------------------------------------
# Feature surgery and similarity maps
# ---------------------------------------------------------------------------------------------


def feature_surgery(
    image_tokens: torch.Tensor,
    text_features: torch.Tensor,
    *,
    redundant: torch.Tensor | None = None,
    temperature: float = 2.0,
) -> torch.Tensor:
    """Token-label similarity with the redundant features removed, shape (N, T, L).

    ``image_tokens`` (N, T, D) and ``text_features`` (L, D) are L2-normalized; token 0 is the
    global token. Without ``redundant``, the redundant feature of token ``i`` is the mean over
    labels of ``image[i] * text[l] * w[l]`` where ``w = p / mean(p)`` and ``p`` is the softmax of
    ``temperature`` x the global token's similarities. Because the redundant part is linear in
    the channel products, it is subtracted after the channel sum:
    ``S_w[i, l] - mean_l S_w[i, l]`` with ``S_w = (image @ text^T) * w``.
    With ``redundant`` (D,) or (1, D), e.g. the embedding of an empty prompt, the map is
    ``image @ (text - redundant)^T``; this is what to use with a single label, whose
    label-mean form is identically zero.
    """
    text_features = text_features.to(image_tokens.dtype)
    if redundant is not None:
        return image_tokens @ (text_features - redundant.to(image_tokens.dtype).reshape(1, -1)).T
    similarity = image_tokens @ text_features.T  # (N, T, L)
    weights = (similarity[:, :1, :] * temperature).softmax(dim=-1)
    weights = weights / weights.mean(dim=-1, keepdim=True)
    weighted = similarity * weights
    return weighted - weighted.mean(dim=-1, keepdim=True)


def map_range(
    similarity: torch.Tensor, scale: MapScale = "label", floor: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The similarities that become 0 and 1 of a map, broadcastable to ``similarity`` (N, T, L).

    ``"label"`` stretches each label's map from its own lowest to its highest token (the
    reference implementation's min-max), so a label absent from the image still shows hot
    spots. ``"joint"`` puts all labels of an image on one scale, so heat can be compared across
    labels. ``floor`` replaces the low end: similarities at or below it map to 0 (the remedy the
    CLIP Surgery write-up gives for absent labels, a threshold before normalizing).
    """
    if scale == "label":
        low, high = similarity.amin(dim=1, keepdim=True), similarity.amax(dim=1, keepdim=True)
    elif scale == "joint":
        low, high = similarity.amin(dim=(1, 2), keepdim=True), similarity.amax(dim=(1, 2), keepdim=True)
    else:
        raise ValueError(f"unknown map scale {scale!r}; choose 'joint' or 'label'")
    if floor is not None:
        low = torch.full_like(low, float(floor))
        high = torch.maximum(high, low + 1e-6)  # nothing above the floor: an all-cold map
    return low, high


def similarity_to_maps(
    similarity: torch.Tensor,
    grid: tuple[int, int],
    size: tuple[int, int],
    *,
    scale: MapScale = "label",
    floor: float | None = None,
) -> torch.Tensor:
    """Patch-token similarities (N, h*w, L) to maps (N, L, H, W) in [0, 1].

    Each label's similarities are mapped to [0, 1] on the range :func:`map_range` gives (by
    default each label's own min-max over the patch tokens), laid out on the ``grid`` and
    resized bilinearly to ``size`` (H, W).
    """
    low, high = map_range(similarity, scale, floor)
    normalized = ((similarity - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    n, _, labels = normalized.shape
    maps = normalized.transpose(1, 2).reshape(n, labels, grid[0], grid[1])
    return F.interpolate(maps, size=tuple(size), mode="bilinear")


# ---------------------------------------------------------------------------------------------
# The high-level verb
# ---------------------------------------------------------------------------------------------


@dataclass
class SurgeryResult:
    """Maps for one image and a list of labels.

    ``surgery`` and ``raw`` are (L, H, W) float32 in [0, 1] at the requested output size;
    ``surgery_tokens`` and ``raw_tokens`` are the un-normalized patch similarities (L, h, w)
    on the model's patch grid (what point prompts are made from); ``probs`` (L,) are the
    zero-shot probabilities of the labels for the whole image (softmax over the labels).
    """

    labels: list[str]
    surgery: np.ndarray
    raw: np.ndarray
    surgery_tokens: np.ndarray
    raw_tokens: np.ndarray
    probs: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def points(self, label: int | str, *, threshold: float = 0.8, mode: str = "surgery", down_sample: int = 2):
        """Segment Anything point prompts for a label (see :func:`similarity_map_to_points`)."""
        index = self.labels.index(label) if isinstance(label, str) else int(label)
        tokens = self.surgery_tokens if mode == "surgery" else self.raw_tokens
        return similarity_map_to_points(tokens[index], self.surgery.shape[-2:], threshold=threshold,
                                        down_sample=down_sample, value_range=self.value_range(index, mode))  # fmt: skip

    def value_range(self, label: int | str, mode: str = "surgery") -> tuple[float, float] | None:
        """The similarities drawn as 0 and 1 in ``label``'s map (None for results made without a scale)."""
        index = self.labels.index(label) if isinstance(label, str) else int(label)
        scale = self.info.get("scale", {}).get(mode)
        if scale is None:
            return None
        pick = index if len(scale["low"]) > 1 else 0
        return float(scale["low"][pick]), float(scale["high"][pick])


def input_hw(session: Any, input_size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """The model input size ``(H, W)`` to use: ``input_size`` (a side or ``(H, W)``), or by
    default the model's own (``session.image_size``)."""
    if input_size is None:
        return (int(session.image_size[0]), int(session.image_size[1]))
    if isinstance(input_size, (int, np.integer)):
        size = (int(input_size), int(input_size))
    else:
        size = tuple(int(s) for s in input_size)
        if len(size) != 2:
            raise ValueError(f"input_size must be a side or (height, width), got {input_size!r}")
    if min(size) < 1:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return size


def whole_image_pixels(session: Any, picture: Any, input_size: int | Sequence[int] | None = None) -> torch.Tensor:
    """The whole image resized to the model's input size (no crop, so maps cover all of it),
    normalized with the model's own mean and std: (1, 3, H, W) on the session's device.

    ``input_size`` (a side or ``(H, W)``) resizes to another input size instead; dense maps then
    come on a finer or coarser patch grid (ViT positional tables are resized to match)."""
    from PIL import Image

    height, width = input_hw(session, input_size)
    resized = picture.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(session.mean, dtype=torch.float32).reshape(3, 1, 1)
    std = torch.tensor(session.std, dtype=torch.float32).reshape(3, 1, 1)
    return ((pixels - mean) / std)[None].to(device=session.device, dtype=session.dtype)


def surgery_maps(
    session: Any,
    image: Any,
    labels: Sequence[str],
    *,
    templates: Sequence[str] | None = None,
    size: tuple[int, int] | Literal["image", "input"] = "image",
    depth: int = DEFAULT_DEPTH,
    temperature: float = 2.0,
    redundant_prompt: str = "",
    scale: MapScale = "joint",
    floor: float | None = 0.0,
    input_size: int | tuple[int, int] | None = None,
) -> SurgeryResult:
    """CLIP Surgery and raw CLIP maps of ``labels`` over one image.

    ``session`` is a :class:`clip_widgets.ModelSession`; ``image`` anything
    :func:`clip_widgets.images.load_image` reads. Text embeddings come from the session's
    cache, with an optional prompt-template ensemble. ``size`` is the output map size: the
    image's own size (``"image"``), the model input size (``"input"``), or ``(H, W)``.
    With a single label, feature surgery subtracts the embedding of ``redundant_prompt``.

    ``scale="joint"`` (the default) draws all labels' maps on one scale, so a label absent from
    the image looks cold next to one that is present; ``"label"`` stretches each map on its own,
    as the reference implementation does. Surgery similarities are centred on the mean over
    labels, so ``floor=0.0`` (the default) maps every patch that is no more like a label than
    the average label to 0; ``None`` uses the lowest similarity. Raw CLIP maps use the scale
    without a floor. ``info["scale"]`` holds each map kind's (low, high) in similarity units,
    per label with ``"label"``: the numbers a legend needs.

    ``input_size`` (a side or ``(H, W)``) is the size the image is resized to before the model
    sees it, by default the model's own; a larger one gives a finer patch grid.
    """
    from .images import load_image
    from .texts import template_list, text_list

    labels = [str(label) for label in text_list(labels)]
    templates = template_list(templates)
    if not labels:
        raise ValueError("give at least one label")
    picture = load_image(image)
    if size == "image":
        out_size = (picture.height, picture.width)
    elif size == "input":
        out_size = input_hw(session, input_size)
    else:
        out_size = (int(size[0]), int(size[1]))

    pixels = whole_image_pixels(session, picture, input_size)
    with session.lock:  # runs the tower's modules directly: no other thread's hooks may be on them
        tokens = dense_tokens(session.model, pixels, depth=depth)
    text = session.encode_text(labels, templates).to(tokens.surgery.device)
    redundant = None
    if len(labels) == 1:
        redundant = session.encode_text([redundant_prompt], templates).to(tokens.surgery.device)[0]
    with torch.no_grad():
        surgery = feature_surgery(tokens.surgery, text, redundant=redundant, temperature=temperature)
        raw = tokens.raw @ text.T
        probs = (raw[0, 0] * session.logit_scale).softmax(dim=-1)
        surgery_maps_ = similarity_to_maps(surgery[:, 1:], tokens.grid, out_size, scale=scale, floor=floor)[0]
        raw_maps = similarity_to_maps(raw[:, 1:], tokens.grid, out_size, scale=scale)[0]
        floors = {"surgery": floor is not None, "raw": False}
        ranges = {
            "surgery": [t.flatten().tolist() for t in map_range(surgery[:, 1:], scale, floor)],
            "raw": [t.flatten().tolist() for t in map_range(raw[:, 1:], scale)],
        }
    h, w = tokens.grid
    return SurgeryResult(
        labels=labels,
        surgery=surgery_maps_.cpu().numpy(),
        raw=raw_maps.cpu().numpy(),
        surgery_tokens=surgery[0, 1:].T.reshape(len(labels), h, w).cpu().numpy(),
        raw_tokens=raw[0, 1:].T.reshape(len(labels), h, w).cpu().numpy(),
        probs=probs.cpu().numpy(),
        info={
            "grid": (h, w),
            "input_size": tuple(pixels.shape[-2:]),
            "depth": depth,
            "templates": None if templates is None else list(templates),
            "scale": {
                kind: {"kind": scale, "low": low, "high": high, "floor": floors[kind]}
                for kind, (low, high) in ranges.items()
            },
        },
    )
