"""SurgeryWidget's Python side: state, recomputation, errors that stay in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from clip_widgets.errors import ImageLoadError
from clip_widgets.surgery import surgery_maps
from clip_widgets.widgets import SurgeryWidget

LABELS = ["face", "rocket", "sky"]


@pytest.fixture
def widget(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=96)
    yield w
    w.close()


def test_maps_are_the_compute_modules_maps_as_uint8(widget, vit_session):
    assert widget.error == ""
    h, w, _ = widget.image.shape
    assert max(h, w) == 96
    assert widget.surgery_maps.shape == (3, h, w) and widget.surgery_maps.dtype == np.uint8
    expected = surgery_maps(vit_session, widget.image, LABELS)
    np.testing.assert_allclose(widget.surgery_maps / 255.0, expected.surgery, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(widget.raw_maps / 255.0, expected.raw, atol=0.5 / 255 + 1e-6)
    assert len(widget.probs) == 3 and abs(sum(widget.probs) - 1) < 1e-5
    # one scale for all labels: the hottest label reaches the top (bilinear upsampling may stop
    # just short of the token extremes), and the legend gets the similarities of both ends
    assert widget.surgery_maps.max() >= 240
    assert widget.map_scales == expected.info["scale"] and widget.map_scales["surgery"]["floor"]
    widget.scale = "label"  # each map stretched on its own, as the reference implementation draws them
    assert (widget.surgery_maps.reshape(3, -1).max(1) >= 240).all()
    assert (widget.surgery_maps.reshape(3, -1).min(1) <= 15).all()
    assert len(widget.map_scales["surgery"]["low"]) == 3


def test_an_absent_label_looks_cold_and_gets_no_points():
    from clip_widgets import ModelSession  # noqa: PLC0415
    from clip_widgets.world import draw_scene  # noqa: PLC0415

    scene = draw_scene(3 * 10**9 + 77, spec=[("red", "circle")], word_probability=0.0).image
    labels = ["a blue star", "a red circle", "a green cross"]  # the label the image shows is not first
    widget = SurgeryWidget(ModelSession.default(device="cpu"), scene, labels, show_points=True)
    assert widget.selected == 1  # it opens on the label the image shows
    present, absent = widget.surgery_maps[1].astype(float), widget.surgery_maps[[0, 2]].astype(float)
    assert present.max() >= 230 and absent.max() < 0.5 * present.max(), (present.max(), absent.max(1))
    assert any(kind == 1 for *_, kind in widget.points)
    widget.selected = 0
    assert not any(kind == 1 for *_, kind in widget.points)  # no positive prompt where the label is absent
    widget.close()


def test_label_edits_recompute_and_are_cleaned(widget):
    widget.labels = ["  cat ", "dog", "", "cat", "<b>bold</b>"]
    assert widget.labels == ["cat", "dog", "<b>bold</b>"]
    assert widget.surgery_maps.shape[0] == 3
    widget.selected = 2
    widget.labels = ["cat"]
    assert widget.selected == 0
    # one label: feature surgery subtracts the empty prompt, so the map is not flat
    assert widget.surgery_maps.shape[0] == 1 and np.ptp(widget.surgery_maps) > 0
    widget.labels = []
    assert widget.surgery_maps is None and widget.points == [] and widget.error == ""


def test_threshold_methods_set_cutoffs(widget):
    widget.threshold_method = "quantile"
    widget.threshold = 0.9
    result = widget.result
    for mode, maps in (("surgery", result.surgery), ("raw", result.raw)):
        np.testing.assert_allclose(widget.cutoffs[mode], [np.quantile(m, 0.9) for m in maps])
    widget.threshold_method = "fixed"
    widget.threshold = 0.25
    assert widget.cutoffs["surgery"] == [0.25] * 3


def test_points_follow_the_selected_label(widget):
    widget.show_points = True
    widget.selected = int(np.argmax(widget.result.surgery.reshape(3, -1).max(1)))  # the hottest label
    widget.threshold = 0.3
    h, w, _ = widget.image.shape
    assert widget.points, "expected point prompts"
    for x, y, kind in widget.points:
        assert 0 <= x < w and 0 <= y < h and kind in (0, 1)
    before = widget.points
    widget.mode = "raw"
    widget.selected = 1
    assert widget.points != before or widget.result.raw_tokens[1].std() == 0


def test_state_crosses_as_binary_buffers(widget):
    state = widget.get_state()
    _, paths, buffers = _remove_buffers(state)
    assert ["surgery_maps", "view"] in paths and ["image", "view"] in paths
    assert sum(b.nbytes for b in buffers) >= widget.surgery_maps.nbytes + widget.image.nbytes


def test_unknown_keyword_is_an_error(vit_session):
    with pytest.raises(TypeError, match="unexpected keyword.*colour_map.*valid traits:.*colormap"):
        SurgeryWidget(vit_session, None, [], colour_map="jet")


def test_failures_show_in_the_widget_and_it_recovers(widget, vit_session, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(vit_session, "encode_text", broken)
    with pytest.raises(RuntimeError, match="text tower exploded"):  # a Python assignment hears of it too
        widget.labels = ["cat", "dog"]
    assert widget.error == "RuntimeError: text tower exploded"
    assert widget.busy is False
    monkeypatch.undo()
    widget.labels = ["cat", "dog", "bird"]
    assert widget.error == "" and widget.surgery_maps.shape[0] == 3


def test_bad_image_names_the_file(widget, tmp_path, astronaut, vit_session):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    before = widget.image.copy()
    with pytest.raises(ImageLoadError, match="broken.png"):
        widget.set_image(broken)
    assert "broken.png" in widget.error and widget.error.startswith("ImageLoadError: ")
    assert widget.surgery_maps is not None  # the old view is kept
    np.testing.assert_array_equal(widget.image, before)
    with pytest.raises(ImageLoadError, match="NaN"):
        widget.set_image(np.full((8, 8, 3), np.nan, np.float32))
    assert "NaN" in widget.error
    widget.set_image(np.asarray(astronaut)[::-1])  # a good image clears the error and is shown
    assert widget.error == "" and not np.array_equal(widget.image, before)
    expected = surgery_maps(vit_session, widget.image, LABELS)
    np.testing.assert_allclose(widget.surgery_maps / 255.0, expected.surgery, atol=0.5 / 255 + 1e-6)


def test_maps_are_sent_at_map_side(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=200, map_side=50)
    assert w.image.shape[:2] == (200, 200) and w.surgery_maps.shape == (3, 50, 50)
    assert all(0 <= x < 200 and 0 <= y < 200 for x, y, _ in w.points)  # points stay in image pixels
    w.close()


def test_resnet_sessions_work_too(resnet_session, astronaut):
    w = SurgeryWidget(resnet_session, astronaut, ["face", "sky"], max_side=64)
    assert w.error == "" and w.surgery_maps.shape == (2, 64, 64) and np.ptp(w.surgery_maps) > 0
    w.close()


def test_every_entry_point_reports_in_the_widget_and_recovers(widget, vit_session, astronaut, monkeypatch):
    # a refused setting names the valid choices; another setting leaves the error, a good value clears it
    with pytest.raises(traitlets.TraitError, match="rainbow"):
        widget.colormap = "rainbow"
    assert "'rainbow'" in widget.error and "'viridis'" in widget.error and widget.colormap == "jet"
    widget.opacity = 0.3
    assert "rainbow" in widget.error
    widget.colormap = "gray"
    assert widget.error == ""

    # from the browser: reported, never raised, and the refused value is sent back
    resent = []
    monkeypatch.setattr(widget, "send_state", lambda key=None: resent.append(key))
    widget.set_state({"mode": "bogus"})
    assert "'bogus'" in widget.error and "'surgery'" in widget.error and widget.mode == "surgery"
    assert ["mode"] in resent  # beside the "error" update itself
    widget.set_state({"mode": "raw"})
    assert widget.error == "" and widget.mode == "raw"

    # a failed recomputation from the browser: reported, and the next good edit recomputes
    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(vit_session, "encode_text", broken)
    widget.set_state({"labels": ["cat", "dog"]})
    assert widget.error == "RuntimeError: text tower exploded" and not widget.busy
    monkeypatch.undo()
    widget.set_state({"labels": ["cat", "dog"]})
    expected = surgery_maps(vit_session, widget.image, ["cat", "dog"])
    assert widget.error == ""
    np.testing.assert_allclose(widget.surgery_maps / 255.0, expected.surgery, atol=0.5 / 255 + 1e-6)


def test_a_failed_first_computation_still_returns_the_widget(vit_session, astronaut, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(vit_session, "encode_text", broken)
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=64)  # no raise: the banner tells
    assert w.error == "RuntimeError: text tower exploded" and w.surgery_maps is None
    monkeypatch.undo()
    w.labels = ["face", "sky"]
    assert w.error == "" and w.surgery_maps.shape[0] == 2
    w.close()


def test_a_bare_string_is_one_label_and_one_template(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, "a face", templates="a photo of {}.", max_side=64)
    assert w.labels == ["a face"] and w.error == ""
    expected = surgery_maps(vit_session, w.image, ["a face"], templates=["a photo of {}."])
    np.testing.assert_allclose(w.surgery_maps / 255.0, expected.surgery, atol=0.5 / 255 + 1e-6)
    assert expected.info["templates"] == ["a photo of {}."]
    w.close()
