"""The front end reads only traits the Python widgets sync: every name a widget's JS module (and
the modules it imports) gets, sets or listens to is a synced trait of the widget class that
ships that module. A renamed trait fails here, not as a blank view in a browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clip_widgets.widgets import (
    ActivationGridWidget,
    AtlasWidget,
    HeadExplorer,
    NeuronExplorer,
    SurgeryWidget,
    TypographicLab,
)
from clip_widgets.widgets._base import STATIC
from clip_widgets.widgets.probe import ProbeCharts

SRC = Path(__file__).resolve().parents[1] / "js" / "src"
IMPORT = re.compile(r'^import .*?from "\./([\w.]+\.js)";', re.M)
TRAIT = re.compile(r'model\.(?:get|set)\("(\w+)"|"change:(\w+)"')
WIDGETS = {"surgery.js": SurgeryWidget, "neuron.js": NeuronExplorer, "atlas.js": AtlasWidget,
           "typographic.js": TypographicLab, "probe.js": ProbeCharts, "heads.js": HeadExplorer,
           "grid.js": ActivationGridWidget}  # fmt: skip


def modules(entry: str) -> list[Path]:
    """The entry module and every local module it imports, transitively."""
    seen, todo = [], [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo += IMPORT.findall((SRC / name).read_text())
    return [SRC / name for name in seen]


def traits_read(entry: str) -> set[str]:
    return {a or b for path in modules(entry) for a, b in TRAIT.findall(path.read_text())}


@pytest.mark.parametrize("entry", sorted(WIDGETS))
def test_every_trait_the_front_end_uses_is_synced(entry):
    widget = WIDGETS[entry]
    assert str(widget._esm) == (STATIC / entry).read_text()  # the class ships this module's bundle
    used = traits_read(entry)
    assert len(used) >= 3, used  # the scan found the module's traits at all
    synced = set(widget.class_trait_names(sync=True))
    assert used <= synced, f"{entry} uses traits {sorted(used - synced)} that {widget.__name__} does not sync"


def test_the_scan_sees_imports_and_listeners():
    assert {"codecs.js", "dom.js"} <= {p.name for p in modules("surgery.js")}
    assert {"selected", "maps", "compare_maps", "error"} <= traits_read("surgery.js")
