"""ProbeExplorer: a sparse-to-dense slider over a probe path, and the neurons that compose a class."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from ..codecs import Array
from ..probe import ProbePath
from ._base import STATIC, Reporting, WidgetBase, entry_point


class ProbeCharts(WidgetBase):
    """The two charts of :class:`ProbeExplorer`, drawn as SVG by the bundled front end in the
    theme's colours: held-out ``accuracy`` against the ``neurons`` each probe of the path uses,
    with probe ``step`` ringed, and signed bars of ``weights`` for ``units``. A click on a bar
    calls ``on_open(unit)`` (a message, so that opening the same neuron twice works twice); a
    click on a point of the curve sets ``step``."""

    _esm = STATIC / "probe.js"
    _css = STATIC / "probe.css"

    neurons = Array(dtype="int32", ndim=1).tag(sync=True)
    """How many neurons each probe of the path uses, sparse to dense."""
    accuracy = Array(dtype="float32", ndim=1).tag(sync=True)
    """Each probe's held-out accuracy."""
    step = traitlets.Int(0).tag(sync=True)
    """The probe shown (an index into the path), ringed on the curve."""
    units = traitlets.List(traitlets.Int()).tag(sync=True)
    """The neurons drawn as bars, top to bottom."""
    weights = traitlets.List(traitlets.Float()).tag(sync=True)
    """Each bar's signed weight."""
    curve_title = traitlets.Unicode("").tag(sync=True)
    """The title above the curve."""
    bars_title = traitlets.Unicode("").tag(sync=True)
    """The title above the bars (the class and the probe they belong to)."""

    def __init__(self, *, on_open: Callable[[Any], None] | None = None, **traits: Any):
        super().__init__(**traits)
        self._on_open = on_open
        self.on_msg(self._on_message)

    @traitlets.validate("step")
    def _clamp_step(self, proposal: dict[str, Any]) -> int:
        last = len(self.neurons) - 1 if self.neurons is not None else 0
        return min(max(int(proposal["value"]), 0), max(last, 0))

    def _on_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        if isinstance(content, dict) and content.get("type") == "open" and self._on_open is not None:
            self._on_open(content.get("unit"))


class ProbeExplorer(Reporting, ipywidgets.VBox):
    """Held-out accuracy against the number of neurons used, from the sparsest probe to the
    densest (slider, or click a point of the curve), and the ``k`` neurons with the largest
    weights in magnitude for the chosen class at that step, as signed bars (those that push
    towards the class, then those that push away). Clicking a bar opens that neuron in
    ``explorer`` (a :class:`~clip_widgets.widgets.NeuronExplorer` on ``layer``), when one is
    given, then calls ``on_open(unit)``. Failures follow the rule of
    :class:`~clip_widgets.widgets._base.WidgetBase`: they show in ``error`` (a banner above the
    charts) and are raised to Python callers of :meth:`open_neuron`; the slider, the class menu
    and the bars report without raising.

    ``ProbeExplorer(sparse_probe(features, labels, classes), layer="blocks.4", explorer=NeuronExplorer(session))``.
    """

    def __init__(self, path: ProbePath, *, layer: str | None = None, explorer: Any = None, k: int = 10,
                 on_open: Callable[[int], None] | None = None):  # fmt: skip
        if explorer is not None and layer and layer not in explorer.layer_names:
            raise ValueError(f"the explorer has no layer {layer!r}; its layers: {', '.join(explorer.layer_names)}")
        self.path, self.layer, self.explorer, self.k, self.on_open = path, layer, explorer, int(k), on_open
        self.step = ipywidgets.IntSlider(value=_first_useful_step(path), min=0, max=len(path.Cs) - 1,
                                         description="sparse → dense", continuous_update=False,
                                         style={"description_width": "initial"})  # fmt: skip
        self.class_picker = ipywidgets.Dropdown(options=list(path.classes), description="class")
        self.summary = ipywidgets.Label()
        self.banner = ipywidgets.HTML(layout={"display": "none"})
        self.charts = ProbeCharts(
            neurons=path.neurons,
            accuracy=path.accuracy,
            step=self.step.value,
            curve_title="Held-out accuracy vs neurons used",
            on_open=self._bar_clicked,
        )
        super().__init__([self.banner, ipywidgets.HBox([self.step, self.class_picker]), self.summary, self.charts])
        self.step.observe(self._refresh, names="value")
        self.class_picker.observe(self._refresh, names="value")
        self.charts.observe(self._point_picked, names="step")
        self._refresh()

    @entry_point(clears=False)
    def neurons(self) -> list[tuple[int, float]]:
        """The bars: the chosen class's strongest neurons at the chosen step, ``[(unit, weight), ...]``
        from the largest weight to the most negative (see :meth:`ProbePath.strongest_neurons`)."""
        return self.path.strongest_neurons(self.class_picker.value, self.step.value, self.k)

    @entry_point
    def open_neuron(self, unit: int) -> None:
        """Show ``unit`` of ``layer`` in the NeuronExplorer."""
        units = self.path.coefs.shape[-1]
        if not 0 <= int(unit) < units:
            raise IndexError(f"unit {unit} is out of range: the probe covers units 0 to {units - 1}")
        if self.explorer is not None:
            with self.explorer.hold_trait_notifications():
                if self.layer:
                    self.explorer.layer = self.layer
                self.explorer.unit = int(unit)
        if self.on_open is not None:
            self.on_open(int(unit))

    @traitlets.observe("error")
    def _show_error(self, change: dict[str, Any]) -> None:
        self.banner.value = f'<div style="color: var(--jp-error-color1, #b00020)">{html.escape(change["new"])}</div>'
        self.banner.layout.display = "block" if change["new"] else "none"

    def _bar_clicked(self, unit: Any) -> None:
        with self.reporting(raises=False):  # a click in the browser: nobody to raise to
            if isinstance(unit, bool) or not isinstance(unit, (int, float)) or unit != int(unit):
                raise TypeError(f"a bar names a whole unit number, got {unit!r}")
            self.open_neuron(int(unit))

    def _point_picked(self, change: dict[str, Any]) -> None:
        self.step.value = change["new"]  # the slider redraws the bars

    def _refresh(self, _change: Any = None) -> None:
        with self.reporting(raises=False):  # the slider and the menu live in the browser
            self._draw()

    def _draw(self) -> None:
        step = self.step.value
        bars = self.neurons()
        class_name = self.class_picker.value
        towards = sum(weight > 0 for _, weight in bars)
        with self.charts.hold_sync():
            self.charts.step = step
            self.charts.units = [unit for unit, _ in bars]
            self.charts.weights = [weight for _, weight in bars]
            self.charts.bars_title = f"Strongest weights for “{class_name}” at C = {self.path.Cs[step]:.3g}"
        self.summary.value = (f"C = {self.path.Cs[step]:.3g}: {self.path.neurons[step]} neurons, held-out accuracy "
                              f"{self.path.accuracy[step]:.3f}; of the {len(bars)} strongest for this class, "
                              f"{towards} push towards it and {len(bars) - towards} away")  # fmt: skip


def _first_useful_step(path: ProbePath) -> int:
    """The sparsest step whose accuracy is within 5 points of the best: where a probe says most."""
    good = np.flatnonzero(path.accuracy >= path.accuracy.max() - 0.05)
    return int(good[0]) if len(good) else 0
