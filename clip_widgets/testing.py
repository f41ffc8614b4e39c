"""Tiny open_clip model configs for tests, benchmarks and offline demos.

The configs are real open_clip architectures (``open_clip.CLIP``) at toy sizes, so every code
path that runs on a hub model runs on them too, in seconds on a CPU.
"""

from __future__ import annotations

import copy
from typing import Any

TINY_VIT: dict[str, Any] = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
"""A 2-block ViT (32 px, patch 8: a 4 x 4 grid of patch tokens, 2 heads) with a 1-block text tower."""

TINY_RESNET: dict[str, Any] = {
    "embed_dim": 32,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
"""A ModifiedResNet with one bottleneck per stage (64 px in, a 2 x 2 map into the attention pool)."""

SMALL_VIT: dict[str, Any] = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 224, "patch_size": 16, "width": 128, "layers": 4, "head_width": 64},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
"""A 4-block ViT at CLIP's usual 224 px / patch 16 (a 14 x 14 token grid), still fast on a CPU."""

TINY_CONFIGS = {"tiny-vit": TINY_VIT, "tiny-resnet": TINY_RESNET, "small-vit": SMALL_VIT}


def tiny_config(name: str = "tiny-vit", **vision_overrides: Any) -> dict[str, Any]:
    """A deep copy of a tiny config, with optional ``vision_cfg`` overrides (e.g. ``layers=6``)."""
    if name not in TINY_CONFIGS:
        raise KeyError(f"unknown tiny config {name!r}; choose one of {sorted(TINY_CONFIGS)}")
    cfg = copy.deepcopy(TINY_CONFIGS[name])
    cfg["vision_cfg"].update(vision_overrides)
    return cfg
