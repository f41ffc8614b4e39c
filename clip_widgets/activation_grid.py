"""Activation grids (Olah et al., 2018, "The Building Blocks of Interpretability"): for one image
and one layer, what the layer sees at each position of the image.

* the feature visualization of every position's activation vector, all positions optimized as
  one batch (one render for the whole grid);
* the "semantic dictionary": each position's strongest units, with a visualization per unit;
* each position's attribution to text classes (integrated gradients of each class's zero-shot
  logit, :func:`clip_widgets.atlas.position_attribution`).

:func:`activation_grid` returns an :class:`ActivationGrid` of arrays;
:class:`~clip_widgets.widgets.ActivationGridWidget` is a view of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .atlas import position_attribution
from .examples import positions_of
from .featvis.objectives import ICON_POWER
from .images import load_image
from .surgery import whole_image_pixels
from .texts import text_list

__all__ = ["ActivationGrid", "activation_grid", "grid_layers", "input_image"]

PRE_ICON_SHARE = 0.1
"""The share of :func:`activation_grid`'s progress given to the activations and attribution,
before the icons: rendering them takes most of the time."""


def grid_layers(session: Any) -> list[str]:
    """The layers with positions in the image (feature maps and tokens), in forward order: those
    an activation grid can be made of."""
    return [name for name in session.layers.names if session.layers[name].kind in ("conv", "tokens")]


def input_image(session: Any, image: Any) -> np.ndarray:
    """``image`` as the model sees it in an activation grid: the whole image resized to the input
    size (no crop), ``(H, W, 3)`` uint8; ``image`` is anything :func:`load_image` reads."""
    picture = load_image(image)
    h, w = session.image_size
    return np.asarray(picture.convert("RGB").resize((w, h)), dtype=np.uint8)


@dataclass
class ActivationGrid:
    """One image's activation grid at ``layer``. Positions ``P = h * w`` are row-major over
    ``grid``; the image is the model's input (the whole image resized, no crop), so position
    ``(r, c)`` covers the same part of ``image`` as the cell ``(r, c)`` of an even grid.

    * ``activations`` ``(P, units)``; ``icons`` ``(P, S, S, 3)`` uint8: each position's
      activation vector made visible (``None`` with ``icon_steps=0``);
    * ``top_units`` / ``top_values`` ``(P, k)``: each position's strongest units, strongest first;
      ``unit_icons`` ``(U, S, S, 3)`` the visualizations of ``dictionary_units`` (every unit that
      is among some position's top ``k``);
    * ``classes`` and ``attribution`` ``(P, C)``: how much each position moves each class's
      zero-shot logit (empty without classes).
    """

    layer: str
    image: np.ndarray
    grid: tuple[int, int]
    activations: np.ndarray
    icons: np.ndarray | None
    top_units: np.ndarray
    top_values: np.ndarray
    dictionary_units: list[int]
    unit_icons: np.ndarray | None
    classes: list[str] = field(default_factory=list)
    attribution: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    def position(self, row: int, col: int) -> int:
        """The flat index of grid position ``(row, col)``."""
        h, w = self.grid
        if not (0 <= row < h and 0 <= col < w):
            raise IndexError(f"position ({row}, {col}) is outside the {h} x {w} grid")
        return row * w + col

    def unit_icon(self, unit: int) -> np.ndarray:
        """The visualization of ``unit`` (one of ``dictionary_units``)."""
        if self.unit_icons is None:
            raise ValueError("this grid was made without unit visualizations (icon_steps=0)")
        if unit not in self.dictionary_units:
            raise KeyError(f"unit {unit} is not in the semantic dictionary; it has {self.dictionary_units}")
        return self.unit_icons[self.dictionary_units.index(unit)]


def activation_grid(
    session: Any,
    image: Any,
    layer: str,
    *,
    classes: Sequence[str] | None = None,
    templates: Sequence[str] | None = None,
    top: int = 4,
    icon_steps: int = 64,
    icon_px: int | None = None,
    icon_power: float = ICON_POWER,
    attribution_steps: int = 8,
    baseline: np.ndarray | torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[float, ActivationGrid], None] | None = None,
) -> ActivationGrid:
    """The activation grid of ``image`` at ``layer`` (see :class:`ActivationGrid`).

    ``classes``: text prompts to attribute positions to. Attribution is integrated gradients
    from ``baseline`` (a ``(units,)`` activation; default: the mean over this image's positions,
    so a position's attribution says what it adds over an average place in the same image).
    ``icon_steps`` (0: none) and ``icon_px`` set the visualizations, rendered like the atlas's
    icons (MACO phase images, the dot x cosine^``icon_power`` objective; the atlas's power by
    default); ``should_stop`` ends them early.
    ``on_progress(fraction, grid)`` is called once the activations and attribution are known and
    after every icon step, with the fraction done (0 to 1) and the grid so far (its ``icons`` and
    ``unit_icons`` stay ``None`` until they are rendered), so a view can show the positions before
    their icons.
    """
    from .featvis import objectives as obj  # noqa: PLC0415
    from .featvis import render, render_units  # noqa: PLC0415

    info = session.layers[layer]  # unknown names raise, listing the valid ones
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    picture = load_image(image)
    pixels = whole_image_pixels(session, picture)
    captured, _ = session.layers.forward(pixels, layer)
    values, grid = positions_of(captured[layer].float())
    activations = values[0]  # (P, units)
    k = min(top, info.units)
    top_values, top_units = activations.topk(k, dim=-1)
    dictionary = sorted({int(u) for u in top_units.flatten()})

    names = [] if classes is None else [str(c) for c in text_list(classes, "classes")]
    attribution = np.zeros((activations.shape[0], len(names)), np.float32)
    if names:
        text = session.encode_text(names, templates)
        start = activations.mean(0) if baseline is None else torch.as_tensor(baseline, device=activations.device)
        contribution, _ = position_attribution(session, pixels, layer, text, baseline=start.float(),
                                               steps=attribution_steps)  # fmt: skip
        attribution = contribution[:, 0].T.cpu().numpy().astype(np.float32)  # (P, C)

    result = ActivationGrid(
        layer=layer,
        image=input_image(session, picture),
        grid=grid,
        activations=activations.cpu().numpy().astype(np.float32),
        icons=None,
        top_units=top_units.cpu().numpy().astype(np.int64),
        top_values=top_values.cpu().numpy().astype(np.float32),
        dictionary_units=dictionary,
        unit_icons=None,
        classes=names,
        attribution=attribution,
    )
    if icon_steps <= 0:
        if on_progress is not None:
            on_progress(1.0, result)
        return result
    if on_progress is not None:
        on_progress(PRE_ICON_SHARE, result)
    done, total = 0, 2 * icon_steps  # the positions' render, then the dictionary's

    def step() -> bool:  # called after every optimization step of both renders
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(PRE_ICON_SHARE + (1 - PRE_ICON_SHARE) * min(done / total, 1.0), result)
        return should_stop is not None and should_stop()

    side = int(icon_px or session.image_size[0])
    common = {"steps": icon_steps, "size": side, "seed": seed, "progress": progress, "should_stop": step}
    objective = obj.direction_cossim(layer, activations.detach(), power=icon_power)
    icons = render(session, objective, batch=activations.shape[0], **common).images
    unit_icons = render_units(session, layer, dictionary, chunk=len(dictionary), **common).images
    result.icons, result.unit_icons = icons, unit_icons
    return result
