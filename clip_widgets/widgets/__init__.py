"""Notebook widgets: thin views over the compute modules."""

from .atlas import AtlasWidget
from .grid import ActivationGridWidget
from .heads import HeadExplorer
from .lab import Lab
from .neuron import NeuronExplorer
from .probe import ProbeExplorer
from .static_page import save_html
from .surgery import SurgeryWidget
from .typographic import TypographicLab

__all__ = [
    "ActivationGridWidget",
    "AtlasWidget",
    "HeadExplorer",
    "Lab",
    "NeuronExplorer",
    "ProbeExplorer",
    "SurgeryWidget",
    "TypographicLab",
    "save_html",
]
