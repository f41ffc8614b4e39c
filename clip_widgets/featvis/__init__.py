"""Feature visualization for open_clip image towers (ViT and ResNet), split the lucid way:

* :mod:`.param`: image parameterizations (decorrelated Fourier, pixel, low-res, a fixed start);
* :mod:`.transform`: random transforms for transformation robustness;
* :mod:`.objectives`: per-image objectives that compose with ``+``, ``-``, ``*`` and weights;
* :mod:`.render`: the optimization loop, batched over many units, with progress, frames and interrupt.

    from clip_widgets import ModelSession
    from clip_widgets.featvis import objectives as obj, render
    session = ModelSession.default()
    result = render(session, obj.channel("blocks.4", range(16)), batch=16, steps=128)
    result.images  # (16, 64, 64, 3) uint8, image i maximizes unit i
"""

from __future__ import annotations

from . import objectives, param, transform
from .objectives import Objective
from .render import RenderResult, evaluate, grid, render, render_units

__all__ = [
    "Objective",
    "RenderResult",
    "evaluate",
    "grid",
    "objectives",
    "param",
    "render",
    "render_units",
    "transform",
]
