"""Lab: the widgets together, one tab each, for a notebook or a Voila dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets

from ..scene_examples import scene_examples
from ..texts import text_list
from .atlas import AtlasWidget
from .neuron import NeuronExplorer, explorable_layers
from .probe import ProbeExplorer
from .surgery import SurgeryWidget
from .typographic import TypographicLab


class Lab(ipywidgets.Tab):
    """One model, every view: CLIP Surgery on ``image`` with ``labels``, the NeuronExplorer
    (with dataset ``examples`` when given, else examples of a few drawn world scenes from
    :func:`~clip_widgets.scene_examples.scene_examples`), the typographic lab on the same image,
    and, when given, an activation ``atlas`` and a sparse ``probe`` path over ``probe_layer`` whose
    neurons open in the explorer tab. Each view stays reachable as an attribute (``lab.surgery``,
    ``lab.explorer``, ``lab.typographic``, ``lab.atlas``, ``lab.probe``). The Lab holds no state
    of its own: a failure shows in the view it happened in (each view's ``error``)."""

    def __init__(
        self,
        session: Any,
        image: Any,
        labels: Sequence[str],
        *,
        examples: Any = None,
        atlas: Any = None,
        probe: Any = None,
        probe_layer: str | None = None,
        typographic_text: str = "iPod",
        explorer_layer: str | None = None,
        **explorer_kw: Any,
    ):
        labels = text_list(labels)
        self.surgery = SurgeryWidget(session, image, labels)
        if examples is None and "images" not in explorer_kw:  # so the Neurons tab has examples to show
            examples, explorer_kw["images"] = scene_examples(session, explorable_layers(session))
        self.explorer = NeuronExplorer(session, explorer_layer or probe_layer, examples=examples, **explorer_kw)
        self.typographic = TypographicLab(session, image, labels, text=typographic_text)
        views: list[tuple[str, ipywidgets.Widget]] = [
            ("CLIP Surgery", self.surgery),
            ("Neurons", self.explorer),
            ("Typographic attack", self.typographic),
        ]
        self.atlas = AtlasWidget(atlas, session=session) if atlas is not None else None
        if self.atlas is not None:
            views.append(("Activation atlas", self.atlas))
        self.probe = None
        if probe is not None:
            self.probe = ProbeExplorer(probe, layer=probe_layer, explorer=self.explorer, on_open=self._show_explorer)
            views.append(("Sparse probe", self.probe))
        super().__init__(children=[view for _, view in views], titles=[title for title, _ in views])

    def _show_explorer(self, _unit: int) -> None:
        self.selected_index = 1  # the Neurons tab
