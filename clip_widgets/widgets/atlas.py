"""AtlasWidget: an activation atlas to zoom and pan, with the cells' classes and sources on hover."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import traitlets

from ..atlas import Atlas
from ..atlas_render import mosaic, resize_icons
from ..examples import Example, crop_box, model_view, positions_of
from ._base import STATIC, WidgetBase, entry_point


class AtlasWidget(WidgetBase):
    """An :class:`~clip_widgets.atlas.Atlas` (from :func:`~clip_widgets.atlas.build_atlas`) to
    explore: wheel, drag, double-click, + / - and the arrow keys zoom and pan; zooming in shows
    the finer grids' icons, and a minimap of the whole atlas frames the view (press or drag on it
    to move there). Tiles travel as binary RGBA buffers, only those in view, when the
    browser asks for them. Hovering a cell shows its top classes, count and a few source patches;
    clicking selects it (``selected``; then ``selected_direction``, ``selected_rows`` and
    ``selected_sources`` hold its mean activation and where it came from). ``class_filter``
    fades the cells by how much they push one class. ``view`` (centre and zoom) and ``selected``
    are traits, settable from Python and saved with the notebook's widget state. Failures show
    in ``error`` (and are raised to Python callers; see
    :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "atlas.js"
    _css = STATIC / "atlas.css"

    levels = traitlets.List(traitlets.Int(), read_only=True).tag(sync=True)
    """The grid sizes (cells a side), coarsest first; deeper zoom shows finer ones."""
    tile_cells = traitlets.Int(8, min=1).tag(sync=True)
    """Cells a side in one tile."""
    icon_px = traitlets.Int(32, min=4).tag(sync=True)
    """Pixels a side of one icon in the tiles sent to the browser."""
    view = traitlets.Dict({"x": 0.5, "y": 0.5, "zoom": 1.0}).tag(sync=True)
    """The part of the atlas in view: its centre ``x``, ``y`` in [0, 1] and ``zoom`` (1 = whole)."""
    level = traitlets.Int(0).tag(sync=True)
    """The grid size drawn at the current zoom (set by the browser)."""
    class_names = traitlets.List(traitlets.Unicode(), read_only=True).tag(sync=True)
    """The classes cells are attributed to (empty without attribution)."""
    class_filter = traitlets.Unicode("").tag(sync=True)
    """A class name: cells fade by their attribution to it. Empty: no filter. Other names are
    refused, and the error lists the atlas's classes."""
    selected = traitlets.List(traitlets.Int(), maxlen=3).tag(sync=True)
    """``[grid size, row, col]`` of the selected cell, or empty."""
    tile_version = traitlets.Int(0).tag(sync=True)
    """Changes whenever tile contents change (a new filter), so the browser drops its cache."""

    def __init__(
        self,
        atlas: Atlas,
        *,
        session: Any = None,
        images: Sequence[Any] | None = None,
        patches: int = 4,
        **traits: Any,
    ):
        self._atlas = atlas
        self._session = session
        self._images = images
        self._patches = int(patches)
        self._tile_cache: dict[tuple[int, int, int, int], np.ndarray] = {}
        super().__init__(**traits)
        self.set_trait("levels", atlas.sizes)
        self.set_trait("class_names", list(atlas.classes))
        self.level = atlas.sizes[0]
        self.on_msg(self._on_message)

    # -- Python API -------------------------------------------------------------------------

    @property
    def atlas(self) -> Atlas:
        return self._atlas

    @property
    def selected_rows(self) -> np.ndarray:
        """Indices (into the store) of the selected cell's activations; empty without a selection."""
        if not self.selected:
            return np.zeros(0, np.int64)
        size, row, col = self.selected
        return self._atlas.grid(size).members(row, col)

    @property
    def selected_direction(self) -> np.ndarray | None:
        """The selected cell's mean activation: a direction for feature visualization."""
        if not self.selected:
            return None
        size, row, col = self.selected
        return self._atlas.grid(size).means[row, col].copy()

    @property
    def selected_sources(self) -> list[str]:
        """The images the selected cell's activations came from (each once, in store order)."""
        origins = self._atlas.store.origins
        indices = dict.fromkeys(int(origins[r, 0]) for r in self.selected_rows)
        return [self._atlas.store.sources[i]["source"] for i in indices]

    @entry_point
    def zoom_to(self, x: float, y: float, zoom: float) -> None:
        """Centre the view on (``x``, ``y``) (unit-square coordinates) at ``zoom``."""
        self.view = {"x": float(x), "y": float(y), "zoom": float(zoom)}

    # -- validation ---------------------------------------------------------------------------

    @traitlets.validate("view")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_view(self, proposal: dict[str, Any]) -> dict[str, float]:
        value = proposal["value"]
        try:
            zoom = float(value.get("zoom", 1.0))
            x, y = float(value.get("x", 0.5)), float(value.get("y", 0.5))
        except (TypeError, ValueError) as exc:
            raise traitlets.TraitError(f"view needs numbers x, y, zoom; got {value!r}") from exc
        sizes = self._atlas.sizes
        zoom = min(max(zoom, 1.0), 4.0 * sizes[-1] / sizes[0])
        half = 0.5 / zoom
        return {"x": min(max(x, half), 1 - half), "y": min(max(y, half), 1 - half), "zoom": zoom}

    @traitlets.validate("selected")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_selected(self, proposal: dict[str, Any]) -> list[int]:
        value = list(proposal["value"])
        if not value:
            return []
        if len(value) != 3:
            raise traitlets.TraitError(f"selected is [grid size, row, col] or []; got {value!r}")
        size, row, col = value
        if size not in self._atlas.grids:
            raise traitlets.TraitError(f"no grid of size {size}; this atlas has {self._atlas.sizes}")
        if not (0 <= row < size and 0 <= col < size):
            raise traitlets.TraitError(f"cell ({row}, {col}) is outside the {size} x {size} grid")
        return value

    @traitlets.validate("class_filter")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_filter(self, proposal: dict[str, Any]) -> str:
        name = proposal["value"].strip()
        if name and name not in self._atlas.classes:
            choices = ", ".join(self._atlas.classes) or "(none: the atlas was built without classes)"
            raise traitlets.TraitError(f"unknown class {name!r}; choose one of: {choices}")
        return proposal["value"]

    @traitlets.observe("class_filter")
    def _filter_changed(self, change: dict[str, Any]) -> None:
        self._tile_cache.clear()
        self.tile_version += 1

    # -- tiles and cells ------------------------------------------------------------------------

    @entry_point(clears=False)
    def tile(self, size: int, row: int, col: int) -> np.ndarray:
        """Tile (``row``, ``col``) of grid ``size`` as ``(H, W, 4)`` uint8 RGBA: icons at
        ``icon_px``, alpha from the class filter, transparent where cells are empty."""
        key = (self.tile_version, size, row, col)
        if key not in self._tile_cache:
            icons = self._atlas.icons[size]
            cells = slice(row * self.tile_cells, (row + 1) * self.tile_cells)
            cols = slice(col * self.tile_cells, (col + 1) * self.tile_cells)
            block = icons[cells, cols]
            if block.size == 0:
                raise ValueError(f"tile ({row}, {col}) is outside grid {size}")
            name = self.class_filter.strip()
            opacity = self._atlas.opacity(size, name) if name in self._atlas.classes else None
            alpha = np.ones(block.shape[:2], np.float32) if opacity is None else opacity[cells, cols]
            alpha = np.where(self._atlas.grid(size).filled[cells, cols], alpha, 0.0)
            block = resize_icons(block, self.icon_px)
            opaque = np.rint(alpha * 255).astype(np.uint8)[:, :, None, None, None]
            rgba = np.concatenate([block, np.broadcast_to(opaque, (*block.shape[:4], 1))], -1)
            self._tile_cache[key] = mosaic(rgba)
        return self._tile_cache[key]

    @entry_point(clears=False)
    def cell_info(self, size: int, row: int, col: int) -> tuple[dict[str, Any], np.ndarray | None]:
        """What hovering a cell shows: its count and top classes, and up to ``patches`` crops of
        the source images around the positions its activations came from, ``(k, 48, 48, 3)``."""
        grid = self._atlas.grid(size)
        if not (0 <= row < size and 0 <= col < size):  # numpy would wrap a negative index silently
            raise IndexError(f"cell ({row}, {col}) is outside the {size} x {size} grid")
        count = int(grid.counts[row, col])
        classes = self._atlas.cell_classes(size, row, col) if count else []
        info = {"level": size, "row": row, "col": col, "count": count, "classes": [list(pair) for pair in classes]}
        crops = None
        if self._session is not None and info["count"] and self._patches:
            crops = self._source_patches(grid.members(row, col)[: self._patches])
        return info, crops

    def _source_patches(self, rows: np.ndarray, side: int = 48) -> np.ndarray | None:
        store, session = self._atlas.store, self._session
        _, grid_shape = positions_of(torch.zeros(1, *session.layers[self._atlas.layer].shape))
        crops = []
        for r in rows:
            index, pr, pc = (int(v) for v in store.origins[r])
            view = model_view(session, store.image_source(index, self._images))
            example = Example(index, "", 0.0, (pr, pc), tuple(grid_shape))
            crops.append(np.asarray(view.crop(crop_box(view.size, example)).resize((side, side)), np.uint8))
        return np.stack(crops) if crops else None

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: list) -> None:
        """Requests from the browser, each answered on the same channel with its ``id``: a tile or
        cell, or a ``tile_error``/``cell_error`` naming what failed, so the browser stops waiting
        and may ask again; the failure also shows in ``error``."""
        kind, request_id = content.get("type"), content.get("id")
        if kind == "tiles":
            size, version = int(content["level"]), int(content.get("version", self.tile_version))
            if version != self.tile_version:
                return  # asked before the filter changed; the browser asks again
            failures = []
            for row, col in content["tiles"]:
                header = {"level": size, "row": int(row), "col": int(col), "version": version, "id": request_id}
                try:
                    picture = self.tile(size, int(row), int(col))
                except Exception as exc:  # noqa: BLE001 - answered to the browser and shown in the banner
                    self.send({"type": "tile_error", **header, "message": f"{type(exc).__name__}: {exc}"})
                    failures.append(exc)
                    continue
                self.send({"type": "tile", **header, "shape": list(picture.shape)}, buffers=[memoryview(picture)])
            if failures:
                self.report(failures[0])
        elif kind == "cell":
            where = {"level": int(content["level"]), "row": int(content["row"]), "col": int(content["col"])}
            try:
                info, crops = self.cell_info(where["level"], where["row"], where["col"])
            except Exception as exc:
                self.send({"type": "cell_error", **where, "id": request_id, "message": f"{type(exc).__name__}: {exc}"})
                raise  # shown in the banner by the base class
            if crops is None:
                self.send({"type": "cell", **info, "id": request_id, "patches": None})
            else:
                self.send({"type": "cell", **info, "id": request_id, "patches": list(crops.shape)},
                          buffers=[memoryview(crops)])  # fmt: skip
