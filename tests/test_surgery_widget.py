"""SurgeryWidget's Python side: state, recomputation, methods and their comparison, errors that
stay in the widget."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from clip_widgets.dense import METHODS, dense_maps, method_names
from clip_widgets.errors import ImageLoadError, UnsupportedModelError
from clip_widgets.surgery import surgery_maps
from clip_widgets.widgets import SurgeryWidget

LABELS = ["face", "rocket", "sky"]
ATOL = 0.5 / 255 + 1e-6  # maps cross as uint8


def assert_maps_equal(sent, expected):
    np.testing.assert_allclose(sent / 255.0, expected.maps, atol=ATOL)


def expected_maps(widget, session, method, labels=None, **kwargs):
    """What dense_maps gives for the widget's image at the size the widget sends its maps."""
    size = widget.maps.shape[1:]
    return dense_maps(session, widget.image, labels or widget.labels, method=method, size=size, **kwargs)


@pytest.fixture
def widget(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=96)
    yield w
    w.close()


def test_maps_are_the_compute_modules_maps_as_uint8(widget, vit_session):
    assert widget.error == ""
    h, w, _ = widget.image.shape
    assert max(h, w) == 96
    # by default CLIP Surgery compared with raw CLIP: the two kinds of maps surgery_maps gives
    assert (widget.method, widget.compare, widget.side_by_side) == ("surgery", "raw", False)
    assert widget.maps.shape == (3, h, w) and widget.maps.dtype == np.uint8
    expected = surgery_maps(vit_session, widget.image, LABELS)
    np.testing.assert_allclose(widget.maps / 255.0, expected.surgery, atol=ATOL)
    np.testing.assert_allclose(widget.compare_maps / 255.0, expected.raw, atol=ATOL)
    assert widget.result.method == "surgery" and widget.compare_result.method == "raw"
    assert len(widget.probs) == 3 and abs(sum(widget.probs) - 1) < 1e-5
    # one scale for all labels: the hottest label reaches the top (bilinear upsampling may stop
    # just short of the token extremes), and the legend gets the similarities of both ends
    assert widget.maps.max() >= 240
    assert widget.map_scales == expected.info["scale"] and widget.map_scales["surgery"]["floor"]
    widget.scale = "label"  # each map stretched on its own, as the reference implementation draws them
    assert (widget.maps.reshape(3, -1).max(1) >= 240).all()
    assert (widget.maps.reshape(3, -1).min(1) <= 15).all()
    assert len(widget.map_scales["surgery"]["low"]) == 3


def test_an_absent_label_looks_cold_and_gets_no_points():
    from clip_widgets import ModelSession  # noqa: PLC0415
    from clip_widgets.world import draw_scene  # noqa: PLC0415

    scene = draw_scene(3 * 10**9 + 77, spec=[("red", "circle")], word_probability=0.0).image
    labels = ["a blue star", "a red circle", "a green cross"]  # the label the image shows is not first
    widget = SurgeryWidget(ModelSession.default(device="cpu"), scene, labels, show_points=True)
    assert widget.selected == 1  # it opens on the label the image shows
    present, absent = widget.maps[1].astype(float), widget.maps[[0, 2]].astype(float)
    assert present.max() >= 230 and absent.max() < 0.5 * present.max(), (present.max(), absent.max(1))
    assert any(kind == 1 for *_, kind in widget.points)
    widget.selected = 0
    assert not any(kind == 1 for *_, kind in widget.points)  # no positive prompt where the label is absent
    widget.close()


def test_label_edits_recompute_and_are_cleaned(widget):
    widget.labels = ["  cat ", "dog", "", "cat", "<b>bold</b>"]
    assert widget.labels == ["cat", "dog", "<b>bold</b>"]
    assert widget.maps.shape[0] == 3 and widget.compare_maps.shape[0] == 3
    widget.selected = 2
    widget.labels = ["cat"]
    assert widget.selected == 0
    # one label: feature surgery subtracts the empty prompt, so the map is not flat
    assert widget.maps.shape[0] == 1 and np.ptp(widget.maps) > 0
    widget.labels = []
    assert widget.maps is None and widget.compare_maps is None and widget.points == [] and widget.error == ""
    assert widget.result is None and widget.compare_result is None


def test_threshold_methods_set_cutoffs(widget):
    widget.threshold_method = "quantile"
    widget.threshold = 0.9
    for result in (widget.result, widget.compare_result):  # each method's cutoffs from its own maps
        np.testing.assert_allclose(widget.cutoffs[result.method], [np.quantile(m, 0.9) for m in result.maps])
    widget.threshold_method = "fixed"
    widget.threshold = 0.25
    assert widget.cutoffs == {"surgery": [0.25] * 3, "raw": [0.25] * 3}
    widget.compare = ""
    assert list(widget.cutoffs) == ["surgery"]


