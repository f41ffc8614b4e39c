"""The atlas's map: activations laid out in the unit square, and a grid of cells over it.

* :func:`layout`: UMAP (cosine) to 2-D, then :func:`normalize_layout`: outliers clipped, each
  axis spread towards even marginals so UMAP's dense islands cover the square.
* :func:`bin_grid`: a grid of cells over the layout; each cell's count and mean activation,
  cells with fewer than ``min_count`` activations left empty.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch

LAYOUT_MIN_DIST = 0.3  # UMAP's: how tightly it may pack similar activations (its default 0.1)
LAYOUT_UNIFORM = 1.0  # how far each layout axis moves towards even marginals (normalize_layout)


def layout(
    activations: np.ndarray,
    *,
    n_neighbors: int = 15,
    min_dist: float = LAYOUT_MIN_DIST,
    seed: int | None = 0,
    clip: float = 0.01,
    uniform: float = LAYOUT_UNIFORM,
) -> np.ndarray:
    """UMAP with the cosine metric to 2-D, then scaled into the unit square by
    :func:`normalize_layout` (outliers clipped, ``uniform`` of the way to even marginals)."""
    import umap  # noqa: PLC0415 - heavy (numba); only the atlas needs it

    _cache_compiled_umap()
    data = np.asarray(activations, dtype=np.float32)
    if len(data) < 4:
        raise ValueError(f"a layout needs at least 4 activations, got {len(data)}")
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(data) - 1), min_dist=min_dist, metric="cosine",
                        random_state=seed, n_jobs=1 if seed is not None else -1)  # fmt: skip
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*")
            coords = reducer.fit_transform(data)
    finally:  # numba's OpenMP pool resets the one torch shares to every core: give torch back its own
        torch.set_num_threads(threads)
    return normalize_layout(coords, clip, uniform)


@functools.cache
def _cache_compiled_umap() -> None:
    """Keep UMAP's compiled kernels on disk. Several of its numba functions are not marked for
    caching, so every new process (each kernel that draws an atlas) spent some 20 s compiling
    them again; with numba's cache turned on for them, later processes load them in about a
    second. Quietly does nothing where numba's dispatchers have changed."""
    try:
        import umap.layouts  # noqa: PLC0415
        import umap.umap_  # noqa: PLC0415
        import umap.utils  # noqa: PLC0415
        from numba.core.caching import NullCache  # noqa: PLC0415
        from numba.core.dispatcher import Dispatcher  # noqa: PLC0415

        for module in (umap.umap_, umap.utils, umap.layouts):
            for function in vars(module).values():
                if isinstance(function, Dispatcher) and isinstance(function._cache, NullCache):
                    function.enable_caching()
    except (ImportError, AttributeError, TypeError, RuntimeError):  # an unknown numba: compile as before
        return


def normalize_layout(coords: np.ndarray, clip: float = 0.01, uniform: float = 0.0) -> np.ndarray:
    """Each axis clipped to its [clip, 1 - clip] quantiles and scaled into [0, 1]; then moved
    ``uniform`` of the way towards its ranks (each axis's empirical distribution, which is even).
    UMAP packs activations into a few dense islands; binned as they are, most cells of a coarse
    grid stay empty. Ranks keep every point's order along each axis, so neighbours stay
    neighbours, and spread the islands over the square."""
    if not 0 <= uniform <= 1:
        raise ValueError(f"uniform must be in [0, 1], got {uniform}")
    low = np.quantile(coords, clip, axis=0)
    high = np.quantile(coords, 1 - clip, axis=0)
    linear = np.clip((coords - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
    if uniform:
        ranks = np.argsort(np.argsort(coords, axis=0, kind="stable"), axis=0, kind="stable")
        linear = (1 - uniform) * linear + uniform * ranks / max(len(coords) - 1, 1)
    return linear.astype(np.float32)


@dataclass
class AtlasGrid:
    """Cells of a ``size`` x ``size`` grid over a layout: ``counts`` ``(size, size)``,
    ``means`` ``(size, size, D)`` (zero where empty), and each activation's ``cell`` (row, col)."""

    size: int
    counts: np.ndarray
    means: np.ndarray
    cells: np.ndarray

    @property
    def filled(self) -> np.ndarray:
        """``(size, size)`` bool: the cells with enough activations to show."""
        return self.counts > 0

    def members(self, row: int, col: int) -> np.ndarray:
        """Indices of the activations in cell (row, col)."""
        return np.flatnonzero((self.cells[:, 0] == row) & (self.cells[:, 1] == col))


def bin_grid(coords: np.ndarray, activations: np.ndarray, size: int, min_count: int = 1,
             chunk: int = 65536) -> AtlasGrid:  # fmt: skip
    """Bin a layout (``(N, 2)`` in [0, 1], x then y) into a grid; row = y, col = x. Cells with
    fewer than ``min_count`` activations count as empty (their count and mean are zero). Means
    are accumulated in chunks, so memory-mapped activations are read once and never whole."""
    if size < 1:
        raise ValueError(f"grid size must be positive, got {size}")
    coords = np.asarray(coords, dtype=np.float64)
    cols = np.minimum((coords[:, 0] * size).astype(int), size - 1)
    rows = np.minimum((coords[:, 1] * size).astype(int), size - 1)
    flat = rows * size + cols
    counts = np.bincount(flat, minlength=size * size)
    sums = torch.zeros((size * size, activations.shape[1]), dtype=torch.float64)
    index = torch.from_numpy(flat)
    for start in range(0, len(flat), chunk):
        values = torch.from_numpy(np.asarray(activations[start : start + chunk], np.float64))
        sums.index_add_(0, index[start : start + chunk], values)
    keep = counts >= min_count
    means = np.where(keep[:, None], sums.numpy() / np.maximum(counts, 1)[:, None], 0.0)
    counts = np.where(keep, counts, 0)
    return AtlasGrid(size, counts.reshape(size, size), means.reshape(size, size, -1).astype(np.float32),
                     np.stack([rows, cols], 1))  # fmt: skip
