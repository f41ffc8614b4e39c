"""What every clip_widgets widget shares: the bundled front end and strict keyword arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget

STATIC = Path(__file__).resolve().parent.parent / "static"


class WidgetBase(anywidget.AnyWidget):
    """An anywidget whose unknown keyword arguments are an error, not a silent no-op."""

    def __init__(self, **traits: Any):
        valid = set(self.class_trait_names(sync=True)) - set(anywidget.AnyWidget.class_trait_names(sync=True))
        unknown = sorted(set(traits) - valid)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {', '.join(unknown)}; "
                f"valid traits: {', '.join(sorted(valid))}"
            )
        super().__init__(**traits)