def test_points_follow_the_selected_label(widget):
    widget.show_points = True
    widget.selected = int(np.argmax(widget.result.maps.reshape(3, -1).max(1)))  # the hottest label
    widget.threshold = 0.3
    h, w, _ = widget.image.shape
    assert widget.points, "expected point prompts"
    for x, y, kind in widget.points:
        assert 0 <= x < w and 0 <= y < h and kind in (0, 1)
    # the points are the shown method's, at its cutoff and on its scale (maps and image share a size here)
    assert widget.result.maps.shape[1:] == (h, w)
    for method in ("surgery", "naclip", "legrad"):
        widget.method = method
        xy, kind = widget.result.points(widget.selected, threshold=widget.cutoffs[method][widget.selected])
        assert widget.points == [[int(x), int(y), int(k)] for (x, y), k in zip(xy, kind, strict=True)], method


def test_state_crosses_as_binary_buffers(widget):
    state = widget.get_state()
    _, paths, buffers = _remove_buffers(state)
    assert ["maps", "view"] in paths and ["compare_maps", "view"] in paths and ["image", "view"] in paths
    assert sum(b.nbytes for b in buffers) >= widget.maps.nbytes + widget.compare_maps.nbytes + widget.image.nbytes


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
    assert widget.error == "" and widget.maps.shape[0] == 3


def test_bad_image_names_the_file(widget, tmp_path, astronaut, vit_session):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    before = widget.image.copy()
    with pytest.raises(ImageLoadError, match="broken.png"):
        widget.set_image(broken)
    assert "broken.png" in widget.error and widget.error.startswith("ImageLoadError: ")
    assert widget.maps is not None  # the old view is kept
    np.testing.assert_array_equal(widget.image, before)
    with pytest.raises(ImageLoadError, match="NaN"):
        widget.set_image(np.full((8, 8, 3), np.nan, np.float32))
    assert "NaN" in widget.error
    widget.set_image(np.asarray(astronaut)[::-1])  # a good image clears the error and is shown
    assert widget.error == "" and not np.array_equal(widget.image, before)
    assert_maps_equal(widget.maps, expected_maps(widget, vit_session, "surgery"))


def test_maps_are_sent_at_map_side(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=200, map_side=50)
    assert w.image.shape[:2] == (200, 200) and w.maps.shape == (3, 50, 50) and w.compare_maps.shape == (3, 50, 50)
    assert all(0 <= x < 200 and 0 <= y < 200 for x, y, _ in w.points)  # points stay in image pixels
    w.close()


def test_resnet_sessions_work_too(resnet_session, astronaut):
    w = SurgeryWidget(resnet_session, astronaut, ["face", "sky"], max_side=64)
    assert w.error == "" and w.maps.shape == (2, 64, 64) and np.ptp(w.maps) > 0
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
    widget.set_state({"method": "bogus"})
    assert "'bogus'" in widget.error and "naclip" in widget.error and widget.method == "surgery"
    assert ["method"] in resent  # beside the "error" update itself
    widget.set_state({"method": "raw"})
    assert widget.error == "" and widget.method == "raw"

    # a failed recomputation from the browser: reported, and the next good edit recomputes
    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(vit_session, "encode_text", broken)
    widget.set_state({"labels": ["cat", "dog"]})
    assert widget.error == "RuntimeError: text tower exploded" and not widget.busy
    monkeypatch.undo()
    widget.set_state({"labels": ["cat", "dog"]})
    assert widget.error == ""
    assert_maps_equal(widget.maps, expected_maps(widget, vit_session, "raw", ["cat", "dog"]))


def test_a_failed_first_computation_still_returns_the_widget(vit_session, astronaut, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(vit_session, "encode_text", broken)
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=64)  # no raise: the banner tells
    assert w.error == "RuntimeError: text tower exploded" and w.maps is None
    monkeypatch.undo()
    w.labels = ["face", "sky"]
    assert w.error == "" and w.maps.shape[0] == 2
    w.close()


def test_a_bare_string_is_one_label_and_one_template(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, "a face", templates="a photo of {}.", max_side=64)
    assert w.labels == ["a face"] and w.error == ""
    expected = surgery_maps(vit_session, w.image, ["a face"], templates=["a photo of {}."])
    np.testing.assert_allclose(w.maps / 255.0, expected.surgery, atol=ATOL)
    assert expected.info["templates"] == ["a photo of {}."]
    w.close()


