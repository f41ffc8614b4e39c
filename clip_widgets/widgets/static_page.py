"""A widget as one self-contained HTML page that opens from ``file://``: no kernel, no network.

``ipywidgets.embed`` pages load the widget manager from a CDN, so offline they render nothing (and
with ``drop_defaults=True`` an anywidget cannot find its own front end). Here each widget's bundled
ES module and CSS are written into the page with its synced state; arrays travel as base64 and
become the same ``DataView`` buffers the front end gets from a kernel. A small in-page model
stands in for the kernel's: changes made in the page are kept and redrawn, but nothing that needs
Python (new maps, tiles, examples) can be computed, and the page says so.

    widget.save_html("surgery.html")           # any clip_widgets widget
    save_html([lab_tab_a, lab_tab_b], "x.html")  # several, or a container of them (a Lab)
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets

from ._base import STATIC

__all__ = ["page_html", "save_html"]

_BUFFER_KEY = "__cw_buffer__"

_LOADER = STATIC / "page_loader.js"  # built from js/src/page_loader.js

_PAGE_CSS = """
body { margin: 16px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
.cw-static-notice { font-size: 12px; opacity: 0.75; margin: 4px 0; }
h2.cw-static-title { font-size: 15px; margin: 18px 0 6px; }
"""


def _leaves(item: Any, title: str = "") -> Iterator[tuple[str, anywidget.AnyWidget]]:
    """The anywidgets inside ``item`` (a widget, a container or a list), with the title each sits
    under (a Tab's title), in display order."""
    if isinstance(item, anywidget.AnyWidget):
        yield title, item
    elif isinstance(item, ipywidgets.Box):
        titles = list(getattr(item, "titles", ()) or ())
        for k, child in enumerate(item.children):
            yield from _leaves(child, titles[k] if k < len(titles) and titles[k] else title)
    elif isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
        for child in item:
            yield from _leaves(child, title)


def _source(value: Any) -> str:
    """An anywidget ``_esm``/``_css`` value (text, or a path to it) as text."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and "\n" not in value and Path(value).is_file()):
        return Path(value).read_text(encoding="utf-8")
    return str(value or "")


def _encode(value: Any) -> Any:
    if isinstance(value, (memoryview, bytes, bytearray)):
        return {_BUFFER_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot write {type(value).__name__} into the page")


def _script_json(data: dict) -> str:
    # "</" would end the <script> element early; JSON allows "<\\/" for it
    return json.dumps(data, default=_encode).replace("</", "<\\/")


def page_html(widgets: Any, title: str = "clip_widgets") -> str:
    """The page for ``widgets`` (one widget, a container, or a list of them)."""
    leaves = list(_leaves(widgets))
    if not leaves:
        raise ValueError(f"no clip_widgets widget to write in {type(widgets).__name__}; pass a widget or a container")
    styles, blocks = {}, []
    for heading, widget in leaves:
        css = _source(getattr(widget, "_css", ""))
        styles.setdefault(css, None)
        state = {name: value for name, value in widget.get_state().items() if not name.startswith("_")}
        spec = {"esm": _source(widget._esm), "state": state}
        blocks.append(
            (f'<h2 class="cw-static-title">{html.escape(heading)}</h2>' if heading else "")
            + f'<div data-cw-widget="{html.escape(type(widget).__name__)}">'
            + '<div class="cw-static-notice" hidden>This is a saved page: what needs the Python kernel'
            " (new maps, tiles, examples) cannot be computed here.</div>"
            + '<div class="cw-static-view"></div>'
            + f'<script type="application/json">{_script_json(spec)}</script></div>'
        )
    style = "\n".join(s.replace("</", "<\\/") for s in styles if s)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_PAGE_CSS}\n{style}</style></head>\n<body>\n"
        + "\n".join(blocks)
        + f'\n<script type="module">{_LOADER.read_text(encoding="utf-8")}</script>\n</body></html>\n'
    )


def save_html(widgets: Any, path: str | os.PathLike, title: str | None = None) -> Path:
    """Write ``widgets`` as a self-contained page at ``path`` (parents made); returns the path."""
    path = Path(path)
    text = page_html(widgets, title or path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
