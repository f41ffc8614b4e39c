"""Activation atlas (Distill, 2019): many spatial activations of one layer, laid out in 2-D.

The pipeline, each step plain Python over arrays:

* :func:`collect_activations`: stream images through the model and keep one or more random
  spatial activations per image (a ResNet map position or a ViT patch token), with the image
  and position they came from, in an on-disk :class:`ActivationStore` (memory-mapped float16,
  so a million rows of 2560 values need no RAM). A killed job resumes without loss or
  duplicates: which positions an image contributes depends only on (seed, image index).
* :func:`layout` and :func:`bin_grid` (in :mod:`.atlas_layout`): UMAP (cosine) to 2-D, spread
  over the unit square; a grid of cells over it with each cell's count and mean activation.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .atlas_layout import (  # re-exported: the layout is one step of the atlas pipeline
    LAYOUT_MIN_DIST,
    LAYOUT_UNIFORM,
    AtlasGrid,
    bin_grid,
    layout,
)
from .atlas_layout import normalize_layout as normalize_layout
from .errors import ClipWidgetsError, ImageLoadError
from .examples import positions_of
from .images import _expand, load_image

META_FILE = "meta.json"
STATE_FILE = "state.json"
ACTIVATIONS_FILE = "activations.f16"
ORIGINS_FILE = "origins.i32"  # (image index, row, col) per activation
SOURCES_FILE = "sources.jsonl"


class ActivationStore:
    """The on-disk result of :func:`collect_activations`: ``activations`` ``(N, D)`` float16
    (memory-mapped), ``origins`` ``(N, 3)`` (image index, row, col) and ``sources``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not (self.path / META_FILE).is_file():
            raise FileNotFoundError(f"no activation store at {self.path} (missing {META_FILE})")
        self.meta = json.loads((self.path / META_FILE).read_text())
        state_path = self.path / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else {"processed": 0, "rows": 0}
        self.processed, self.rows = int(state["processed"]), int(state["rows"])
        lines = (self.path / SOURCES_FILE).read_text().splitlines() if (self.path / SOURCES_FILE).is_file() else []
        self.sources = [json.loads(line) for line in lines[: self.processed]]

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def activations(self) -> np.ndarray:
        """``(rows, dim)`` float16, memory-mapped read-only."""
        if self.rows == 0:
            return np.zeros((0, self.dim), np.float16)
        return np.memmap(self.path / ACTIVATIONS_FILE, dtype=np.float16, mode="r", shape=(self.rows, self.dim))

    @property
    def origins(self) -> np.ndarray:
        """``(rows, 3)`` int32: the image index (into ``sources``), row and column of each activation."""
        if self.rows == 0:
            return np.zeros((0, 3), np.int32)
        return np.fromfile(self.path / ORIGINS_FILE, dtype=np.int32, count=self.rows * 3).reshape(self.rows, 3)

    def __len__(self) -> int:
        return self.rows

    def image_source(self, index: int, images: Sequence[Any] | None = None) -> Any:
        """What to load for image ``index``: its file, or ``images[index]`` for in-memory items."""
        entry = self.sources[index]
        if not entry.get("in_memory"):
            return entry["source"]
        if images is None:
            raise ClipWidgetsError(
                f"image {entry['source']} was collected from an in-memory iterable; pass images= "
                "(the same sequence) to read it again, or collect from files"
            )
        return images[index]


def _sample_positions(index: int, seed: int, count: int, positions: int) -> np.ndarray:
    """Which positions image ``index`` contributes: fixed by (seed, index) alone, so a resumed
    run picks exactly what an uninterrupted one would."""
    rng = np.random.default_rng([seed, index])
    return rng.choice(positions, size=min(count, positions), replace=False)


