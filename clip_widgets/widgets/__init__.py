"""Notebook widgets: thin views over the compute modules."""

from .surgery import SurgeryWidget

__all__ = ["SurgeryWidget"]
