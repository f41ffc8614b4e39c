"""ProbeExplorer: a sparse-to-dense slider over a probe path, and the neurons that compose a class."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets
import numpy as np
import traitlets

from ..probe import ProbePath
from ._base import Reporting, entry_point


class ProbeExplorer(Reporting, ipywidgets.VBox):
    """Held-out accuracy against the number of neurons used, from the sparsest probe to the
    densest (slider), and the neurons with the largest weights for the chosen class at that
    step (plotly bars). Clicking a bar opens that neuron in ``explorer`` (a
    :class:`~clip_widgets.widgets.NeuronExplorer` on ``layer``), when one is given, then calls
    ``on_open(unit)``. Failures follow the rule of :class:`~clip_widgets.widgets._base.WidgetBase`:
    they show in ``error`` (a banner above the plots) and are raised to Python callers of
    :meth:`open_neuron`; the slider, the class menu and the bars report without raising.

    ``ProbeExplorer(sparse_probe(features, labels, classes), layer="blocks.4", explorer=NeuronExplorer(session))``.
    """

    def __init__(self, path: ProbePath, *, layer: str | None = None, explorer: Any = None, k: int = 10,
                 on_open: Callable[[int], None] | None = None):  # fmt: skip
        import plotly.graph_objects as go  # noqa: PLC0415 - only this view needs plotly

        if explorer is not None and layer and layer not in explorer.layer_names:
            raise ValueError(f"the explorer has no layer {layer!r}; its layers: {', '.join(explorer.layer_names)}")
        self.path, self.layer, self.explorer, self.k, self.on_open = path, layer, explorer, int(k), on_open
        self.step = ipywidgets.IntSlider(value=_first_useful_step(path), min=0, max=len(path.Cs) - 1,
                                         description="sparse → dense", continuous_update=False,
                                         style={"description_width": "initial"})  # fmt: skip
        self.class_picker = ipywidgets.Dropdown(options=list(path.classes), description="class")
        self.summary = ipywidgets.Label()
        self.banner = ipywidgets.HTML(layout={"display": "none"})
        self.curve = go.FigureWidget(
            data=[go.Scatter(x=path.neurons, y=path.accuracy, mode="lines+markers", name="probes"),
                  go.Scatter(x=[], y=[], mode="markers", marker={"size": 14}, name="shown")],
            layout={"height": 260, "width": 420, "xaxis_title": "neurons used", "yaxis_title": "held-out accuracy",
                    "showlegend": False, "margin": {"l": 50, "r": 10, "t": 10, "b": 40}},
        )  # fmt: skip
        self.bars = go.FigureWidget(
            data=[go.Bar(x=[], y=[])],
            layout={"height": 260, "width": 420, "xaxis_title": "neuron", "yaxis_title": "weight",
                    "margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "xaxis_type": "category"},
        )  # fmt: skip
        self.bars.data[0].on_click(self._bar_clicked)
        super().__init__([self.banner, ipywidgets.HBox([self.step, self.class_picker]), self.summary,
                          ipywidgets.HBox([self.curve, self.bars])])  # fmt: skip
        self.step.observe(self._refresh, names="value")
        self.class_picker.observe(self._refresh, names="value")
        self._refresh()

    @entry_point(clears=False)
    def neurons(self) -> list[tuple[int, float]]:
        """The chosen class's top neurons at the chosen step: ``[(unit, weight), ...]``."""
        return self.path.top_neurons(self.class_picker.value, self.step.value, self.k)

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
        self.banner.value = f'<div style="color: #b00020">{html.escape(change["new"])}</div>'
        self.banner.layout.display = "block" if change["new"] else "none"

    def _bar_clicked(self, trace: Any, points: Any, state: Any) -> None:
        with self.reporting(raises=False):  # a click in the browser: nobody to raise to
            for index in points.point_inds:
                self.open_neuron(int(trace.x[index]))

    def _refresh(self, _change: Any = None) -> None:
        with self.reporting(raises=False):  # the slider and the menu live in the browser
            self._draw()

    def _draw(self) -> None:
        step = self.step.value
        top = self.neurons()
        with self.curve.batch_update():
            self.curve.data[1].x, self.curve.data[1].y = [self.path.neurons[step]], [self.path.accuracy[step]]
        with self.bars.batch_update():
            self.bars.data[0].x = [str(unit) for unit, _ in top]
            self.bars.data[0].y = [weight for _, weight in top]
        self.summary.value = (f"C = {self.path.Cs[step]:.3g}: {self.path.neurons[step]} neurons, held-out accuracy "
                              f"{self.path.accuracy[step]:.3f}; {len(top)} neurons push this class")  # fmt: skip


def _first_useful_step(path: ProbePath) -> int:
    """The sparsest step whose accuracy is within 5 points of the best: where a probe says most."""
    good = np.flatnonzero(path.accuracy >= path.accuracy.max() - 0.05)
    return int(good[0]) if len(good) else 0
