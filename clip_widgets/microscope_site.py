"""The files of a Microscope site (see :mod:`clip_widgets.microscope`): the page, its style, and
the data scripts it loads. Everything loads by ``<script src>``, which works from ``file://``
where fetching JSON does not:

* ``data.js`` sets ``window.MICROSCOPE``: the model, and per layer its units (icon, facets,
  label, confidence) and its atlas, if one was made; ``microscope.json`` holds the same for
  programs (:meth:`clip_widgets.widgets.NeuronExplorer.from_microscope` reads it);
* ``units/<layer>/<unit>.js`` calls ``microscopeUnit({...})`` with one unit's details: its top
  words and its top and bottom examples (crop file, value, source, and the unit's heat over the
  layer's grid with the crop's box, drawn over the crop by the page), loaded when its page opens,
  so the index stays small for layers with thousands of units.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

MANIFEST = "microscope.json"

_CSS = """
:root { color-scheme: light dark; --ms-fg: #1f2328; --ms-bg: #fafafa; --ms-card: #fff; --ms-line: #d0d7de;
  --ms-muted: #57606a; --ms-accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --ms-fg: #e6edf3; --ms-bg: #0d1117; --ms-card: #161b22;
  --ms-line: #30363d; --ms-muted: #8d96a0; --ms-accent: #4493f8; } }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ms-fg);
  background: var(--ms-bg); }
header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: var(--ms-card);
  border-bottom: 1px solid var(--ms-line); position: sticky; top: 0; z-index: 1; }
header h1 { font-size: 17px; margin: 0; }
header a, .ms-unit-page a { color: inherit; }
header input { font-size: 14px; padding: 5px 8px; width: 260px; border: 1px solid var(--ms-line);
  border-radius: 6px; background: var(--ms-bg); color: inherit; }
main { padding: 12px 20px; }
h2 { font-size: 15px; margin: 18px 0 8px; }
.ms-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 10px; }
.ms-card { display: block; background: var(--ms-card); border: 1px solid var(--ms-line); border-radius: 6px;
  padding: 6px; color: inherit; text-decoration: none; font-size: 12px; }
.ms-card:hover, .ms-card:focus { border-color: var(--ms-accent); }
.ms-card img { width: 100%; aspect-ratio: 1; image-rendering: pixelated; border-radius: 4px; }
.ms-muted { color: var(--ms-muted); }
.ms-unit { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
.ms-vis { width: 320px; height: 320px; image-rendering: pixelated; border: 1px solid var(--ms-line); }
.ms-facets { display: flex; gap: 6px; margin-top: 6px; }
.ms-facets img { width: 104px; height: 104px; image-rendering: pixelated; border: 1px solid var(--ms-line); }
.ms-label { font-size: 20px; margin: 4px 0; }
.ms-words { list-style: none; padding: 0; margin: 8px 0; font-size: 13px; }
.ms-words li { display: grid; grid-template-columns: 200px 120px 60px; align-items: center; gap: 8px; }
.ms-examples { display: flex; gap: 10px; flex-wrap: wrap; }
.ms-example { font-size: 12px; text-align: center; margin: 0; }
.ms-stage { position: relative; width: 128px; height: 128px; }
.ms-stage img, .ms-stage canvas { position: absolute; inset: 0; width: 128px; height: 128px;
  border: 1px solid var(--ms-line); box-sizing: border-box; }
.ms-stage canvas { image-rendering: pixelated; pointer-events: none; }
.ms-heat-off .ms-stage canvas { display: none; }
.ms-error { color: #cf222e; }
.cw-track { display: inline-block; position: relative; height: 8px; vertical-align: middle;
  background: rgba(128, 128, 128, 0.2); border-radius: 2px; }
.cw-track .cw-bar { position: absolute; top: 0; height: 8px; background: var(--ms-accent); border-radius: 2px; }
.cw-track .cw-bar.cw-negative { background: #cf222e; }
.cw-track .cw-zero { position: absolute; top: -2px; width: 1px; height: 12px; background: var(--ms-muted); }
.ms-atlas { display: flex; gap: 16px; align-items: flex-start; margin-bottom: 8px; }
.ms-atlas img { width: min(480px, 90vw); image-rendering: pixelated; border: 1px solid var(--ms-line); }
"""


def page(title: str) -> str:
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<div id="microscope"><p>Loading...</p></div>
<script src="data.js"></script>
<script src="microscope.js"></script>
</body>
</html>
"""


def safe_name(name: str) -> str:
    """A layer name as a directory name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _script(value: Any) -> str:
    # "</" would end an inline script; in a file it is harmless, but the same text may be inlined
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def write_index(root: Path, data: dict) -> None:
    """``data.js`` and ``microscope.json`` (each replaced whole: a reader never sees half)."""
    for name, text in ((MANIFEST, json.dumps(data, indent=1)), ("data.js", f"window.MICROSCOPE = {_script(data)};\n")):
        tmp = root / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, root / name)


def example_entries(folder: Path, prefix: str, views: Any) -> list[dict]:
    """The page's records of one unit's top or bottom examples (``views``:
    :class:`~clip_widgets.examples.ExampleViews`), their crops written under ``folder``."""
    out = []
    for i, example in enumerate(views.examples):
        name = f"{prefix}{i}.png"
        Image.fromarray(views.crops[i]).save(folder / name)
        height, width = views.images[i].shape[:2]
        out.append(
            {
                "file": f"units/{folder.name}/{name}",
                "value": round(float(example.value), 5),
                "source": example.source,
                "heat": base64.b64encode(np.ascontiguousarray(views.heat[i], np.uint8).tobytes()).decode(),
                "grid": list(views.heat[i].shape),
                "box": [int(v) for v in views.boxes[i]],
                "view": [int(width), int(height)],
            }
        )
    return out


def write_unit(folder: Path, detail: dict) -> None:
    path = folder / f"{detail['unit']}.js"
    tmp = path.with_suffix(".js.tmp")
    tmp.write_text(f"microscopeUnit({_script(detail)});\n", encoding="utf-8")
    os.replace(tmp, path)