# -- methods and their comparison ----------------------------------------------------------------


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_the_menu_lists_the_methods_the_tower_runs(tower, request, astronaut):
    session = request.getfixturevalue(f"{tower}_session")
    w = SurgeryWidget(session, astronaut, LABELS[:2], max_side=48)
    assert [m["name"] for m in w.methods] == method_names(tower)
    assert all(m["title"] == METHODS[m["name"]].title for m in w.methods)
    values = {m["name"]: m["value"] for m in w.methods}
    assert values["legrad"] == values["grad_eclip"] == "relevance" and values["surgery"] == "similarity"
    with pytest.raises(traitlets.TraitError, match="read-only"):
        w.methods = []
    w.close()


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_each_method_and_its_comparison_are_dense_maps(tower, request, astronaut):
    session = request.getfixturevalue(f"{tower}_session")
    w = SurgeryWidget(session, astronaut, LABELS, max_side=48, selected=1)
    names = method_names(tower)
    for k, method in enumerate(names):
        compare = names[(k + 3) % len(names)]
        w.method, w.compare = method, compare
        assert w.error == "" and (w.result.method, w.compare_result.method) == (method, compare)
        for sent, result, name in ((w.maps, w.result, method), (w.compare_maps, w.compare_result, compare)):
            expected = expected_maps(w, session, name)
            assert_maps_equal(sent, expected)
            np.testing.assert_allclose(result.tokens, expected.tokens, rtol=1e-5, atol=1e-6)
            assert w.map_scales[name] == expected.info["scale"], name
            assert len(w.cutoffs[name]) == 3
        np.testing.assert_allclose(w.probs, w.result.probs, rtol=1e-6)
    w.close()


def test_a_switch_or_side_by_side_computes_nothing(widget, monkeypatch):
    import clip_widgets.widgets.surgery as module  # noqa: PLC0415

    calls = []
    real = module.dense_maps
    monkeypatch.setattr(module, "dense_maps", lambda *a, **k: calls.append(k["method"]) or real(*a, **k))
    surgery, raw = widget.maps.copy(), widget.compare_maps.copy()
    widget.set_state({"method": "raw", "compare": "surgery"})  # the switch, as the browser sends it
    assert (widget.method, widget.compare, calls) == ("raw", "surgery", [])
    np.testing.assert_array_equal(widget.maps, raw)
    np.testing.assert_array_equal(widget.compare_maps, surgery)
    assert widget.result.method == "raw" and set(widget.map_scales) == {"raw", "surgery"}
    widget.side_by_side = True
    widget.compare = "gem"  # a new method is computed, once; the other is kept
    assert calls == ["gem"] and widget.compare_result.method == "gem"
    widget.compare = ""  # no comparison: one map stack, side by side or not
    assert widget.compare_maps is None and widget.compare_result is None and set(widget.map_scales) == {"raw"}
    widget.labels = ["cat", "dog"]  # new inputs: the shown method again, for them
    assert calls == ["gem", "raw"] and widget.maps.shape[0] == 2


def test_a_method_the_tower_cannot_run_keeps_the_last_good_one(resnet_session, astronaut, monkeypatch):
    w = SurgeryWidget(resnet_session, astronaut, ["face", "sky"], max_side=48)
    before = w.maps.copy()
    # from Python: raised, shown, the method and its maps kept
    with pytest.raises(UnsupportedModelError, match="GEM .* needs a ViT"):
        w.method = "gem"
    assert w.method == "surgery" and w.error.startswith("UnsupportedModelError: GEM")
    assert "raw, surgery, maskclip, grad_eclip, legrad" in w.error
    np.testing.assert_array_equal(w.maps, before)
    with pytest.raises(ValueError, match="unknown dense-map method 'fancy'"):
        w.compare = "fancy"
    assert w.compare == "raw"
    w.method = "legrad"  # a good value clears the error
    assert w.error == "" and w.result.method == "legrad"

    # from the browser: reported, not raised, and the kept value is sent back
    resent = []
    monkeypatch.setattr(w, "send_state", lambda key=None: resent.append(key))
    w.set_state({"compare": "sclip"})
    assert w.compare == "raw" and "SCLIP" in w.error and ["compare"] in resent
    w.set_state({"compare": "maskclip"})
    assert w.error == "" and w.compare_result.method == "maskclip"
    w.close()

    with pytest.raises(UnsupportedModelError, match="NACLIP"):  # an argument the constructor cannot use
        SurgeryWidget(resnet_session, astronaut, ["face"], method="naclip")


def test_depth_is_surgerys_own(vit_session, astronaut):
    w = SurgeryWidget(vit_session, astronaut, LABELS, max_side=48, depth=1, compare="gem")
    assert_maps_equal(w.maps, expected_maps(w, vit_session, "surgery", depth=1))
    assert_maps_equal(w.compare_maps, expected_maps(w, vit_session, "gem"))
    assert w.result.info["options"]["depth"] == 1
    w.close()
