"""Notebook widgets: thin views over the compute modules."""

from .atlas import AtlasWidget
from .neuron import NeuronExplorer
from .surgery import SurgeryWidget
from .typographic import TypographicLab

__all__ = ["AtlasWidget", "NeuronExplorer", "SurgeryWidget", "TypographicLab"]
