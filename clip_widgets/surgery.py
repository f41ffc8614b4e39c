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

DEFAULT_DEPTH = 6
"""Blocks of a ViT that get the value-value path: the reference implementation's choice."""

ThresholdMethod = Literal["fixed", "quantile", "otsu"]
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


def _unit(x: torch.Tensor) -> torch.Tensor:
    """L2-normalize over channels, in at least float32 (half-precision models included)."""
    return F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, d = x.shape
    return x.reshape(n, t, heads, d // heads).transpose(1, 2)  # (N, heads, T, d_head)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(n, t, h * dh)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    attn = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    return attn @ v


def _resize_positional(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (1 + h*w, C) positional table to another grid; token 0 is kept."""
    if old == new:
        return pos
    grid = pos[1:].reshape(1, old[0], old[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new, mode="bilinear")
    return torch.cat([pos[:1], grid.permute(0, 2, 3, 1).reshape(new[0] * new[1], -1)], dim=0)


def vit_blocks(visual: nn.Module, method: str = "CLIP Surgery") -> list[nn.Module]:
    """The residual blocks of an open_clip ViT tower, after checking that ``method`` (which
    re-runs them with their own modules) covers the tower; raises :class:`UnsupportedModelError`."""
    blocks = list(visual.transformer.resblocks)
    for block in blocks:
        if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
            raise UnsupportedModelError(
                f"{method} needs ViT blocks with nn.MultiheadAttention; got {type(block).__name__}"
            )
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") == "none":
        raise UnsupportedModelError(f"{method} does not apply to ViTs with an attentional pooler")
    if getattr(visual, "final_ln_after_pool", False):
        raise UnsupportedModelError(f"{method} does not apply to ViTs with final_ln_after_pool")
    return blocks


def vit_embed(visual: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """A ViT's token embedding of ``pixels`` (N, 3, H, W), as the model does it, with the
    positional table resized for other input sizes: ``(N, 1 + h*w, C)`` after ``ln_pre``, and the
    patch grid ``(h, w)``."""
    x = visual.conv1(pixels)
    grid = (x.shape[-2], x.shape[-1])
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    native = tuple(getattr(visual, "grid_size", grid))
    x = x + _resize_positional(visual.positional_embedding, native, grid).to(x.dtype)
    return visual.ln_pre(x), grid


def run_blocks(visual: nn.Module, blocks: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """Batch-first tokens ``x`` (N, T, C) through ``blocks`` unmodified, whatever layout the tower uses."""
    batch_first = getattr(visual.transformer, "batch_first", True)
    for block in blocks:
        x = block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)
    return x


def vit_global_token(visual: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """The token a ViT pools into its image embedding, (N, 1, C): the class token, or the patch
    mean for average-pooled towers."""
    if getattr(visual, "pool_type", "tok") == "avg":
        return tokens[:, 1:].mean(dim=1, keepdim=True)
    return tokens[:, :1]


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
        q, k, v = (_split_heads(t, heads) for t in qkv.chunk(3, dim=-1))
        out_original = attn.out_proj(_merge_heads(_attend(q, k, v, scale)))
        out_surgery = attn.out_proj(_merge_heads(_attend(v, v, v, scale)))
        surgery = surgery + block.ls_1(out_surgery)
        original = original + block.ls_1(out_original)
        original = original + block.ls_2(block.mlp(block.ln_2(original)))

    # Average-pooled ViTs have no class token to keep; their global token is the patch mean.
    global_token = vit_global_token(visual, original)
    surgery = torch.cat([global_token, surgery[:, 1:]], dim=1)
    original = torch.cat([global_token, original[:, 1:]], dim=1)
    project = vit_projection(visual)
    return DenseTokens(surgery=project(surgery), raw=project(original), grid=grid)


def vit_projection(visual: nn.Module):
    """A function from ViT tokens (N, T, C) to unit-norm embeddings (N, T, D): ``ln_post`` and ``proj``."""

    def project(tokens: torch.Tensor) -> torch.Tensor:
        tokens = visual.ln_post(tokens)
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return _unit(tokens)

    return project


def resnet_features(visual: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """A ModifiedResNet's last feature map for ``pixels``, as tokens (N, h*w, C), and its grid (h, w)."""
    x = visual.stem(pixels)
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
    grid = (x.shape[-2], x.shape[-1])
    return x.flatten(2).transpose(1, 2), grid


def resnet_pool_inputs(visual: nn.Module, features: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """What the attention pool attends over: the mean token, then the feature tokens (N, 1 + h*w, C),
    with its positional table (resized for other grids) added."""
    pool = visual.attnpool
    x = torch.cat([features.mean(dim=1, keepdim=True), features], dim=1)
    side = round((pool.positional_embedding.shape[0] - 1) ** 0.5)
    return x + _resize_positional(pool.positional_embedding, (side, side), grid).to(x.dtype)


def _resnet_dense_tokens(visual: nn.Module, pixels: torch.Tensor) -> DenseTokens:
    pool = visual.attnpool
    features, grid = resnet_features(visual, pixels)
    x = resnet_pool_inputs(visual, features, grid)

    heads = pool.num_heads
    scale = (x.shape[-1] // heads) ** -0.5

    # Raw CLIP: the model's own attention pool with every token as a query.
    q = _split_heads(pool.q_proj(x), heads)
    k = _split_heads(pool.k_proj(x), heads)
    v = _split_heads(pool.v_proj(x), heads)
    raw = pool.c_proj(_merge_heads(_attend(q, k, v, scale)))

    # Surgery: value-value attention for every token. The paper mentions L2-normalized values at
    # a higher temperature for ResNets, but its public implementation never switches that
    # setting on for the attention pool; maps here follow the implementation.
    surgery = pool.c_proj(_merge_heads(_attend(v, v, v, scale)))
    return DenseTokens(surgery=_unit(surgery), raw=_unit(raw), grid=grid)


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
# Thresholds and point prompts
# ---------------------------------------------------------------------------------------------


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the cut that maximizes the between-class variance."""
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centers = (edges[:-1] + edges[1:]) / 2
    weight_below = np.cumsum(counts)
    weight_above = np.cumsum(counts[::-1])[::-1]
    mean_below = np.cumsum(counts * centers) / np.maximum(weight_below, 1)
    mean_above = (np.cumsum((counts * centers)[::-1]) / np.maximum(weight_above[::-1], 1))[::-1]
    between = weight_below[:-1] * weight_above[1:] * (mean_below[:-1] - mean_above[1:]) ** 2
    return float(centers[int(np.argmax(between))])


def threshold_value(similarity_map: np.ndarray, method: ThresholdMethod = "fixed", value: float = 0.5) -> float:
    """The cutoff for a map: ``value`` itself (fixed), the ``value``-quantile, or Otsu's."""
    if method == "fixed":
        return float(value)
    if method == "quantile":
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"a quantile must lie in [0, 1], got {value}")
        return float(np.quantile(similarity_map, value))
    if method == "otsu":
        return otsu_threshold(similarity_map)
    raise ValueError(f"unknown threshold method {method!r}; choose 'fixed', 'quantile' or 'otsu'")


def threshold_map(similarity_map: np.ndarray, method: ThresholdMethod = "fixed", value: float = 0.5) -> np.ndarray:
    """A boolean mask of the pixels at or above the map's cutoff (see :func:`threshold_value`)."""
    similarity_map = np.asarray(similarity_map)
    return similarity_map >= threshold_value(similarity_map, method, value)


def similarity_map_to_points(
    token_map: np.ndarray | torch.Tensor,
    shape: tuple[int, int],
    *,
    threshold: float = 0.8,
    down_sample: int = 2,
    value_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Point prompts for Segment Anything from one label's patch-token similarities.

    ``token_map`` is (h, w) (or a flat square h*w). It is smoothed by a bilinear down-sampling
    by ``down_sample``, normalized (min-max, or from ``value_range`` = (low, high), the scale of
    the map shown beside it, so a cold map gives no positive points), and the cells at or above
    ``threshold`` become
    positive points (the highest first), as many of the lowest cells become negative points,
    at most half the cells each. Returns ``points`` (K, 2) int as (x, y) pixel coordinates of
    an image of ``shape`` (H, W), and ``labels`` (K,) uint8, 1 for positive and 0 for negative:
    the ``point_coords`` / ``point_labels`` pair that ``SamPredictor.predict`` takes.
    """
    grid = torch.as_tensor(np.asarray(token_map, dtype=np.float32))
    if grid.ndim == 1:
        side = round(grid.numel() ** 0.5)
        if side * side != grid.numel():
            raise ValueError(f"a flat token map must be square, got {grid.numel()} tokens")
        grid = grid.reshape(side, side)
    if grid.ndim != 2:
        raise ValueError(f"token_map must be (h, w) or flat, got shape {tuple(grid.shape)}")
    small = (max(1, grid.shape[0] // down_sample), max(1, grid.shape[1] // down_sample))
    cells = F.interpolate(grid[None, None], size=small, mode="bilinear")[0, 0]
    rows, cols = cells.shape
    flat = cells.reshape(-1)
    low, high = (flat.min(), flat.max()) if value_range is None else map(torch.tensor, value_range)
    flat = ((flat - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    order = flat.argsort(stable=True)
    count = min(int((flat >= threshold).sum()), flat.numel() // 2)
    chosen = torch.cat([order[flat.numel() - count :], order[:count]]) if count else order[:0]
    scale_y, scale_x = shape[0] / rows, shape[1] / cols
    xs = torch.clamp((chosen % cols + 0.5) * scale_x, max=shape[1] - 1).long()
    ys = torch.clamp((chosen // cols + 0.5) * scale_y, max=shape[0] - 1).long()
    points = torch.stack([xs, ys], dim=1).numpy().astype(np.int64).reshape(-1, 2)
    labels = np.concatenate([np.ones(count, np.uint8), np.zeros(count, np.uint8)])
    return points, labels


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
