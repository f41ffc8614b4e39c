"""Notebook widgets: thin views over the compute modules."""

from .neuron import NeuronExplorer
from .surgery import SurgeryWidget

__all__ = ["NeuronExplorer", "SurgeryWidget"]
