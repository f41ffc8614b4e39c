"""Exceptions raised by clip_widgets, each with a message that says what to do next."""

from __future__ import annotations


class ClipWidgetsError(Exception):
    """Base class for every error this package raises on purpose."""


class ImageLoadError(ClipWidgetsError, ValueError):
    """An image could not be read or decoded; the message names the file."""

    def __init__(self, source: object, reason: str):
        self.source = source
        self.reason = reason
        super().__init__(f"cannot load image {source!s}: {reason}")


class UnsafeCheckpointError(ClipWidgetsError):
    """A checkpoint needs arbitrary code execution (a full pickle) to load and was refused."""


class LayerNotFoundError(ClipWidgetsError, KeyError):
    """A layer name is not in the model's layer registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class UnsupportedModelError(ClipWidgetsError, TypeError):
    """A method cannot be applied to this model architecture."""
