"""build_atlas (cached pipeline) and AtlasWidget's Python side: tiles, cells, view and selection."""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from clip_widgets import AtlasWidget, build_atlas
from clip_widgets.atlas import collect_activations
from clip_widgets.session import ModelSession
from clip_widgets.world import draw_scene

CLASSES = ["a red circle", "a blue star"]


@pytest.fixture(scope="module")
def session() -> ModelSession:
    return ModelSession.from_config("tiny-vit", seed=0, device="cpu")


@pytest.fixture(scope="module")
def atlas(session, tmp_path_factory):
    root = tmp_path_factory.mktemp("atlas")
    for i in range(24):
        draw_scene(i, size=48).image.save(root / f"{i:02d}.png")
    store = collect_activations(session, root, "blocks.0", root / "acts", per_image=4, progress=False)
    return build_atlas(session, store, sizes=(2, 4), min_count=1, classes=CLASSES, icon_steps=4, progress=False)


def sent_messages(widget):
    sent = []
    widget.send = lambda content, buffers=None: sent.append((content, buffers or []))
    return sent


def test_build_atlas_is_cached_and_consistent(session, atlas, monkeypatch):
    assert atlas.sizes == [2, 4] and atlas.layer == "blocks.0"
    assert atlas.coords.shape == (len(atlas.store), 2)
    for size in atlas.sizes:
        grid = atlas.grid(size)
        assert grid.counts.sum() == len(atlas.store)
        assert atlas.icons[size].shape == (size, size, 32, 32, 3)
        assert atlas.cells[size].shape == (size, size, 2)
        # a cell's class scores are the mean attribution of its members
        row, col = np.argwhere(grid.filled)[0]
        expected = atlas.attributions[grid.members(row, col)].mean(0)
        np.testing.assert_allclose(atlas.cells[size][row, col], expected, rtol=1e-5, atol=1e-6)

    # re-opening reads every step back from the cache: the same arrays, no new work
    def no_work(*args, **kwargs):
        raise AssertionError("re-opening a cached atlas recomputed something")

    monkeypatch.setattr("clip_widgets.atlas.whitening_matrix", no_work)
    monkeypatch.setattr("clip_widgets.featvis.render", no_work)  # icons come from their cache
    monkeypatch.setattr("clip_widgets.atlas.attribute_activations", no_work)
    monkeypatch.setattr("clip_widgets.atlas.layout", no_work)
    again = build_atlas(session, atlas.store, sizes=(2, 4), min_count=1, classes=CLASSES, icon_steps=4, progress=False)
    np.testing.assert_array_equal(again.coords, atlas.coords)
    np.testing.assert_array_equal(again.icons[4], atlas.icons[4])
    np.testing.assert_array_equal(again.attributions, atlas.attributions)
    with pytest.raises(KeyError, match="has \\[2, 4\\]"):
        atlas.grid(8)


def test_tiles_cross_as_rgba_buffers_with_the_filter_in_alpha(session, atlas):
    widget = AtlasWidget(atlas, session=session, tile_cells=2, icon_px=8)
    assert widget.levels == [2, 4] and widget.class_names == CLASSES
    sent = sent_messages(widget)
    widget._on_message(widget, {"type": "tiles", "level": 4, "tiles": [[0, 1], [1, 1]], "version": 0}, [])
    assert [(m["row"], m["col"]) for m, _ in sent] == [(0, 1), (1, 1)]
    content, (buffer,) = sent[0]
    assert content["shape"] == [16, 16, 4] and len(bytes(buffer)) == 16 * 16 * 4
    tile = np.frombuffer(bytes(buffer), np.uint8).reshape(16, 16, 4)
    filled = atlas.grid(4).filled[0:2, 2:4]
    # opaque where a cell holds activations, transparent where it is empty
    np.testing.assert_array_equal(tile[::8, ::8, 3], np.where(filled, 255, 0))

    widget.class_filter = "a blue star"
    assert widget.tile_version == 1 and widget.error == ""
    sent.clear()
    widget._on_message(widget, {"type": "tiles", "level": 4, "tiles": [[0, 1]], "version": 1}, [])
    alpha = np.frombuffer(bytes(sent[0][1][0]), np.uint8).reshape(16, 16, 4)[::8, ::8, 3]
    expected = np.where(filled, np.rint(atlas.opacity(4, "a blue star")[0:2, 2:4] * 255), 0)
    np.testing.assert_array_equal(alpha, expected)
    # a request made before the filter changed is dropped: the browser asks again
    sent.clear()
    widget._on_message(widget, {"type": "tiles", "level": 4, "tiles": [[0, 0]], "version": 0}, [])
    assert sent == []

    with pytest.raises(traitlets.TraitError, match="unknown class 'a green cat'"):
        widget.class_filter = "a green cat"
    assert "unknown class 'a green cat'" in widget.error and "a red circle" in widget.error
    assert widget.class_filter == "a blue star" and widget.tile_version == 1  # the filter is kept


def test_hovering_a_cell_sends_its_classes_count_and_patches(session, atlas):
    widget = AtlasWidget(atlas, session=session, patches=3)
    sent = sent_messages(widget)
    row, col = np.argwhere(atlas.grid(4).counts >= 3)[0]
    widget._on_message(widget, {"type": "cell", "level": 4, "row": int(row), "col": int(col)}, [])
    ((content, (buffer,)),) = sent
    assert content["count"] == atlas.grid(4).counts[row, col]
    assert [name for name, _ in content["classes"]] == sorted(CLASSES, key=lambda c: -atlas.cells[4][row, col][
        CLASSES.index(c)])  # fmt: skip
    assert content["patches"] == [3, 48, 48, 3]
    patches = np.frombuffer(bytes(buffer), np.uint8).reshape(3, 48, 48, 3)
    assert patches.std() > 5  # real image crops, not blank
    # a bad request becomes an error in the widget, and the widget keeps working
    widget._handle_custom_msg({"type": "cell", "level": 16, "row": 0, "col": 0}, [])  # as the browser sends it
    assert "no grid of size 16" in widget.error


