"""NeuronExplorer: a Microscope for one model and your own images, live in the notebook."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import traitlets

from ..codecs import Array
from ..examples import ExampleStore, example_views
from ..featvis import objectives as obj
from ..featvis import render
from ..textprobe import QUERY_SCORES, rank_words_by_image, text_query_method, units_for_text
from ..texts import text_list
from ._base import STATIC, WidgetBase, entry_point
from .neuron_microscope import MicroscopeSite


class UnitOutOfRangeError(IndexError, traitlets.TraitError):
    """A unit outside its layer. Also a TraitError: traitlets rolls back a refused value from the
    browser only for those, where any other error would first run the observers with it."""


def explorable_layers(session: Any) -> list[str]:
    """The layers a NeuronExplorer can show (those with units), in forward order."""
    return [n for n in session.layers.names if session.layers[n].kind in ("conv", "tokens", "vector")]


FINE_STEPS, FINE_VIEWS = 256, 4
"""``detail="fine"``: steps, and random draws averaged per step. Four draws a step at 256 steps
gave the late units' pictures that the other models read best (README); each draw is a pass."""

DEFAULT_VOCABULARY = (
    "red", "green", "blue", "yellow", "purple", "orange", "circle", "square", "triangle", "cross", "star",
    "cat", "dog", "car", "ship", "apple", "ipod", "bird", "truck", "plane", "horse", "frog", "deer",
)  # fmt: skip


