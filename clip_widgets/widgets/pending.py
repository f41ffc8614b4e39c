"""PendingView: what a tab shows while its view is still being computed in the background."""

from __future__ import annotations

import html

import ipywidgets


class PendingView(ipywidgets.VBox):
    """A line saying what is being computed and a progress bar from 0 to 1; :meth:`fail` turns
    it into the error that stopped the work. Plain ipywidgets, so it draws wherever ipywidgets do
    (JupyterLab, Notebook 7, Voila) before any of the package's own front end has loaded."""

    def __init__(self, what: str):
        self.what = what
        self.message = ipywidgets.HTML()
        self.bar = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0, bar_style="info",
                                            layout={"width": "320px"})  # fmt: skip
        super().__init__([self.message, self.bar], layout={"padding": "12px"})
        self.add_class("cw-pending")
        self.update("waiting to start", 0.0)

    def update(self, status: str, progress: float) -> None:
        """Show ``status`` (what runs now) and ``progress`` (0 to 1, all the background work)."""
        self.message.value = (f"<b>{html.escape(self.what)}</b> is being prepared: {html.escape(status)}, "
                              f"{progress:.0%} done")  # fmt: skip
        self.bar.value = min(max(float(progress), 0.0), 1.0)

    def fail(self, error: str) -> None:
        """Show that the work stopped, and why."""
        self.message.value = (f'<div style="color: var(--jp-error-color1, #b00020)"><b>{html.escape(self.what)}</b> '
                              f"could not be computed: {html.escape(error)}</div>")  # fmt: skip
        self.bar.bar_style = "danger"

    def close(self) -> None:
        """Close the view and its parts (a replaced view is not shown again)."""
        for part in (self.message, self.bar):
            part.close()
        super().close()
