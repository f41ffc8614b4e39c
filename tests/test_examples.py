"""Dataset examples: the streamed top-k/bottom-k tables equal a brute-force computation, broken
images are named and skipped, and an interrupted job resumes without loss or duplicates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clip_widgets import ModelSession
from clip_widgets.errors import ClipWidgetsError, LayerNotFoundError
from clip_widgets.examples import (
    ExampleStore,
    collect_examples,
    crop_around,
    crop_box,
    example_views,
    model_view,
    positions_of,
    unit_maps,
)
from clip_widgets.world import draw_scene

LAYERS = ["blocks.0", "ln_post"]


@pytest.fixture(scope="module")
def session(vit_session) -> ModelSession:
    return vit_session


@pytest.fixture(scope="module")
def folder(scene_folder):
    return scene_folder(30, "scene_07b.png", prefix="scene_")


def brute_force(session, paths, layer):
    """Per image and unit: the max and min over positions, and where, computed in one go."""
    with torch.no_grad(), session.layers.capture(layer) as out:
        session.model.visual(session.preprocess([str(p) for p in paths]))
    values, grid = positions_of(out[layer].float())
    return values.max(1), values.min(1), grid


def test_tables_equal_a_brute_force_computation(session, folder, tmp_path):
    with pytest.warns(UserWarning, match="scene_07b.png"):
        store = collect_examples(session, folder, LAYERS, tmp_path / "store", k=5, batch_size=7, progress=False)
    assert store.processed == 31
    assert [s["source"] for s in store.skipped] == [str(folder / "scene_07b.png")]
    readable = sorted(p for p in folder.iterdir() if p.name != "scene_07b.png")
    index_of = {s["source"]: i for i, s in enumerate(store.sources)}
    for layer in LAYERS:
        (high, high_at), (low, low_at), grid = brute_force(session, readable, layer)
        assert tuple(store.meta["grids"][layer]) == grid
        for unit in (0, 3, high.shape[1] - 1):
            top = store.examples(layer, unit)
            expected = torch.argsort(high[:, unit], descending=True)[:5]
            assert [e.source for e in top] == [str(readable[i]) for i in expected]
            np.testing.assert_allclose([e.value for e in top], high[expected, unit].numpy(), rtol=1e-5, atol=1e-6)
            assert [e.position for e in top] == [divmod(int(high_at[i, unit]), grid[1]) for i in expected]
            assert all(index_of[e.source] == e.index for e in top)
            bottom = store.examples(layer, unit, "bottom")
            expected_low = torch.argsort(low[:, unit])[:5]
            assert [e.source for e in bottom] == [str(readable[i]) for i in expected_low]
            # the unit's top examples excite it more than the typical image does
            assert top[-1].value >= float(high[:, unit].median())
    reopened = ExampleStore(tmp_path / "store")
    assert reopened.examples("ln_post", 2) == store.examples("ln_post", 2)
    with pytest.raises(KeyError, match="collected: blocks.0, ln_post"):
        store.examples("blocks.1", 0)


def test_an_interrupted_job_resumes_without_loss_or_duplicates(session, folder, tmp_path):
    paths = sorted(folder.glob("scene_??.png"))

    def failing(after: int):
        for i, path in enumerate(paths):
            if i == after:
                raise RuntimeError("the job was killed")
            yield path

    with pytest.raises(RuntimeError, match="killed"):
        collect_examples(session, failing(17), LAYERS, tmp_path / "resumed", k=4, batch_size=4, checkpoint_every=2,
                         progress=False)  # fmt: skip
    partial = ExampleStore(tmp_path / "resumed")
    assert partial.processed == 16  # the last complete batch before the failure
    resumed = collect_examples(session, paths, LAYERS, tmp_path / "resumed", k=4, batch_size=4, progress=False)
    whole = collect_examples(session, paths, LAYERS, tmp_path / "whole", k=4, batch_size=4, progress=False)
    assert resumed.processed == whole.processed == 30
    lines = (tmp_path / "resumed" / "sources.jsonl").read_text().splitlines()
    assert [json.loads(line)["source"] for line in lines] == [str(p) for p in paths]
    for key, array in whole.state.items():
        np.testing.assert_array_equal(resumed.state[key], array, err_msg=key)

    # Ctrl-C returns the store so far, which the next call completes
    def interrupted():
        yield from paths[:9]
        raise KeyboardInterrupt

    stopped = collect_examples(session, interrupted(), LAYERS, tmp_path / "ctrl-c", k=4, batch_size=4, progress=False)
    assert stopped.processed == 8
    finished = collect_examples(session, paths, LAYERS, tmp_path / "ctrl-c", k=4, batch_size=4, progress=False)
    for key, array in whole.state.items():
        np.testing.assert_array_equal(finished.state[key], array, err_msg=key)
    # running a finished job again changes nothing
    again = collect_examples(session, paths, LAYERS, tmp_path / "resumed", k=4, batch_size=4, progress=False)
    assert again.processed == 30


def test_examples_of_in_memory_images_need_the_images(session, tmp_path):
    scenes = [draw_scene(i).image for i in range(5)]
    store = collect_examples(session, scenes, ["blocks.0"], tmp_path / "mem", k=2, progress=False)
    example = store.examples("blocks.0", 0)[0]
    assert example.source == f"<item {example.index}>"
    with pytest.raises(ClipWidgetsError, match="pass images="):
        store.image(example)
    assert np.array_equal(np.asarray(store.image(example, scenes)), np.asarray(scenes[example.index]))


def test_bad_arguments_are_refused(session, folder, tmp_path):
    with pytest.raises(LayerNotFoundError, match="Valid names"):
        collect_examples(session, folder, ["blocks.9"], tmp_path / "x", progress=False)
    collect_examples(session, [draw_scene(0).image], ["blocks.0"], tmp_path / "y", k=2, progress=False)
    with pytest.raises(ClipWidgetsError, match="Use another directory"):
        collect_examples(session, folder, ["blocks.1"], tmp_path / "y", k=2, progress=False)


def test_model_view_and_crops(session):
    scene = draw_scene(3, size=96)
    view = model_view(session, scene.image)
    assert view.size == (32, 32)
    expected = np.asarray(scene.image.resize((32, 32), resample=3)).astype(float)  # bicubic, like the model
    assert np.abs(np.asarray(view).astype(float) - expected).mean() < 4
    store_example = type("E", (), {"grid": (4, 4), "position": (1, 2)})()
    crop = crop_around(view, store_example, scale=2.0)
    assert crop.size == (16, 16)
    np.testing.assert_array_equal(np.asarray(crop), np.asarray(view)[4:20, 12:28])


def test_example_views_are_the_examples_pixels_crops_and_heat(session, tmp_path):
    scenes = [draw_scene(i).image for i in range(8)]
    store = collect_examples(session, scenes, ["blocks.0"], tmp_path / "views", k=3, progress=False)
    for which in ("top", "bottom"):
        views = example_views(session, store, "blocks.0", 5, which=which, count=2, size=40, images=scenes)
        found = store.examples("blocks.0", 5, which)[:2]
        assert views.examples == found
        whole = [model_view(session, scenes[e.index]) for e in found]
        np.testing.assert_array_equal(views.images, np.stack([np.asarray(v) for v in whole]))
        assert views.boxes.tolist() == [list(crop_box(v.size, e)) for v, e in zip(whole, found, strict=True)]
        assert views.crops.shape == (2, 40, 40, 3) and views.crop_heat.shape == (2, 40, 40)
        left, top, right, bottom = views.boxes[0]
        crop = whole[0].crop((left, top, right, bottom)).resize((40, 40))
        np.testing.assert_array_equal(views.crops[0], np.asarray(crop))
        # the heat is 255 at the example's own extreme: the top's maximum, the bottom's minimum
        maps = unit_maps(session, "blocks.0", 5, whole)
        assert views.heat.shape == maps.shape and views.heat.dtype == np.uint8
        extreme = maps.max() if which == "top" else maps.min()
        assert np.isclose(maps[0][found[0].position], extreme, rtol=1e-4)
        assert views.heat[0][found[0].position] == 255
    empty = example_views(session, store, "blocks.0", 5, count=0)
    assert empty.examples == [] and empty.crops.shape == (0, 128, 128, 3)


def test_a_negative_unit_is_an_error_not_the_last_unit(session, tmp_path):
    store = collect_examples(session, [draw_scene(i).image for i in range(3)], ["blocks.0"], tmp_path / "s", k=2,
                             progress=False)  # fmt: skip
    units = session.layers["blocks.0"].units
    assert store.examples("blocks.0", units - 1)  # the last unit itself is fine
    for unit in (-1, units):
        with pytest.raises(IndexError, match=f"unit {unit} out of range .*valid units are 0 to {units - 1}"):
            store.examples("blocks.0", unit)


def test_what_cannot_be_read_is_skipped_and_named_and_a_strip_is_collected(session, folder, tmp_path):
    from PIL import Image

    import clip_widgets.images as images

    root = tmp_path / "mixed"
    root.mkdir()
    for name in ("a.png", "c.png"):
        (root / name).write_bytes((folder / "scene_00.png").read_bytes())
    Image.new("1", (8000, 6000)).save(root / "b_huge.png")  # 48 megapixels in a small file
    strip = Image.new("RGB", (1, 100_000), (0, 0, 255))
    strip.save(root / "d_strip.png")
    assert images.MAX_PIXELS < 48_000_000
    with pytest.warns(UserWarning, match="b_huge.png: 8000 x 6000 pixels"):
        store = collect_examples(session, root, ["blocks.0"], tmp_path / "store", k=4, batch_size=4, progress=False)
    assert store.processed == 4
    assert [(s["source"], "limit of 40 megapixels" in s["error"]) for s in store.skipped] == [
        (str(root / "b_huge.png"), True)]  # fmt: skip
    kept = sorted({e.source for unit in range(3) for e in store.examples("blocks.0", unit)})
    assert kept == [str(root / "a.png"), str(root / "c.png"), str(root / "d_strip.png")]
    (high, _), _, _ = brute_force(session, [root / "a.png", root / "c.png", root / "d_strip.png"], "blocks.0")
    np.testing.assert_allclose(store.values("blocks.0")[:, 0], high.max(0).values.numpy(), rtol=1e-5, atol=1e-6)


def test_tables_do_not_depend_on_batching_and_ties_go_to_the_earlier_image():
    from clip_widgets.examples import _Table

    rng = np.random.default_rng(0)
    values = torch.from_numpy(rng.integers(0, 3, (20, 5)).astype(np.float32))  # many exact ties
    positions = torch.from_numpy(rng.integers(0, 9, (20, 5)))
    items = torch.arange(20)
    tables = []
    for cuts in ([0, 20], [0, 3, 11, 20], [0, 7, 8, 20]):
        for largest in (True, False):
            table = _Table(5, 4, largest)
            parts = list(zip(cuts, cuts[1:], strict=False))
            for a, b in reversed(parts) if len(parts) > 2 else parts:  # out of order too
                table.merge(values[a:b], positions[a:b], items[a:b])
            tables.append((largest, table))
    for largest, table in tables:
        first = next(t for flag, t in tables if flag == largest)
        assert torch.equal(table.items, first.items) and torch.equal(table.positions, first.positions)
        for unit in range(5):  # a stable sort by value, earlier items first among equals
            order = sorted(range(20), key=lambda i, u=unit: (-values[i, u] if largest else values[i, u], i))[:4]
            assert table.items[unit].tolist() == order


def test_a_unit_flat_over_its_examples_shows_no_heat(session, folder, tmp_path, monkeypatch):
    """A ReLU unit's bottom examples are all zero: no cell is nearer the extreme than another."""
    import clip_widgets.examples as examples

    store = collect_examples(session, folder, LAYERS, tmp_path / "store", k=3, progress=False)
    monkeypatch.setattr(examples, "unit_maps", lambda s, layer, unit, images: np.zeros((len(images), 4, 4), np.float32))
    views = example_views(session, store, LAYERS[0], 0, which="bottom", count=3)
    assert views.heat.shape == (3, 4, 4) and not views.heat.any() and not views.crop_heat.any()
