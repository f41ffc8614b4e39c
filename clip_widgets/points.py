"""Thresholds of a similarity map and Segment Anything point prompts from it."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["ThresholdMethod", "otsu_threshold", "similarity_map_to_points", "threshold_map", "threshold_value"]

ThresholdMethod = Literal["fixed", "quantile", "otsu"]


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
