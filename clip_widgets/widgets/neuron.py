"""NeuronExplorer: a Microscope for one model and your own images, live in the notebook."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets
from PIL import Image

from ..codecs import Array
from ..examples import ExampleStore, crop_box, model_view, unit_maps
from ..featvis import objectives as obj
from ..featvis import render
from ..textprobe import rank_words_by_image, units_for_text
from ..texts import text_list
from ._base import STATIC, WidgetBase, entry_point

DEFAULT_VOCABULARY = (
    "red", "green", "blue", "yellow", "purple", "orange", "circle", "square", "triangle", "cross", "star",
    "cat", "dog", "car", "ship", "apple", "ipod", "bird", "truck", "plane", "horse", "frog", "deer",
)  # fmt: skip


class NeuronExplorer(WidgetBase):
    """Pick a layer and unit (or jump there from a text query) and see what drives it: its
    feature visualization (frames stream in while it optimizes), a few diverse facets, its
    dataset examples with crops and an activation overlay, and the words that excite it.

    ``NeuronExplorer(session, examples="runs/examples")`` with an :class:`ExampleStore` (or its
    directory) from :func:`clip_widgets.examples.collect_examples`; without one, the examples
    panel stays empty. Examples collected from an in-memory iterable need it again as ``images``.
    Layer, unit and query are synced both ways; the arrow keys move between
    units (left/right) and layers (up/down) when the widget has the focus. Visualizations run in
    a background thread, so the notebook stays responsive; ``wait()`` blocks until it is done.
    Failures show in ``error`` (and are raised to Python callers; a failed visualization only
    shows there; see :class:`~clip_widgets.widgets._base.WidgetBase`).
    """

    _esm = STATIC / "neuron.js"
    _css = STATIC / "neuron.css"

    layer_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The layers that can be explored, in forward order."""
    layer = traitlets.Unicode().tag(sync=True)
    """The layer shown."""
    unit = traitlets.Int(0, min=0).tag(sync=True)
    """The unit shown (channel of a feature map, dimension of a token)."""
    unit_count = traitlets.Int(0).tag(sync=True)
    """How many units ``layer`` has."""
    visualization = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Feature visualizations of the unit, (facets, H, W, 3) uint8: diverse images that all
    maximize it; updated with intermediate frames while optimizing."""
    progress = traitlets.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    """Progress of the running visualization, 0 to 1."""
    examples = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Crops of the unit's top dataset examples around their maximum, (k, S, S, 3) uint8."""
    example_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The unit's activation over each crop, (k, h, w) uint8 (0 = lowest, 255 = highest over all k)."""
    example_values = traitlets.List(traitlets.Float()).tag(sync=True)
    """The unit's maximum activation on each example."""
    example_sources = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Where each example came from (file path or item number)."""
    top_words = traitlets.List().tag(sync=True)
    """``[word, score]`` pairs: the vocabulary words that excite the unit most when written in an image."""
    query = traitlets.Unicode("").tag(sync=True)
    """A text query; setting it fills ``query_results`` with the units of ``layer`` it excites most."""
    query_results = traitlets.List().tag(sync=True)
    """``[unit, score]`` pairs for ``query``, best first."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while a visualization is being optimized."""

    def __init__(
        self,
        session: Any,
        layer: str | None = None,
        unit: int = 0,
        *,
        examples: ExampleStore | str | None = None,
        images: Sequence[Any] | None = None,
        vocabulary: Sequence[str] = DEFAULT_VOCABULARY,
        facets: int = 4,
        steps: int = 96,
        diversity: float = 0.05,
        example_count: int = 8,
        **traits: Any,
    ):
        self._session = session
        self._store = examples if examples is None or isinstance(examples, ExampleStore) else ExampleStore(examples)
        self._images = images
        self._vocabulary = text_list(vocabulary, "vocabulary")
        self._facets, self._steps, self._diversity = int(facets), int(steps), float(diversity)
        self._example_count = int(example_count)
        self._generation = 0
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        names = [n for n in session.layers.names if session.layers[n].kind in ("conv", "tokens", "vector")]
        super().__init__(**traits)
        with self.hold_trait_notifications():
            self.layer_names = names
            self.layer = layer if layer is not None else names[-2 if len(names) > 1 else 0]
            self.unit = unit
        self._ready = True
        with self.reporting(raises=False):  # a failed first view shows in the returned widget
            self._show()

    # -- Python API -------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running visualization finishes."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    # -- observers ----------------------------------------------------------------------------

    @traitlets.validate("layer")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_layer(self, proposal: dict[str, Any]) -> str:
        self._session.layers[proposal["value"]]  # unknown names raise, listing the valid ones  # noqa: B018
        return proposal["value"]

    @traitlets.observe("layer", "unit")
    def _selection_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._show()

    @traitlets.observe("query")
    @entry_point
    def _query_changed(self, change: dict[str, Any]) -> None:
        if not change["new"].strip():
            self.query_results = []
            return
        self.query_results = [[u, s] for u, s in units_for_text(self._session, self.layer, change["new"])]

    # -- work ---------------------------------------------------------------------------------

    def _show(self) -> None:
        with self.reporting():
            count = self._session.layers[self.layer].units
            self.unit_count = count
            clamped = self.unit >= count
            if not clamped:
                self._show_examples()
                self._show_words()
        # both outside the block, so its clearing of ``error`` cannot wipe a failure of the new run
        if clamped:
            self.unit = count - 1  # re-enters _show through the observer
        else:
            self._start_visualization()

    def _show_examples(self) -> None:
        store = self._store
        if store is None or self.layer not in store.layers:
            with self.hold_sync():
                self.examples = self.example_maps = None
                self.example_values, self.example_sources = [], []
            return
        found = store.examples(self.layer, self.unit)[: self._example_count]
        views = [model_view(self._session, store.image(e, self._images)) for e in found]
        maps = unit_maps(self._session, self.layer, self.unit, views)
        side = max(16, views[0].width // 2) if views else 16
        crops, overlays = [], []
        low, high = (float(maps.min()), float(maps.max())) if len(maps) else (0.0, 1.0)
        for view, example, grid_map in zip(views, found, maps, strict=True):
            box = crop_box(view.size, example)
            crops.append(np.asarray(view.crop(box).resize((side, side)), np.uint8))
            # the map cells under the crop, scaled over all examples so their values compare
            heat = _gray((grid_map - low) / max(high - low, 1e-8)).resize(view.size, resample=Image.Resampling.NEAREST)
            overlays.append(np.asarray(heat.crop(box).resize((side, side), resample=Image.Resampling.NEAREST)))
        with self.hold_sync():
            self.examples = np.stack(crops) if crops else None
            self.example_maps = np.stack(overlays) if overlays else None
            self.example_values = [e.value for e in found]
            self.example_sources = [e.source for e in found]

    def _show_words(self) -> None:
        if not self._vocabulary:
            self.top_words = []
            return
        (ranked,) = rank_words_by_image(self._session, self.layer, [self.unit], self._vocabulary, progress=False)
        self.top_words = [[w, s] for w, s in ranked.top(8)]

    def _start_visualization(self) -> None:
        with self._lock:
            self._generation += 1
            generation = self._generation
        layer, unit = self.layer, self.unit
        objective = obj.channel(layer, unit)
        if self._facets > 1 and self._diversity:
            objective = objective + self._diversity * obj.diversity(layer)

        def stale() -> bool:
            return generation != self._generation

        def frame(step: int, images: np.ndarray, scores: np.ndarray) -> None:
            if not stale():
                with self.hold_sync():
                    self.visualization = images
                    self.progress = step / max(self._steps, 1)

        def work() -> None:
            try:
                render(self._session, objective, batch=self._facets, steps=self._steps, callback=frame, every=8,
                       progress=False, should_stop=stale)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - no caller to raise to: the banner is the report
                if not stale():
                    self.report(exc)
            finally:
                if not stale():
                    self.busy = False

        self.busy = True
        self.progress = 0.0
        self._worker = threading.Thread(target=work, name="clip-widgets-featvis", daemon=True)
        self._worker.start()


def _gray(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8))