def test_view_and_selection_are_validated_and_give_the_cell(session, atlas):
    widget = AtlasWidget(atlas, session=session)
    widget.view = {"x": 0.0, "y": 2.0, "zoom": 2.0}
    assert widget.view == {"x": 0.25, "y": 0.75, "zoom": 2.0}
    widget.zoom_to(0.5, 0.5, 1000)
    assert widget.view["zoom"] == 8.0  # 4 x (finest / coarsest)
    with pytest.raises(traitlets.TraitError, match="outside the 4 x 4 grid"):
        widget.selected = [4, 4, 0]
    with pytest.raises(traitlets.TraitError, match="no grid of size 3"):
        widget.selected = [3, 0, 0]
    assert widget.selected_direction is None and widget.selected_sources == []
    row, col = np.argwhere(atlas.grid(4).filled)[0]
    widget.selected = [4, int(row), int(col)]
    members = atlas.grid(4).members(row, col)
    np.testing.assert_array_equal(widget.selected_rows, members)
    np.testing.assert_allclose(widget.selected_direction, atlas.store.activations[members].astype(np.float32).mean(0),
                               rtol=1e-3, atol=1e-3)  # fmt: skip
    origins = atlas.store.origins[members, 0]
    assert widget.selected_sources == [atlas.store.sources[i]["source"] for i in dict.fromkeys(origins.tolist())]
    with pytest.raises(TypeError, match="unexpected keyword argument.*zoom"):
        AtlasWidget(atlas, zoom=3)


def test_every_entry_point_reports_in_the_widget_and_recovers(session, atlas, monkeypatch):
    widget = AtlasWidget(atlas, session=session, tile_cells=2, icon_px=8)
    # a refused selection names the grids; another setting leaves the error, a good selection clears it
    with pytest.raises(traitlets.TraitError, match="no grid of size 3"):
        widget.selected = [3, 0, 0]
    assert "no grid of size 3; this atlas has [2, 4]" in widget.error and widget.selected == []
    widget.icon_px = 16
    assert "no grid of size 3" in widget.error
    widget.selected = [4, 0, 0]
    assert widget.error == "" and widget.selected == [4, 0, 0]

    # Python methods: the error names the problem, and a later good call clears it
    with pytest.raises(ValueError, match="tile \\(9, 9\\) is outside grid 4"):
        widget.tile(4, 9, 9)
    assert "outside grid 4" in widget.error
    with pytest.raises(IndexError, match="outside the 4 x 4 grid"):
        widget.cell_info(4, -1, 0)  # not the last row, silently
    widget.zoom_to(0.5, 0.5, 2.0)
    assert widget.error == "" and widget.view["zoom"] == 2.0

    # the browser: a refused filter is reported, not raised, and sent back; a good one clears
    resent = []
    monkeypatch.setattr(widget, "send_state", lambda key=None: resent.append(key))
    widget.set_state({"class_filter": "a purple moon"})
    assert "unknown class 'a purple moon'; choose one of: a red circle, a blue star" in widget.error
    assert widget.class_filter == "" and ["class_filter"] in resent and widget.tile_version == 0
    widget.set_state({"class_filter": "a red circle"})
    assert widget.error == "" and widget.tile_version == 1
    # a bad request from the browser is reported without raising; good requests are answered
    sent = sent_messages(widget)
    # (each answered with its request's id; a tile that fails is answered with an error, so the browser
    # stops waiting for it and may ask again, and the tiles beside it still come)
    widget._handle_custom_msg({"type": "tiles", "id": 5, "level": 4, "tiles": [[7, 7], [0, 1]], "version": 1}, [])
    assert "outside grid 4" in widget.error
    (failed, no_buffers), (tile, _) = sent
    assert failed["type"] == "tile_error" and (failed["row"], failed["col"], failed["id"]) == (7, 7, 5)
    assert "outside grid 4" in failed["message"] and no_buffers == []
    assert tile["type"] == "tile" and (tile["row"], tile["col"], tile["id"]) == (0, 1, 5)
    sent.clear()
    widget._handle_custom_msg({"type": "tiles", "id": 6, "level": 4, "tiles": [[0, 0]], "version": 1}, [])
    assert [(content["row"], content["id"]) for content, _ in sent] == [(0, 6)]
    sent.clear()
    widget._handle_custom_msg({"type": "cell", "id": 7, "level": 4, "row": 9, "col": 0}, [])
    ((reply, _),) = sent
    assert reply["type"] == "cell_error" and reply["id"] == 7 and reply["message"] in widget.error


def test_a_tile_is_the_matching_piece_of_the_rendered_atlas(session, atlas):
    from clip_widgets.atlas_render import render_atlas

    icons = atlas.icons[4]
    native = icons.shape[2]
    widget = AtlasWidget(atlas, session=session, tile_cells=2, icon_px=native)
    tile = widget.tile(4, 1, 0)  # cells rows 2-3, cols 0-1
    whole = render_atlas(icons)  # empty cells blend to white; filled ones are the icons themselves
    piece = whole[2 * native : 4 * native, 0 : 2 * native]
    opaque = tile[..., 3] == 255
    assert opaque.any()
    np.testing.assert_array_equal(tile[..., :3][opaque], piece[opaque])
