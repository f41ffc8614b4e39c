"""clip_widgets: look inside CLIP-family vision-language models, live in a notebook.

Compute lives in plain modules (``session``, ``surgery``, ``images``, ``layers``) that return
tensors and arrays; the widgets in ``clip_widgets.widgets`` are thin views over them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ModelSession": "session",
    "load_image": "images",
    "iter_images": "images",
    "surgery_maps": "surgery",
    "SurgeryResult": "surgery",
    "feature_surgery": "surgery",
    "dense_tokens": "surgery",
    "similarity_map_to_points": "surgery",
    "threshold_map": "surgery",
    "dense_maps": "dense",
    "DenseMapResult": "dense",
    "SurgeryWidget": "widgets",
    "NeuronExplorer": "widgets",
    "AtlasWidget": "widgets",
    "TypographicLab": "widgets",
    "ProbeExplorer": "widgets",
    "HeadExplorer": "widgets",
    "ActivationGridWidget": "widgets",
    "activation_grid": "activation_grid",
    "ActivationGrid": "activation_grid",
    "Lab": "widgets",
    "build_atlas": "atlas",
    "Atlas": "atlas",
    "collect_examples": "examples",
    "ExampleStore": "examples",
    "label_units": "unit_labels",
    "UnitLabels": "unit_labels",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so that compute-only users never import the widget stack (and widgets never import torch twice).
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'clip_widgets' has no attribute {name!r}")