def collect_activations(
    session: Any,
    sources: Iterable[Any] | str | os.PathLike,
    layer: str,
    store: str | os.PathLike,
    *,
    per_image: int = 1,
    seed: int = 0,
    batch_size: int = 32,
    checkpoint_every: int = 20,
    total: int | None = None,
    progress: bool = True,
) -> ActivationStore:
    """Keep ``per_image`` random spatial activations of ``layer`` per image of ``sources`` (a
    folder, a path or an iterable of images, in a stable order) in ``store``. Running it again
    on the same store resumes after the last checkpoint."""
    info = session.layers[layer]  # unknown names raise, listing the valid ones
    if info.kind == "vector":
        raise ClipWidgetsError(f"layer {layer!r} has no spatial positions; choose a feature map or token layer")
    if per_image < 1 or batch_size < 1:
        raise ValueError(f"per_image and batch_size must be positive, got {per_image}, {batch_size}")
    root = Path(store)
    root.mkdir(parents=True, exist_ok=True)
    meta = {"model": session.name, "layer": layer, "per_image": per_image, "seed": seed, "dim": info.units}
    if (root / META_FILE).is_file():
        old = json.loads((root / META_FILE).read_text())
        if old != meta:
            raise ClipWidgetsError(
                f"{root} holds activations collected with {old}; asked for {meta}. Use another directory."
            )
    else:
        (root / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    result = ActivationStore(root)
    processed, rows = result.processed, result.rows
    row_bytes = info.units * 2
    # cut every file back to the last checkpoint: what follows it is redone
    for name, size in ((ACTIVATIONS_FILE, rows * row_bytes), (ORIGINS_FILE, rows * 12)):
        with (root / name).open("ab") as f:
            f.truncate(size)
    with (root / SOURCES_FILE).open("a+") as f:
        f.seek(0)
        kept = f.read().splitlines()[:processed]
    (root / SOURCES_FILE).write_text("".join(line + "\n" for line in kept))

    def save() -> None:
        for name in (ACTIVATIONS_FILE, ORIGINS_FILE, SOURCES_FILE):
            files[name].flush()
            os.fsync(files[name].fileno())
        tmp = root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps({"processed": processed, "rows": rows}))
        os.replace(tmp, root / STATE_FILE)

    files = {
        ACTIVATIONS_FILE: (root / ACTIVATIONS_FILE).open("ab"),
        ORIGINS_FILE: (root / ORIGINS_FILE).open("ab"),
        SOURCES_FILE: (root / SOURCES_FILE).open("a"),
    }
    stream = enumerate(_expand(sources))
    stream = islice(stream, processed, None)
    bar = tqdm(total=total, initial=processed, desc=f"activations of {layer}", unit="img", disable=not progress)
    since_save, consistent = 0, True
    try:
        while batch := list(islice(stream, batch_size)):
            consistent = False
            images, indices, lines = [], [], []
            for index, source in batch:
                name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<item {index}>"
                try:
                    images.append(load_image(source))
                    indices.append(index)
                    in_memory = not isinstance(source, (str, os.PathLike))
                    lines.append({"source": name, "in_memory": True} if in_memory else {"source": name})
                except ImageLoadError as e:
                    warnings.warn(f"skipping unreadable image: {e}", UserWarning, stacklevel=2)
                    lines.append({"source": name, "error": e.reason})
            if images:
                with torch.no_grad():
                    captured, _ = session.layers.forward(session.preprocess(images), layer)
                values, grid = positions_of(captured[layer].float().cpu())
                chunks, origins = [], []
                for i, index in enumerate(indices):
                    picked = _sample_positions(index, seed, per_image, values.shape[1])
                    chunks.append(values[i, picked].numpy().astype(np.float16))
                    origins += [(index, *divmod(int(p), grid[1])) for p in picked]
                block = np.concatenate(chunks)
                files[ACTIVATIONS_FILE].write(block.tobytes())
                files[ORIGINS_FILE].write(np.asarray(origins, np.int32).tobytes())
                rows += len(block)
            files[SOURCES_FILE].write("".join(json.dumps(line) + "\n" for line in lines))
            processed += len(batch)
            consistent = True
            bar.update(len(batch))
            since_save += 1
            if since_save >= checkpoint_every:
                save()
                since_save = 0
    except KeyboardInterrupt:
        bar.write(f"interrupted after {processed} images; run the same call again to resume")
    finally:
        bar.close()
        if consistent:  # else the last checkpoint stands and the cut-off batch is redone on resume
            save()
        for f in files.values():
            f.close()
    return ActivationStore(root)