class NeuronExplorer(WidgetBase):
    """Pick a layer and unit (or jump there from a text query) and see what drives it: its
    feature visualization (frames stream in while it optimizes), a few diverse facets, its top
    or bottom dataset examples with crops, an activation overlay and the whole image, and the
    words that excite it.

    ``NeuronExplorer(session, examples="runs/examples")`` with an :class:`ExampleStore` (or its
    directory) from :func:`clip_widgets.examples.collect_examples`; without one, the examples
    panel stays empty. Examples collected from an in-memory iterable need it again as ``images``.
    It shows ``example_count`` examples as ``example_size`` px crops and ``word_count`` words.
    Visualizations are drawn quickly (``steps`` steps of ``views`` random draws each) until
    ``detail`` is ``"fine"``: then ``fine_steps`` of ``fine_views`` each, some ten times the work.
    Until a new unit's visualization, examples and words arrive, ``visualization_of``,
    ``examples_of`` and ``words_of`` still name the old one, and the view marks those panels
    stale. A unit outside the layer is refused, naming the valid range.
    :meth:`from_microscope` browses a built Microscope site (passed on as ``site``, a
    :class:`~clip_widgets.widgets.neuron_microscope.MicroscopeSite`): its units show their stored
    facets and labels (``unit_label``) at once.
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
    unit = traitlets.Int(0).tag(sync=True)
    """The unit shown (channel of a feature map, dimension of a token): 0 to ``unit_count - 1``."""
    unit_count = traitlets.Int(0).tag(sync=True)
    """How many units ``layer`` has."""
    visualization = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Feature visualizations of the unit, (facets, H, W, 3) uint8: diverse images that all
    maximize it; updated with intermediate frames while optimizing."""
    visualization_of = traitlets.List().tag(sync=True)
    """``[layer, unit]`` that ``visualization`` shows; empty before the first frame."""
    progress = traitlets.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    """Progress of the running visualization, 0 to 1."""
    detail = traitlets.Enum(("quick", "fine"), "quick").tag(sync=True)
    """How visualizations are drawn: ``"quick"`` (the constructor's ``steps`` and ``views``) or
    ``"fine"`` (``fine_steps`` and ``fine_views``: clearer pictures, some ten times slower).
    Changing it redraws the unit shown; units picked after it are drawn the same way."""
    drawn_with = traitlets.List(traitlets.Int()).tag(sync=True)
    """``[steps, views]`` of the visualization running or last drawn."""
    example_set = traitlets.Enum(("top", "bottom"), "top").tag(sync=True)
    """Which dataset examples to show: ``"top"`` (the images that excite the unit most) or
    ``"bottom"`` (least)."""
    heat_overlay = traitlets.Bool(True).tag(sync=True)
    """Whether the crops show the unit's heat over them."""
    examples = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Crops of the unit's dataset examples around their extreme, (k, S, S, 3) uint8."""
    example_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The unit's heat over each crop, (k, S, S) uint8 (see :class:`~clip_widgets.examples.ExampleViews`)."""
    example_images = Array(dtype="uint8", ndim=4).tag(sync=True)
    """Each example's whole image as the model sees it, (k, H, W, 3) uint8."""
    example_image_maps = Array(dtype="uint8", ndim=3).tag(sync=True)
    """The unit's heat over each whole image's layer grid, (k, rows, cols) uint8."""
    example_boxes = traitlets.List().tag(sync=True)
    """Each crop's ``[left, top, right, bottom]`` in its whole image."""
    example_values = traitlets.List(traitlets.Float()).tag(sync=True)
    """The unit's extreme on each example: its maximum (top) or minimum (bottom)."""
    example_sources = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Where each example came from (file path or item number)."""
    examples_of = traitlets.List().tag(sync=True)
    """``[layer, unit]`` that the examples show."""
    top_words = traitlets.List().tag(sync=True)
    """``[word, score]`` pairs: the vocabulary words that excite the unit most when written in an image."""
    word_baseline = traitlets.Float(0.0).tag(sync=True)
    """The unit's mean score over the whole vocabulary: where the top-word bars start."""
    words_of = traitlets.List().tag(sync=True)
    """``[layer, unit]`` that the top words show."""
    query = traitlets.Unicode("").tag(sync=True)
    """A text query; setting it fills ``query_results`` with the units of ``layer`` it excites
    most (recomputed when the layer changes)."""
    query_results = traitlets.List().tag(sync=True)
    """``[unit, score]`` pairs for ``query``, best first."""
    query_heading = traitlets.Unicode("").tag(sync=True)
    """What ``query_results`` are: the layer, the query and what the scores measure."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while a visualization is being optimized."""
    unit_label = traitlets.Unicode("").tag(sync=True)
    """The unit's automatic label from a Microscope site (see :meth:`from_microscope`), e.g.
    ``"a red star (confidence z 2.31)"``; ``""`` for units the site did not label."""

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
        views: int = 1,
        fine_steps: int = FINE_STEPS,
        fine_views: int = FINE_VIEWS,
        diversity: float = 0.05,
        example_count: int = 8,
        example_size: int = 128,
        word_count: int = 8,
        site: MicroscopeSite | None = None,
        **traits: Any,
    ):
        self._session = session
        self._site = site
        self._store = examples if examples is None or isinstance(examples, ExampleStore) else ExampleStore(examples)
        self._images = images
        self._vocabulary = text_list(vocabulary, "vocabulary")
        self._facets, self._diversity = int(facets), float(diversity)
        self._draws = {"quick": (int(steps), int(views)), "fine": (int(fine_steps), int(fine_views))}
        for name, (count, each) in self._draws.items():
            if count < 1 or each < 1:
                prefix = "" if name == "quick" else "fine_"
                msg = f"{prefix}steps and {prefix}views must be at least 1, got {count} and {each}"
                raise ValueError(msg)
        self._example_count, self._example_size = int(example_count), int(example_size)
        self._word_count = int(word_count)
        self._generation = 0
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        names = explorable_layers(session)
        super().__init__(**traits)
        with self.hold_trait_notifications():
            self.layer_names = names
            self.layer = layer if layer is not None else names[-2 if len(names) > 1 else 0]
            self.unit = unit
        self._ready = True
        with self.reporting(raises=False):  # a failed first view shows in the returned widget
            self._show()

    @classmethod
    def from_microscope(
        cls,
        path: str | os.PathLike,
        session: Any = None,
        *,
        layer: str | None = None,
        unit: int | None = None,
        **kwargs: Any,
    ) -> NeuronExplorer:
        """Browse the Microscope that :func:`~clip_widgets.microscope.build_microscope` wrote to
        ``path``, live: its units show their stored facets and labels at once, with its dataset
        examples; any other unit is optimized as usual. ``session``: the model it was built with
        (default: loaded by the name in its manifest). Opens on the site's first layer and unit
        unless ``layer``/``unit`` say otherwise; other keywords as for the constructor (a site built
        from in-memory images needs them again as ``images`` to show its examples)."""
        site = MicroscopeSite.read(path)
        if session is None:
            from ..session import ModelSession  # open_clip loads only when a model must be

            session = ModelSession.load(site.model)
        site.check_session(session)
        if layer is None and site.layers:
            layer = site.layers[0]
        if unit is None:
            unit = site.first_unit(layer) if layer is not None else 0
        return cls(session, layer, unit, examples=ExampleStore(site.root / "examples"), site=site, **kwargs)

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

    @traitlets.validate("unit")
    @entry_point(clears=False)  # a good value clears through the assignment
    def _check_unit(self, proposal: dict[str, Any]) -> int:
        unit, count = proposal["value"], self._session.layers[self.layer].units
        if not 0 <= unit < count:
            msg = f"unit {unit} out of range for layer {self.layer!r}: valid units are 0 to {count - 1}"
            raise UnitOutOfRangeError(msg)
        return unit

    @traitlets.observe("layer", "unit")
    def _selection_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False):
            self._show()
            if change["name"] == "layer":
                # the chips name units of the layer shown; a success leaves ``error`` alone, as it
                # may already be about the visualization just started
                with self.reporting(clears=False):
                    self._find_units()

    @traitlets.observe("query")
    @entry_point
    def _query_changed(self, change: dict[str, Any]) -> None:
        self._find_units()

    def _find_units(self) -> None:
        query = self.query.strip()
        with self.hold_sync():
            if not query:
                self.query_results, self.query_heading = [], ""
                return
            self.query_results = [[u, s] for u, s in units_for_text(self._session, self.layer, query)]
            how = QUERY_SCORES[text_query_method(self.layer)]
            self.query_heading = f"units of {self.layer} for \u201c{query}\u201d, by {how}"

    @traitlets.observe("detail")
    @entry_point
    def _detail_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False) and self.unit < self.unit_count:
            self._start_visualization()

    @traitlets.observe("example_set")
    @entry_point
    def _example_set_changed(self, change: dict[str, Any]) -> None:
        if getattr(self, "_ready", False) and self.unit < self.unit_count:
            self._show_examples()

    # -- work ---------------------------------------------------------------------------------

    def _show(self) -> None:
        with self.reporting():
            count = self._session.layers[self.layer].units
            self.unit_count = count
            clamped = self.unit >= count
            if not clamped:
                self.unit_label = self._site.label(self.layer, self.unit) if self._site else ""
                self._show_examples()
                self._show_words()
        # both outside the block, so its clearing of ``error`` cannot wipe a failure of the new run
        if clamped:  # a layer with fewer units: its last one
            self.unit = count - 1  # re-enters _show through the observer
        else:
            self._start_visualization()

    def _show_examples(self) -> None:
        store = self._store
        with self.hold_sync():
            if store is None or self.layer not in store.layers:
                self.examples = self.example_maps = self.example_images = self.example_image_maps = None
                self.example_boxes, self.example_values, self.example_sources = [], [], []
            else:
                views = example_views(
                    self._session, store, self.layer, self.unit,
                    which=self.example_set, count=self._example_count, size=self._example_size, images=self._images,
                )  # fmt: skip
                shown = len(views.examples) > 0
                self.examples = views.crops if shown else None
                self.example_maps = views.crop_heat if shown else None
                self.example_images = views.images if shown else None
                self.example_image_maps = views.heat if shown else None
                self.example_boxes = views.boxes.tolist()
                self.example_values = [e.value for e in views.examples]
                self.example_sources = [e.source for e in views.examples]
            self.examples_of = [self.layer, self.unit]

    def _show_words(self) -> None:
        ranked = None
        if self._vocabulary:
            (ranked,) = rank_words_by_image(self._session, self.layer, [self.unit], self._vocabulary, progress=False)
        with self.hold_sync():
            self.top_words = [[w, s] for w, s in ranked.top(self._word_count)] if ranked else []
            self.word_baseline = float(np.mean(ranked.scores)) if ranked else 0.0
            self.words_of = [self.layer, self.unit]

    def _start_visualization(self) -> None:
        layer, unit = self.layer, self.unit
        stored = self._site.facets(layer, unit) if self._site else None
        with self._lock:
            self._generation += 1  # also stops a running optimization of an earlier unit
            generation = self._generation
            if stored is not None:  # the site's facets: nothing to optimize
                with self.hold_sync():
                    self.visualization = stored
                    self.visualization_of = [layer, unit]
                    self.progress, self.busy = 1.0, False
                return
        steps, views = self._draws[self.detail]
        objective = obj.channel(layer, unit)
        if self._facets > 1 and self._diversity:
            objective = objective + self._diversity * obj.diversity(layer)

        def stale() -> bool:
            return generation != self._generation

        def frame(step: int, images: np.ndarray, scores: np.ndarray) -> None:
            with self._lock:  # a new selection cannot slip between the check and the frame
                if not stale():
                    with self.hold_sync():
                        self.visualization = images
                        self.visualization_of = [layer, unit]
                        self.progress = step / steps

        def work() -> None:
            try:
                render(self._session, objective, batch=self._facets, steps=steps, views=views, callback=frame,
                       every=8, progress=False, should_stop=stale)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - no caller to raise to: the banner is the report
                if not stale():
                    self.report(exc)
            finally:
                if not stale():
                    self.busy = False

        with self.hold_sync():
            self.busy, self.progress, self.drawn_with = True, 0.0, [steps, views]
        self._worker = threading.Thread(target=work, name="clip-widgets-featvis", daemon=True)
        self._worker.start()
