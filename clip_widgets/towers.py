"""The pieces of open_clip image towers that dense-map methods re-run with the model's own
modules and weights (never modifying the model): a ViT's embedding, blocks, global token and
projection, a ModifiedResNet's last feature map and attention-pool inputs, and the attention
arithmetic they share. Other input sizes than the model's own get a resized positional table."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UnsupportedModelError

__all__ = ["attend", "merge_heads", "resize_positional", "resnet_features", "resnet_pool_inputs", "run_blocks",
           "split_heads", "unit_norm", "vit_blocks", "vit_embed", "vit_global_token", "vit_projection"]  # fmt: skip


def unit_norm(x: torch.Tensor) -> torch.Tensor:
    """L2-normalize over channels, in at least float32 (half-precision models included)."""
    return F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, d = x.shape
    return x.reshape(n, t, heads, d // heads).transpose(1, 2)  # (N, heads, T, d_head)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    n, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(n, t, h * dh)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    attn = (q @ k.transpose(-2, -1) * scale).softmax(dim=-1)
    return attn @ v


def resize_positional(pos: torch.Tensor, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
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
    x = x + resize_positional(visual.positional_embedding, native, grid).to(x.dtype)
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


def vit_projection(visual: nn.Module):
    """A function from ViT tokens (N, T, C) to unit-norm embeddings (N, T, D): ``ln_post`` and ``proj``."""

    def project(tokens: torch.Tensor) -> torch.Tensor:
        tokens = visual.ln_post(tokens)
        if visual.proj is not None:
            tokens = tokens @ visual.proj
        return unit_norm(tokens)

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
    return x + resize_positional(pool.positional_embedding, (side, side), grid).to(x.dtype)
