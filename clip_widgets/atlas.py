"""Activation atlas (Distill, 2019): many spatial activations of one layer, laid out in 2-D.

The pipeline, each step plain Python over arrays, in its own module and re-exported here:

* :func:`collect_activations` (:mod:`.atlas_store`): stream images through the model and keep
  random spatial activations with where each came from, in a resumable on-disk
  :class:`ActivationStore`;
* :func:`layout` and :func:`bin_grid` (:mod:`.atlas_layout`): UMAP (cosine) to 2-D, spread over
  the unit square; a grid of cells over it with each cell's count and mean activation;
* :func:`attribute_activations` (here): how much each activation pushes each class;
* :func:`atlas_icons`, :func:`render_atlas`, :func:`save_tile_pyramid` (:mod:`.atlas_render`):
  the pictures;
* :func:`build_atlas` (here): all of it, each step cached, as an :class:`Atlas`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .atlas_layout import LAYOUT_MIN_DIST, LAYOUT_UNIFORM, AtlasGrid, bin_grid, layout, normalize_layout
from .atlas_render import (
    atlas_icons,
    class_opacity,
    class_rows,
    render_atlas,
    save_tile_pyramid,
    whitening_matrix,
)
from .atlas_store import ActivationStore, collect_activations
from .errors import ClipWidgetsError
from .examples import positions_of
from .featvis.objectives import ICON_POWER
from .texts import template_list, text_list

__all__ = [  # the whole pipeline, from one module
    "ATTRIBUTION_METHODS", "LAYOUT_MIN_DIST", "LAYOUT_UNIFORM", "ActivationStore", "Atlas", "AtlasGrid",
    "atlas_icons", "attribute_activations", "bin_grid", "build_atlas", "cell_attribution", "class_opacity",
    "class_rows", "collect_activations", "layout", "mean_activation", "normalize_layout", "position_attribution",
    "render_atlas", "save_tile_pyramid", "whitening_matrix", "with_positions",
]  # fmt: skip


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
    class_backward: str = "auto",
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
    attributed (it has no place in the image).

    ``class_backward``: one backward pass per class, ``"loop"`` (faster on a CPU, see
    ``bench/bench_atlas.py``), or all classes in one vectorised pass, ``"batched"``
    (``is_grads_batched``); ``"auto"`` loops on a CPU and batches on a GPU. Both give the same
    numbers."""
    if class_backward not in ("auto", "loop", "batched"):
        raise ValueError(f"unknown class_backward {class_backward!r}; choose 'auto', 'loop' or 'batched'")
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {list(ATTRIBUTION_METHODS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    layer = store.meta["layer"]
    prompts = text_list(prompts, "prompts")
    text = session.encode_text(prompts, templates=template_list(templates)).float()
    origins = store.origins
    by_image: dict[int, list[int]] = {}
    for row, (index, _, _) in enumerate(origins):
        by_image.setdefault(int(index), []).append(row)
    baseline = None
    if method == "integrated_gradients":
        baseline = torch.from_numpy(mean_activation(store.activations)).to(session.device)
    result = np.zeros((len(origins), len(prompts)), np.float32)
    indices = list(by_image)
    batched = class_backward == "batched" or (class_backward == "auto" and session.device.type == "cuda")
    with tqdm(total=len(indices), desc="attribution", unit="img", disable=not progress) as bar:
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            pixels = session.preprocess([store.image_source(i, images) for i in chunk])
            contribution, grid = position_attribution(session, pixels, layer, text, baseline=baseline, steps=steps,
                                                      batched=batched)  # fmt: skip
            for b, index in enumerate(chunk):
                for row in by_image[index]:
                    _, r, c = origins[row]
                    result[row] = contribution[:, b, r * grid[1] + c].cpu().numpy()
            bar.update(len(chunk))
    return result


def position_attribution(
    session: Any,
    pixels: torch.Tensor,
    layer: str,
    text: torch.Tensor,
    *,
    baseline: torch.Tensor | None = None,
    steps: int = 8,
    batched: bool = False,
) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(C, B, positions)``: how much each image position of ``layer`` moves each class's
    zero-shot logit (``text``: ``(C, D)`` unit class embeddings), and the positions' grid.

    With a ``baseline`` (a ``(units,)`` activation), integrated gradients from every position at
    the baseline to its real value in ``steps`` midpoint steps; without, gradient x activation
    (see :func:`attribute_activations` for when each is right). ``batched``: all classes in one
    vectorised backward pass instead of a loop over classes (the same numbers)."""
    scale = session.logit_scale
    text = text.float()
    classes = torch.eye(len(text), device=session.device)

    def class_gradients(acts: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Gradients of every class's logit with respect to ``acts``, as ``(C, B, positions, D)``."""
        logits = scale * torch.nn.functional.normalize(embedding.float(), dim=-1) @ text.T  # (B, C)
        if batched:
            (grads,) = torch.autograd.grad(logits, acts, grad_outputs=classes[:, None].expand(-1, len(pixels), -1),
                                           is_grads_batched=True)  # fmt: skip
        else:
            last = len(text) - 1
            grads = [torch.autograd.grad(logits[:, c].sum(), acts, retain_graph=c < last)[0] for c in range(last + 1)]
        return torch.stack([positions_of(g.float())[0] for g in grads])

    if baseline is None:
        captured, embedding = session.layers.forward(pixels, layer, detach=False, need_output=True)
        acts = captured[layer]
        values, grid = positions_of(acts.detach().float())
        return (class_gradients(acts, embedding) * values[None]).sum(-1).detach(), grid
    real = session.layers.forward(pixels, layer)[0][layer]
    start_point = with_positions(real, baseline.to(real.dtype))
    difference, grid = positions_of((real - start_point).float())
    mean_gradient = 0.0
    for alpha in (torch.arange(steps, dtype=torch.float32) + 0.5) / steps:
        point = (start_point + float(alpha) * (real - start_point)).requires_grad_(True)
        with session.layers.replace(layer, point):
            embedding = session.layers.forward(pixels, need_output=True)[1]
        mean_gradient = mean_gradient + class_gradients(point, embedding) / steps
    return (mean_gradient * difference[None]).sum(-1).detach(), grid


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
    icon_power: float = ICON_POWER,
    whiten: bool = False,
    cache: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Atlas:
    """Layout, grids, icons and (with ``classes``) attribution for a collected store, each step
    cached under ``cache`` (default: ``<store>/atlas``) so re-opening an atlas costs nothing.
    ``prompts`` are the texts scored for ``classes`` (default: the class names themselves);
    ``attribution`` and ``attribution_steps`` choose how (see :func:`attribute_activations`).
    Icons maximize dot x cosine^``icon_power`` with each cell's mean; ``whiten`` takes it in
    whitened space (the article's choice; on the embedded models it makes icons worse, see
    ``bench/eval_atlas_icons.py``)."""
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
    # named by the render engine and objective too: icons made another way are not reused
    engine = f"maco-colour_p{icon_power:g}" + ("_white" if whiten else "")
    caches = {size: root / f"icons_{size}_{min_count}_{icon_steps}_{len(store)}_{engine}.npy" for size in grids}
    # the whitening pass reads every activation: only when some icons still have to be rendered
    missing = not all(p.is_file() for p in caches.values())
    whitening = whitening_matrix(store.activations) if whiten and missing else None
    icons = {
        size: atlas_icons(session, layer, grid, whitening=whitening, power=icon_power, steps=icon_steps,
                          size=icon_px, seed=seed, cache=caches[size], progress=progress)
        for size, grid in grids.items()
    }  # fmt: skip
    classes = text_list(classes, "classes")
    templates = template_list(templates)
    attributions, cells = None, {}
    if classes:
        texts = text_list(prompts, "prompts") if prompts is not None else classes
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
