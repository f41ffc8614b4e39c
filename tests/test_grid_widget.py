"""ActivationGridWidget's Python side: what it shows is what activation_grid computes, the
selection goes both ways, a click opens the unit, failures follow the widget error rule and a new
request cancels the running one."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from clip_widgets import ActivationGridWidget, NeuronExplorer
from clip_widgets.activation_grid import activation_grid, grid_layers, input_image
from clip_widgets.errors import ClipWidgetsError, ImageLoadError

CLASSES = ["an astronaut", "a rocket"]


def shown_equals(widget: ActivationGridWidget, expected) -> None:
    assert widget.grid == list(expected.grid)
    np.testing.assert_array_equal(widget.image, expected.image)
    np.testing.assert_array_equal(widget.icons, expected.icons)
    np.testing.assert_array_equal(widget.top_units, expected.top_units)
    np.testing.assert_array_equal(widget.top_values, expected.top_values)
    assert widget.dictionary_units == expected.dictionary_units
    np.testing.assert_array_equal(widget.unit_icons, expected.unit_icons)
    assert widget.classes == expected.classes
    np.testing.assert_allclose(widget.attribution, expected.attribution, rtol=1e-5, atol=1e-6)


def test_the_widget_shows_what_activation_grid_computes(vit_session, astronaut):
    widget = ActivationGridWidget(vit_session, astronaut, "blocks.1", classes=CLASSES, top=3, icon_steps=2)
    widget.wait(60)
    assert widget.error == "" and not widget.busy and widget.progress == 1.0 and not widget.stale
    expected = activation_grid(vit_session, astronaut, "blocks.1", classes=CLASSES, top=3, icon_steps=2,
                               progress=False)  # fmt: skip
    shown_equals(widget, expected)
    assert widget.result.layer == "blocks.1" and widget.layer_names == grid_layers(vit_session)
    assert "ln_post" in widget.layer_names and widget.icons.shape[0] == 16
    widget.close()


def test_the_model_view_and_the_progress_reports(vit_session, astronaut):
    np.testing.assert_array_equal(input_image(vit_session, astronaut), np.asarray(astronaut.resize((32, 32))))
    seen = []
    result = activation_grid(vit_session, astronaut, "blocks.0", icon_steps=3, progress=False,
                             on_progress=lambda f, g: seen.append((f, g.icons is None)))  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions[0] == pytest.approx(0.1) and fractions[-1] == pytest.approx(1.0)
    assert fractions == sorted(fractions) and len(seen) == 1 + 2 * 3
    assert all(no_icons for _, no_icons in seen) and result.icons is not None  # icons only at the end
    assert activation_grid(vit_session, astronaut, "blocks.0", icon_steps=0, progress=False).icons is None


def test_selection_goes_both_ways(vit_session, astronaut):
    widget = ActivationGridWidget(vit_session, astronaut, "blocks.0", classes=CLASSES, icon_steps=0,
                                  position=(1, 2), class_index=1, mode="attribution")  # fmt: skip
    widget.wait(60)
    assert widget.position == (1, 2) and widget.class_index == 1 and widget.mode == "attribution"
    widget.set_state({"position": [3, 0]})  # as the browser sends a click
    assert widget.position == (3, 0) and widget.error == ""
    widget.position = None
    assert widget.position is None
    widget.set_state({"position": [4, 0]})  # outside the 4 x 4 grid: refused, no exception escapes
    assert "outside the 4 x 4 grid" in widget.error and widget.position is None
    widget.set_state({"position": [0, 3]})
    assert widget.error == "" and widget.position == (0, 3)
    with pytest.raises(IndexError, match="2 classes"):
        widget.class_index = 2
    assert widget.class_index == 1
    widget.set_state({"class_index": 0, "mode": "icons"})
    assert (widget.class_index, widget.mode, widget.error) == (0, "icons", "")
    widget.close()


def test_clicking_a_unit_opens_it(vit_session, astronaut):
    explorer = NeuronExplorer(vit_session, "blocks.0", 0, steps=2, facets=1, vocabulary=[])
    explorer.wait(60)
    opened = []
    widget = ActivationGridWidget(vit_session, astronaut, "blocks.1", icon_steps=0, explorer=explorer,
                                  on_open=opened.append)  # fmt: skip
    widget.wait(60)
    unit = int(widget.top_units[5, 0])
    widget._handle_custom_msg({"type": "open", "unit": unit}, [])  # as the card's button sends it
    assert opened == [unit] and (explorer.layer, explorer.unit) == ("blocks.1", unit)
    widget._handle_custom_msg({"type": "open", "unit": unit}, [])  # the same unit again opens again
    assert opened == [unit, unit]
    widget._handle_custom_msg({"type": "open", "unit": 9999}, [])  # reported, not raised
    assert "unit 9999 is out of range" in widget.error and "0 to 63" in widget.error and opened == [unit, unit]
    widget.open_unit(3)  # an action that succeeds clears the banner
    assert widget.error == "" and opened[-1] == 3 and explorer.unit == 3
    explorer.wait(60)
    widget.close()
    explorer.close()


def test_failures_follow_the_error_rule(vit_session, astronaut, monkeypatch):
    with pytest.raises(ClipWidgetsError, match="blocks.0"):  # the constructor raises for bad arguments
        ActivationGridWidget(vit_session, astronaut, "blocks.9", icon_steps=0)
    with pytest.raises(ImageLoadError):
        ActivationGridWidget(vit_session, "/no/such/image.png", "blocks.0", icon_steps=0)
    widget = ActivationGridWidget(vit_session, astronaut, "blocks.0", icon_steps=0)
    widget.wait(60)
    before = widget.top_units.copy()

    # from Python: refused, raised, named, and the last good value kept
    with pytest.raises(KeyError, match="valid layers: conv1, ln_pre"):
        widget.layer = "blocks.7"
    assert "no layer named 'blocks.7'" in widget.error and widget.layer == "blocks.0"
    with pytest.raises(ImageLoadError, match="no/such"):
        widget.image = "/no/such/image.png"
    assert "cannot load image" in widget.error
    np.testing.assert_array_equal(widget.top_units, before)

    # from the browser: the same without raising, and the browser gets the kept value back
    resent = []
    monkeypatch.setattr(widget, "send_state", lambda key=None: resent.append(key))
    widget.set_state({"layer": "nope"})
    assert "no layer named 'nope'" in widget.error and widget.layer == "blocks.0" and ["layer"] in resent
    monkeypatch.undo()
    widget.set_state({"layer": "blocks.1"})  # a good value clears the error and recomputes
    assert widget.error == ""
    widget.wait(60)
    assert widget.result.layer == "blocks.1"

    # a failed computation in the background: reported, and the last good layer comes back
    def broken(*args, **kwargs):
        raise RuntimeError("layer hooks unavailable")

    monkeypatch.setattr(vit_session.layers, "forward", broken)
    widget.layer = "blocks.0"
    widget.wait(60)
    assert widget.error == "RuntimeError: layer hooks unavailable" and widget.layer == "blocks.1" and not widget.busy
    # ... also when it fails before the assignment that started it returns (a busy machine): the
    # good value's own clearing must not erase the news
    start = widget._start

    def start_and_finish():
        start()
        widget.wait(60)

    monkeypatch.setattr(widget, "_start", start_and_finish)
    widget.set_trait("error", "")
    widget.layer = "blocks.0"
    assert widget.error == "RuntimeError: layer hooks unavailable" and widget.layer == "blocks.1" and not widget.busy
    monkeypatch.undo()
    widget.layer = "blocks.0"  # the same value again retries, and its success clears the banner
    widget.wait(60)
    assert widget.error == "" and widget.result.layer == "blocks.0"
    np.testing.assert_array_equal(widget.top_units, before)
    widget.close()


def test_a_new_layer_cancels_the_running_computation(vit_session, astronaut):
    widget = ActivationGridWidget(vit_session, astronaut, "blocks.0", icon_steps=0)
    widget.wait(60)
    widget._arguments["icon_steps"] = 100_000  # a render far too long to wait for
    widget.layer = "blocks.1"
    first = widget._worker
    while widget.progress < 0.1 and first.is_alive():  # its positions are shown, its icons render
        first.join(0.05)
    assert first.is_alive() and widget.busy and widget.icons is None and widget.progress < 0.2
    widget._arguments["icon_steps"] = 2
    widget.layer = "ln_pre"  # cancels it
    first.join(60)
    assert not first.is_alive()
    widget.wait(60)
    assert widget.layer == "ln_pre" and widget.result.layer == "ln_pre" and widget.error == ""
    shown_equals(widget, activation_grid(vit_session, astronaut, "ln_pre", icon_steps=2, progress=False))
    assert not widget.busy and widget.progress == 1.0 and not widget.stale
    widget.close()


def test_unknown_arguments_and_traits_are_refused(vit_session, astronaut):
    with pytest.raises(TypeError, match="colour"):
        ActivationGridWidget(vit_session, astronaut, "blocks.0", icon_steps=0, colour="red")
    with pytest.raises(ValueError, match="top"):
        ActivationGridWidget(vit_session, astronaut, "blocks.0", top=0)
    with pytest.raises(traitlets.TraitError, match="'icons', 'attribution'"):
        ActivationGridWidget(vit_session, astronaut, "blocks.0", icon_steps=0, mode="heat")
