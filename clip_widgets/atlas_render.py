"""Pictures of an atlas: whitened feature inversions of each cell's mean activation (the icons),
class-filtered opacity, the whole atlas as one image, and PNG tile pyramids."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .atlas_layout import AtlasGrid
from .featvis.objectives import ICON_POWER

if TYPE_CHECKING:
    from collections.abc import Callable

    from .featvis.objectives import Where
    from .featvis.param import ImageParam


def whitening_matrix(activations: np.ndarray, eps: float = 1e-2, chunk: int = 65536) -> np.ndarray:
    """``(D, D)`` inverse covariance of the activations (ridge ``eps`` times the mean variance),
    for taking the atlas objective in whitened space. Accumulated in chunks over memory-mapped rows."""
    n, dim = activations.shape
    total = np.zeros(dim, np.float64)
    outer = np.zeros((dim, dim), np.float64)
    for start in range(0, n, chunk):
        block = np.asarray(activations[start : start + chunk], np.float64)
        total += block.sum(0)
        outer += block.T @ block
    mean = total / n
    covariance = outer / n - np.outer(mean, mean)
    ridge = eps * np.trace(covariance) / dim
    return np.linalg.inv(covariance + ridge * np.eye(dim)).astype(np.float32)


def atlas_icons(
    session: Any,
    layer: str,
    grid: AtlasGrid,
    *,
    whitening: np.ndarray | None = None,
    power: float = ICON_POWER,
    where: Where = "patches",
    steps: int = 96,
    size: int | None = None,
    chunk: int = 32,
    param: Callable[[int], ImageParam] | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    **render_kw: Any,
) -> np.ndarray:
    """Feature inversions of every filled cell's mean activation, ``(size, size, H, W, 3)``
    uint8 (black where a cell is empty), optimized in batches of ``chunk`` cells with the
    dot x cosine^``power`` objective (in whitened space with a ``whitening`` matrix) at the
    positions ``where`` picks: every patch (the default), so an icon is the direction's texture,
    or ``"center"``, lucid's choice, one position in its context (see :data:`~.featvis.objectives.ICON_POWER` for
    the power). ``param(batch)`` makes each chunk's parameterization (default: the renderer's).
    With ``cache`` (a ``.npy`` path), icons are read from it when it matches the grid, and
    written after rendering, so re-opening costs nothing."""
    from .featvis import objectives as obj  # noqa: PLC0415
    from .featvis import render  # noqa: PLC0415
    from .featvis.param import ImageParam  # noqa: PLC0415

    if isinstance(param, ImageParam):
        raise TypeError("atlas_icons' param makes each chunk's parameterization: pass a function of the batch size")

    side = int(size or session.image_size[0])
    cache_path = Path(cache) if cache is not None else None
    if cache_path is not None and cache_path.is_file():
        icons = np.load(cache_path)
        if icons.shape == (grid.size, grid.size, side, side, 3):
            return icons
    icons = np.zeros((grid.size, grid.size, side, side, 3), np.uint8)
    cells = np.argwhere(grid.filled)
    white = None if whitening is None else torch.as_tensor(whitening)
    with tqdm(total=len(cells), desc=f"atlas icons {grid.size}x{grid.size}", unit="icon", disable=not progress) as bar:
        for start in range(0, len(cells), chunk):
            part = cells[start : start + chunk]
            directions = torch.from_numpy(grid.means[part[:, 0], part[:, 1]])
            objective = obj.direction_cossim(layer, directions, power=power, where=where, whitening=white)
            chosen = None if param is None else param(len(part))
            result = render(session, objective, param=chosen, batch=len(part), steps=steps, size=side, progress=False,
                            **render_kw)  # fmt: skip
            icons[part[:, 0], part[:, 1]] = result.images
            bar.update(len(part))
            if result.interrupted:
                return icons  # partial: not cached
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_path, icons)
    return icons


# -- class views, rendering and tiles ------------------------------------------------------------


def class_opacity(cells: np.ndarray, class_index: int, floor: float = 0.1) -> np.ndarray:
    """``(size, size)`` opacity for a class-filtered atlas: each cell's attribution to the class,
    positive part over the largest, so cells that push the class show and the rest fade to ``floor``."""
    values = np.clip(cells[..., class_index], 0, None)
    top = values.max()
    return np.where(top > 0, floor + (1 - floor) * values / max(top, 1e-12), floor).astype(np.float32)


def class_rows(attributions: np.ndarray, class_index: int) -> np.ndarray:
    """Indices of the activations attributed most to ``class_index`` (and positively): what a
    class activation atlas lays out on its own."""
    best = attributions.argmax(1)
    return np.flatnonzero((best == class_index) & (attributions[:, class_index] > 0))


def mosaic(cells: np.ndarray) -> np.ndarray:
    """``(rows, cols, H, W, C)`` pictures laid out as one ``(rows * H, cols * W, C)`` image, each at its
    cell: the one layout of an atlas, whole (:func:`render_atlas`) or tile by tile (the widget)."""
    rows, cols, height, width, channels = cells.shape
    return np.ascontiguousarray(cells.transpose(0, 2, 1, 3, 4).reshape(rows * height, cols * width, channels))


def resize_icons(icons: np.ndarray, side: int) -> np.ndarray:
    """``(rows, cols, H, W, 3)`` uint8 icons at ``side`` x ``side`` pixels (bilinear); as they are if
    already that size."""
    from PIL import Image  # noqa: PLC0415

    if icons.shape[2:4] == (side, side):
        return icons
    resized = [[np.asarray(Image.fromarray(icon).resize((side, side), Image.Resampling.BILINEAR)) for icon in line]
               for line in icons]  # fmt: skip
    return np.asarray(resized, np.uint8).reshape(*icons.shape[:2], side, side, icons.shape[-1])


def render_atlas(icons: np.ndarray, opacity: np.ndarray | None = None, background: int = 255) -> np.ndarray:
    """The atlas as one ``(size * H, size * W, 3)`` uint8 image: icon (row, col) at its place,
    blended towards ``background`` by ``opacity``; empty (all-zero) icons are left as background."""
    size, _, height, width, _ = icons.shape
    alpha = np.ones((size, size), np.float32) if opacity is None else np.asarray(opacity, np.float32)
    empty = ~icons.reshape(size, size, -1).any(-1)
    alpha = np.where(empty, 0.0, alpha)[:, :, None, None, None]
    blended = icons.astype(np.float32) * alpha + background * (1 - alpha)
    return mosaic(np.rint(blended).astype(np.uint8))


def save_tile_pyramid(levels: dict[int, np.ndarray], directory: str | os.PathLike, tile_cells: int = 8) -> dict:
    """Write atlases of several grid sizes (``{grid size: icons}``) as PNG tiles of
    ``tile_cells`` x ``tile_cells`` icons, ``<directory>/<grid size>/<row>_<col>.png``, with an
    ``index.json`` describing the levels. Returns the index."""
    from PIL import Image  # noqa: PLC0415

    root = Path(directory)
    index = {"tile_cells": tile_cells, "levels": []}
    for size in sorted(levels):
        icons = levels[size]
        picture = render_atlas(icons)
        icon_px = icons.shape[2]
        tile_px = tile_cells * icon_px
        tiles = -(-size // tile_cells)
        (root / str(size)).mkdir(parents=True, exist_ok=True)
        for row in range(tiles):
            for col in range(tiles):
                tile = picture[row * tile_px : (row + 1) * tile_px, col * tile_px : (col + 1) * tile_px]
                Image.fromarray(np.ascontiguousarray(tile)).save(root / str(size) / f"{row}_{col}.png")
        index["levels"].append({"grid": size, "tiles": tiles, "icon_px": icon_px, "path": str(size)})
    (root / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index
