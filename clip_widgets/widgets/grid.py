"""ActivationGridWidget: what one layer sees at each position of one image (an activation grid)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import traitlets

from ..activation_grid import ActivationGrid, activation_grid, grid_layers, input_image
from ..codecs import Array, array_serialization
from ..errors import ImageLoadError, LayerNotFoundError
from ..images import load_image
from ..texts import text_list
from ._base import STATIC, WidgetBase, entry_point


# Refusals are also TraitErrors: traitlets rolls back a refused value from the browser before
# any observer sees it only for those.
class GridLayerError(LayerNotFoundError, traitlets.TraitError):
    """A layer without positions in the image."""


class GridImageError(ImageLoadError, traitlets.TraitError):
    """An image that cannot be read (see :class:`~clip_widgets.errors.ImageLoadError`)."""


class GridIndexError(IndexError, traitlets.TraitError):
    """A position outside the grid, or a class index outside the classes."""


class ActivationGridWidget(WidgetBase):
    """An activation grid (:func:`~clip_widgets.activation_grid.activation_grid`): the image with
    ``layer``'s positions over it and, beside it, each position's activation vector made visible
    (icons) or the image under a signed heat of the positions' attribution to one of ``classes``.
    Hover, click or arrow keys show a position's card: its ``top`` units (activation, their own
    visualization; a click opens one in ``explorer``, a NeuronExplorer on the same session, then
    calls ``on_open(unit)``) and its attribution to each class. The grid is computed in a
    background thread (``progress``, ``busy``, ``wait()``); setting ``layer`` or ``image``
    recomputes it, cancelling a computation still running. ``result`` is the
    :class:`~clip_widgets.activation_grid.ActivationGrid` shown. Failures show in ``error`` (and
    are raised to Python callers; see :class:`~clip_widgets.widgets._base.WidgetBase`).

    ``ActivationGridWidget(session, "photo.jpg", "layer4", classes=["a red star", "a blue circle"])``.
    """

    _esm = STATIC / "grid.js"
    _css = STATIC / "grid.css"

    layer_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The layers with positions in the image (feature maps, tokens), in forward order."""
    layer = traitlets.Unicode().tag(sync=True)
    """The layer whose positions are shown; setting it recomputes the grid in the background."""
    image = traitlets.Any(None, allow_none=True).tag(sync=True, **array_serialization)
    """The image as the model sees it (the whole image resized to the input size), (H, W, 3)
    uint8. Set it to anything :func:`~clip_widgets.images.load_image` reads: the grid of that
    image is computed in the background."""
    grid = traitlets.List(traitlets.Int()).tag(sync=True)
    """``[rows, cols]`` of the positions shown; empty before the first result."""
    icons = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Each position's activation vector made visible, (rows * cols, S, S, 3) uint8, row-major;
    ``None`` while they are being rendered (and with ``icon_steps=0``)."""
    top_units = Array(dtype="int32", ndim=2).tag(sync=True)
    """Each position's strongest units, strongest first, (rows * cols, top)."""
    top_values = Array(dtype="float32", ndim=2).tag(sync=True)
    """The activations of ``top_units``, (rows * cols, top)."""
    dictionary_units = traitlets.List(traitlets.Int()).tag(sync=True)
    """Every unit that is among some position's ``top_units``, ascending."""
    unit_icons = Array(dtype="uint8", ndim=4).tag(sync=True)
    """The visualization of each of ``dictionary_units``, (units, S, S, 3) uint8, or ``None``."""
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The text classes positions are attributed to (empty: no attribution)."""
    attribution = Array(dtype="float32", ndim=2).tag(sync=True)
    """How much each position moves each class's zero-shot logit over an average position of
    this image (integrated gradients), (rows * cols, classes)."""
    position = traitlets.Tuple(traitlets.Int(), traitlets.Int(), default_value=None, allow_none=True).tag(sync=True)
    """The selected position ``(row, col)``, or ``None``; one outside the grid is refused."""
    class_index = traitlets.Int(0).tag(sync=True)
    """The class whose attribution the heat shows (an index into ``classes``)."""
    mode = traitlets.Enum(("icons", "attribution"), "icons").tag(sync=True)
    """What the panel beside the image shows: ``"icons"`` or ``"attribution"`` (the heat)."""
    progress = traitlets.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    """Progress of the running computation, 0 to 1."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while a grid is being computed."""
    status = traitlets.Unicode("").tag(sync=True)
    """What the running computation is doing now (empty when idle)."""
    stale = traitlets.Bool(False).tag(sync=True)
    """True while the positions shown are those of an earlier layer or image."""

    def __init__(
        self,
        session: Any,
        image: Any,
        layer: str,
        *,
        classes: Sequence[str] | None = None,
        top: int = 4,
        icon_steps: int = 64,
        icon_px: int | None = None,
        explorer: Any = None,
        on_open: Callable[[int], None] | None = None,
        **traits: Any,
    ):
        if int(top) < 1:
            raise ValueError(f"top must be at least 1, not {top}")
        self._session = session
        self._arguments = {"top": int(top), "icon_steps": int(icon_steps), "icon_px": icon_px}
        self._explorer, self._on_open = explorer, on_open
        self._picture: Any = None
        self._result: ActivationGrid | None = None
        self._good: tuple[str, Any, np.ndarray] | None = None  # layer, picture and image of ``_result``
        self._generation, self._worker, self._lock = 0, None, threading.Lock()
        later = {name: traits.pop(name) for name in ("position", "class_index") if name in traits}
        super().__init__(**traits)
        self.layer_names = grid_layers(session)
        self.classes = [] if classes is None else text_list(classes, "classes")
        self.layer = layer  # an unknown layer or unreadable image raises: there is no widget yet
        self.image = image
        for name, value in later.items():
            setattr(self, name, value)
        self._ready = True
        self.on_msg(self._on_message)
        self._start()

    # -- Python API -------------------------------------------------------------------------

    @property
    def result(self) -> ActivationGrid | None:
        """The activation grid shown (``None`` until the first one is complete)."""
        return self._result

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running computation finishes."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    @entry_point
    def open_unit(self, unit: int) -> None:
        """Open ``unit`` of ``layer``: in the NeuronExplorer, when there is one, then ``on_open(unit)``."""
        if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
            raise TypeError(f"a unit is a whole number, got {unit!r}")
        count = self._session.layers[self.layer].units
        if not 0 <= unit < count:
            raise IndexError(f"unit {unit} is out of range for layer {self.layer!r}: valid units are 0 to {count - 1}")
        if self._explorer is not None:
            if self.layer not in self._explorer.layer_names:
                layers = ", ".join(self._explorer.layer_names)
                raise ValueError(f"the explorer has no layer {self.layer!r}; its layers: {layers}")
            with self._explorer.hold_trait_notifications():
                self._explorer.layer = self.layer
                self._explorer.unit = int(unit)
        if self._on_open is not None:
            self._on_open(int(unit))

    # -- validation ---------------------------------------------------------------------------

    @traitlets.validate("layer")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_layer(self, proposal: dict[str, Any]) -> str:
        name = proposal["value"]
        if name not in self.layer_names:
            valid = ", ".join(self.layer_names)
            raise GridLayerError(f"no layer named {name!r} with positions in this image tower; valid layers: {valid}")
        return name

    @traitlets.validate("image")
    @entry_point(clears=False)
    def _check_image(self, proposal: dict[str, Any]) -> np.ndarray:
        try:
            picture = load_image(proposal["value"])
        except ImageLoadError as exc:
            raise GridImageError(exc.source, exc.reason) from exc
        self._picture = picture  # the grid is computed from the image itself, not its resized view
        return input_image(self._session, picture)

    @traitlets.validate("position")
    @entry_point(clears=False)
    def _check_position(self, proposal: dict[str, Any]) -> tuple[int, int] | None:
        value = proposal["value"]
        if value is None:
            return None
        row, col = (int(v) for v in value)
        rows, cols = self.grid or (None, None)
        if row < 0 or col < 0 or (rows is not None and (row >= rows or col >= cols)):
            raise GridIndexError(f"position ({row}, {col}) is outside the {rows} x {cols} grid of {self.layer!r}")
        return (row, col)

    @traitlets.validate("class_index")
    @entry_point(clears=False)
    def _check_class(self, proposal: dict[str, Any]) -> int:
        index, count = proposal["value"], len(self.classes)
        if not (0 <= index < max(count, 1)):
            names = ", ".join(self.classes) or "none"
            raise GridIndexError(f"class_index {index} is out of range: there are {count} classes ({names})")
        return index

    @traitlets.observe("layer", "image")
    def _input_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._start()

    # -- work ---------------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
        layer, picture, image = self.layer, self._picture, self.image
        shown = [False]

        def stale() -> bool:
            return generation != self._generation

        def progress(fraction: float, grid: ActivationGrid) -> None:
            with self._lock:  # a new request cannot slip between the check and the update
                if stale():
                    return
                with self.hold_sync():
                    if not shown[0]:  # positions, units and attribution first; icons when rendered
                        shown[0] = True
                        self._show(grid)
                    self.progress = fraction
                    self.status = f"{layer}: rendering icons"

        def work() -> None:
            try:
                with self._session.lock:  # a cancelled computation lets go of the model first
                    if stale():
                        return
                    result = activation_grid(
                        self._session, picture, layer, classes=self.classes or None, progress=False,
                        should_stop=stale, on_progress=progress, **self._arguments,
                    )  # fmt: skip
                with self._lock:
                    if stale():
                        return
                    with self.reporting(raises=False), self.hold_sync():  # a success clears ``error``
                        self._show(result)
                        self._result, self._good = result, (layer, picture, image)
            except Exception as exc:  # noqa: BLE001 - no caller to raise to: the banner is the report
                with self._lock:
                    if not stale():
                        self._failed(exc)
            finally:
                with self._lock:
                    if not stale():
                        with self.reporting(raises=False, clears=False), self.hold_sync():
                            self.busy, self.stale, self.status = False, False, ""
                            self.progress = 1.0

        with self.hold_sync():
            self.busy, self.stale, self.progress = True, True, 0.0
            self.status = f"{layer}: activations and attribution"
        self._worker = threading.Thread(target=work, name="clip-widgets-activation-grid", daemon=True)
        self._worker.start()

    def _show(self, grid: ActivationGrid) -> None:
        """Put ``grid``'s arrays in the traits (the caller holds the lock and ``hold_sync``)."""
        self.grid = list(grid.grid)
        if self.position is not None and (self.position[0] >= grid.grid[0] or self.position[1] >= grid.grid[1]):
            self.position = None
        self.icons, self.unit_icons = grid.icons, grid.unit_icons
        self.top_units = grid.top_units.astype(np.int32)
        self.top_values = grid.top_values
        self.dictionary_units = list(grid.dictionary_units)
        self.attribution = grid.attribution
        self.stale = False

    def _failed(self, exc: BaseException) -> None:
        """A failed computation: report it and go back to the last good grid, layer and image."""
        self.report(exc, ("layer", "image"))
        if self._good is None:
            return
        layer, picture, image = self._good
        self._picture = picture
        self._restore({"layer": layer, "image": image})  # no observer runs: nothing is recomputed
        with self.hold_sync():
            self._show(self._result)

    def _on_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        """A click on a unit in the card (a message, so that opening the same unit twice works twice)."""
        if isinstance(content, dict) and content.get("type") == "open":
            with self.reporting(raises=False):  # a click in the browser: nobody to raise to
                self.open_unit(content.get("unit"))