# -- attribution ---------------------------------------------------------------------------------


ATTRIBUTION_METHODS = ("integrated_gradients", "gradient_x_activation")


def attribute_activations(
    session: Any,
    store: ActivationStore,
    prompts: list[str],
    *,
    method: str = "integrated_gradients",
    steps: int = 8,
    templates: list[str] | None = None,
    images: Sequence[Any] | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> np.ndarray:
    """``(rows, classes)``: for each collected activation, how much it moves each class's
    zero-shot logit. Classes are text prompts. Images are re-read from their files; for a
    collection from an in-memory iterable, pass the same sequence as ``images``.

    ``method="integrated_gradients"`` (default): the layer's output at every image position is
    moved from a baseline, the store's mean activation, to its real value in ``steps`` equal steps
    (midpoint rule); a position's attribution is its difference from the baseline times the mean
    gradient along that path, summed over channels, so an image's attributions add up (up to the
    step error) to how far its logit moves from the all-baseline image. ``"gradient_x_activation"``
    is the one-pass linear estimate of Activation Atlases (gradient at the real activation times
    the activation): cheap, and the paper's method (on a convnet), but in a ViT the layer norms and softmax
    attention make it unreliable, often of the wrong sign, for patch tokens. It is also zero on
    the patch tokens of the last two blocks, which reach the class token only through a layer
    norm that ignores their scale. A ViT's class token is held at its real value and not
    attributed (it has no place in the image)."""
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(ATTRIBUTION_METHODS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    layer = store.meta["layer"]
    text = session.encode_text(prompts, templates=templates).float()
    scale = session.logit_scale
    origins = store.origins
    by_image: dict[int, list[int]] = {}
    for row, (index, _, _) in enumerate(origins):
        by_image.setdefault(int(index), []).append(row)
    baseline = None
    if method == "integrated_gradients":
        baseline = torch.from_numpy(mean_activation(store.activations)).to(session.device)
    result = np.zeros((len(origins), len(prompts)), np.float32)
    indices = list(by_image)
    classes = torch.eye(len(prompts), device=session.device)

    def class_gradients(pixels: torch.Tensor, acts: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Gradients of every class's logit with respect to ``acts``, as ``(C, B, positions, D)``."""
        logits = scale * torch.nn.functional.normalize(embedding.float(), dim=-1) @ text.T  # (B, C)
        # one backward per class, vectorised over classes
        (grads,) = torch.autograd.grad(logits, acts, grad_outputs=classes[:, None].expand(-1, len(pixels), -1),
                                       is_grads_batched=True)  # fmt: skip
        return torch.stack([positions_of(g.float())[0] for g in grads])

    with tqdm(total=len(indices), desc="attribution", unit="img", disable=not progress) as bar:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            pixels = session.preprocess([store.image_source(i, images) for i in chunk])
            if baseline is None:
                captured, embedding = session.layers.forward(pixels, layer, detach=False, need_output=True)
                acts = captured[layer]
                values, grid = positions_of(acts.detach().float())
                contribution = (class_gradients(pixels, acts, embedding) * values[None]).sum(-1)  # (C, B, P)
            else:
                real = session.layers.forward(pixels, layer)[0][layer]
                start_point = with_positions(real, baseline.to(real.dtype))
                difference, grid = positions_of((real - start_point).float())
                mean_gradient = 0.0
                for alpha in (torch.arange(steps, dtype=torch.float32) + 0.5) / steps:
                    point = (start_point + float(alpha) * (real - start_point)).requires_grad_(True)
                    with session.layers.replace(layer, point):
                        embedding = session.layers.forward(pixels, need_output=True)[1]
                    mean_gradient = mean_gradient + class_gradients(pixels, point, embedding) / steps
                contribution = (mean_gradient * difference[None]).sum(-1)  # (C, B, P)
            for b, index in enumerate(chunk):
                for row in by_image[index]:
                    _, r, c = origins[row]
                    result[row] = contribution[:, b, r * grid[1] + c].detach().cpu().numpy()
            bar.update(len(chunk))
    return result


def with_positions(activations: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """``activations`` with every image position set to ``vector`` (the layout of
    :func:`positions_of`: channels of a feature map, patch tokens of a ViT; its class token kept)."""
    if activations.ndim == 4:
        return vector.view(1, -1, 1, 1).expand_as(activations).clone()
    if activations.ndim == 3:
        out = activations.clone()
        out[:, 1:] = vector
        return out
    return vector.view(1, -1).expand_as(activations).clone()


def mean_activation(activations: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """The mean row of a (possibly memory-mapped) activation table, read in chunks, as float32."""
    total = np.zeros(activations.shape[1], np.float64)
    for begin in range(0, len(activations), chunk):
        total += activations[begin : begin + chunk].astype(np.float64).sum(0)
    return (total / max(1, len(activations))).astype(np.float32)


def cell_attribution(grid: AtlasGrid, attributions: np.ndarray) -> np.ndarray:
    """``(size, size, classes)``: the mean attribution of each cell's activations (zero where empty)."""
    flat = grid.cells[:, 0] * grid.size + grid.cells[:, 1]
    sums = np.zeros((grid.size * grid.size, attributions.shape[1]), np.float64)
    np.add.at(sums, flat, attributions)
    counts = grid.counts.reshape(-1)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], 0.0)
    return means.reshape(grid.size, grid.size, -1).astype(np.float32)


# -- icons ---------------------------------------------------------------------------------------


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
    power: float = 1.0,
    steps: int = 96,
    size: int | None = None,
    chunk: int = 32,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    **render_kw: Any,
) -> np.ndarray:
    """Feature inversions of every filled cell's mean activation, ``(size, size, H, W, 3)``
    uint8 (black where a cell is empty), optimized in batches of ``chunk`` cells with the
    whitened dot x cosine^power objective. With ``cache`` (a ``.npy`` path), icons are read from
    it when it matches the grid, and written after rendering, so re-opening costs nothing."""
    from .featvis import objectives as obj  # noqa: PLC0415
    from .featvis import render  # noqa: PLC0415

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
            objective = obj.direction_cossim(layer, directions, power=power, whitening=white)
            result = render(session, objective, batch=len(part), steps=steps, size=side, progress=False, **render_kw)
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


def render_atlas(icons: np.ndarray, opacity: np.ndarray | None = None, background: int = 255) -> np.ndarray:
    """The atlas as one ``(size * H, size * W, 3)`` uint8 image: icon (row, col) at its place,
    blended towards ``background`` by ``opacity``; empty (all-zero) icons are left as background."""
    size, _, height, width, _ = icons.shape
    alpha = np.ones((size, size), np.float32) if opacity is None else np.asarray(opacity, np.float32)
    empty = ~icons.reshape(size, size, -1).any(-1)
    alpha = np.where(empty, 0.0, alpha)[:, :, None, None, None]
    blended = icons.astype(np.float32) * alpha + background * (1 - alpha)
    return np.rint(blended).astype(np.uint8).transpose(0, 2, 1, 3, 4).reshape(size * height, size * width, 3)


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


# -- the whole pipeline --------------------------------------------------------------------------


@dataclass
class Atlas:
    """An activation atlas at several grid sizes, what :class:`~clip_widgets.widgets.AtlasWidget`
    shows: the store, the layout (``coords``, (N, 2) in [0, 1]), and per grid size its
    :class:`AtlasGrid`, icons ``(size, size, H, W, 3)`` and, when ``classes`` were given, the
    cells' mean attribution to each class ``(size, size, classes)``."""

    store: ActivationStore
    coords: np.ndarray
    grids: dict[int, AtlasGrid]
    icons: dict[int, np.ndarray]
    classes: list[str]
    attributions: np.ndarray | None
    cells: dict[int, np.ndarray]

    @property
    def layer(self) -> str:
        return str(self.store.meta["layer"])

    @property
    def sizes(self) -> list[int]:
        return sorted(self.grids)

    def grid(self, size: int) -> AtlasGrid:
        if size not in self.grids:
            raise KeyError(f"no grid of size {size}; this atlas has {self.sizes}")
        return self.grids[size]

    def cell_classes(self, size: int, row: int, col: int, top: int = 5) -> list[tuple[str, float]]:
        """The classes a cell pushes most, best first: ``[(class, mean attribution), ...]``."""
        if size not in self.cells:
            return []
        scores = self.cells[size][row, col]
        order = np.argsort(-scores)[:top]
        return [(self.classes[i], float(scores[i])) for i in order]

    def opacity(self, size: int, class_name: str | None) -> np.ndarray | None:
        """Per-cell opacity for a class-filtered view (None: no filter)."""
        if not class_name:
            return None
        if class_name not in self.classes:
            raise KeyError(f"unknown class {class_name!r}; this atlas has {self.classes}")
        return class_opacity(self.cells[size], self.classes.index(class_name))


def build_atlas(
    session: Any,
    store: ActivationStore | str | os.PathLike,
    *,
    sizes: Sequence[int] = (8, 16, 32),
    min_count: int = 3,
    classes: Sequence[str] = (),
    prompts: Sequence[str] | None = None,
    templates: list[str] | None = None,
    images: Sequence[Any] | None = None,
    attribution: str = "integrated_gradients",
    attribution_steps: int = 8,
    icon_steps: int = 64,
    icon_px: int | None = None,
    cache: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Atlas:
    """Layout, grids, icons and (with ``classes``) attribution for a collected store, each step
    cached under ``cache`` (default: ``<store>/atlas``) so re-opening an atlas costs nothing.
    ``prompts`` are the texts scored for ``classes`` (default: the class names themselves);
    ``attribution`` and ``attribution_steps`` choose how (see :func:`attribute_activations`)."""
    store = store if isinstance(store, ActivationStore) else ActivationStore(store)
    if len(store) < 4:
        raise ClipWidgetsError(f"the store at {store.path} holds {len(store)} activations; an atlas needs more")
    root = Path(cache) if cache is not None else store.path / "atlas"
    root.mkdir(parents=True, exist_ok=True)
    layer = str(store.meta["layer"])
    coords_path = root / f"layout_{len(store)}_{seed}_{LAYOUT_MIN_DIST}_{LAYOUT_UNIFORM}.npy"
    if coords_path.is_file():
        coords = np.load(coords_path)
    else:
        coords = layout(store.activations, seed=seed)
        np.save(coords_path, coords)
    grids = {int(size): bin_grid(coords, store.activations, int(size), min_count=min_count) for size in sizes}
    # named by the render engine too: icons made before the phase parameterization are not reused
    caches = {size: root / f"icons_{size}_{min_count}_{icon_steps}_{len(store)}_phase.npy" for size in grids}
    # the whitening pass reads every activation: only when some icons still have to be rendered
    whitening = whitening_matrix(store.activations) if not all(p.is_file() for p in caches.values()) else None
    icons = {
        size: atlas_icons(session, layer, grid, whitening=whitening, steps=icon_steps, size=icon_px, seed=seed,
                          cache=caches[size], progress=progress)
        for size, grid in grids.items()
    }  # fmt: skip
    classes = list(classes)
    attributions, cells = None, {}
    if classes:
        texts = list(prompts) if prompts is not None else classes
        if len(texts) != len(classes):
            raise ValueError(f"{len(classes)} classes but {len(texts)} prompts")
        key = json.dumps({"prompts": texts, "templates": templates, "rows": len(store), "method": attribution,
                          "steps": attribution_steps}, sort_keys=True)  # fmt: skip
        attr_path = root / f"attributions_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
        if attr_path.is_file() and str(np.load(attr_path)["key"]) == key:
            attributions = np.load(attr_path)["values"]
        else:
            attributions = attribute_activations(session, store, texts, method=attribution, steps=attribution_steps,
                                                 templates=templates, images=images, progress=progress)  # fmt: skip
            np.savez(attr_path, values=attributions, key=np.array(key))
        cells = {size: cell_attribution(grid, attributions) for size, grid in grids.items()}
    return Atlas(store, coords, grids, icons, classes, attributions, cells)
