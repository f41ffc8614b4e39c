"""Activation atlas pipeline: collection (resumable, memory-mapped), layout and grid binning."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clip_widgets import ModelSession
from clip_widgets.atlas import ActivationStore, collect_activations
from clip_widgets.atlas_layout import bin_grid, layout, normalize_layout
from clip_widgets.errors import ClipWidgetsError
from clip_widgets.examples import positions_of
from clip_widgets.world import draw_scene


@pytest.fixture(scope="module")
def session() -> ModelSession:
    return ModelSession.from_config("tiny-vit", device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    for i in range(20):
        draw_scene(i, size=48).image.save(root / f"{i:02d}.png")
    (root / "05b.png").write_bytes(b"broken")
    return root


def test_collected_rows_are_the_activations_at_their_origins(session, folder, tmp_path):
    with pytest.warns(UserWarning, match="05b.png"):
        store = collect_activations(session, folder, "blocks.1", tmp_path / "acts", per_image=3, batch_size=6,
                                    progress=False)  # fmt: skip
    assert store.processed == 21 and len(store) == 20 * 3
    assert store.activations.dtype == np.float16 and store.activations.shape == (60, 64)
    origins = store.origins
    for row in (0, 17, 59):
        index, r, c = origins[row]
        source = store.sources[index]["source"]
        with torch.no_grad(), session.layers.capture("blocks.1") as out:
            session.model.visual(session.preprocess(source))
        values, grid = positions_of(out["blocks.1"])
        expected = values[0, r * grid[1] + c].numpy()
        np.testing.assert_allclose(store.activations[row].astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    # positions within one image are distinct
    first = origins[origins[:, 0] == origins[0, 0]]
    assert len({(r, c) for _, r, c in first}) == 3


def test_an_interrupted_collection_resumes_exactly(session, folder, tmp_path):
    paths = sorted(folder.glob("??.png"))

    def killed():
        for i, path in enumerate(paths):
            if i == 13:
                raise RuntimeError("killed")
            yield path

    with pytest.raises(RuntimeError):
        collect_activations(session, killed(), "blocks.0", tmp_path / "r", per_image=2, batch_size=4,
                            checkpoint_every=1, progress=False)  # fmt: skip
    assert ActivationStore(tmp_path / "r").processed == 12
    resumed = collect_activations(session, paths, "blocks.0", tmp_path / "r", per_image=2, batch_size=4, progress=False)
    whole = collect_activations(session, paths, "blocks.0", tmp_path / "w", per_image=2, batch_size=4, progress=False)
    np.testing.assert_array_equal(resumed.activations, whole.activations)
    np.testing.assert_array_equal(resumed.origins, whole.origins)
    assert resumed.sources == whole.sources
    with pytest.raises(ClipWidgetsError, match="Use another directory"):
        collect_activations(session, paths, "blocks.0", tmp_path / "r", per_image=1, progress=False)
    with pytest.raises(ClipWidgetsError, match="no spatial positions"):
        collect_activations(ModelSession.from_config("tiny-resnet"), paths, "attnpool", tmp_path / "x", progress=False)


def test_grid_means_and_counts_by_hand():
    coords = np.array([[0.1, 0.1], [0.2, 0.15], [0.9, 0.1], [0.99, 0.99], [1.0, 1.0]])
    acts = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [2.0, 2.0], [4.0, 0.0]], np.float16)
    grid = bin_grid(coords, acts, size=2)
    np.testing.assert_array_equal(grid.counts, [[2, 1], [0, 2]])  # row = y, col = x
    np.testing.assert_allclose(grid.means[0, 0], [2.0, 1.0])
    np.testing.assert_allclose(grid.means[1, 1], [3.0, 1.0])
    np.testing.assert_array_equal(grid.members(0, 0), [0, 1])
    sparse = bin_grid(coords, acts, size=2, min_count=2)
    np.testing.assert_array_equal(sparse.counts, [[2, 0], [0, 2]])
    assert (sparse.means[0, 1] == 0).all() and not sparse.filled[0, 1]
    chunked = bin_grid(coords, acts, size=2, chunk=2)
    np.testing.assert_allclose(chunked.means, grid.means)


def test_layout_puts_similar_activations_together():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 32))
    labels = np.repeat(np.arange(4), 60)
    data = centres[labels] + 0.15 * rng.normal(size=(240, 32))
    coords = layout(data, seed=0)
    assert coords.shape == (240, 2) and coords.min() >= 0 and coords.max() <= 1
    # neighbours in the layout share a cluster far more often than chance (1/4)
    distances = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    nearest = distances.argmin(1)
    assert (labels[nearest] == labels).mean() > 0.9

    # cells that the grid puts together hold more similar mean activations than random pairs:
    # activations along a smooth closed curve, so neighbouring cells hold neighbouring points
    t = rng.uniform(size=400)
    waves = np.concatenate([np.cos(2 * np.pi * k * t[:, None]) for k in (1, 2)] +
                           [np.sin(2 * np.pi * k * t[:, None]) for k in (1, 2)], 1)  # fmt: skip
    data = waves @ rng.normal(size=(4, 32)) + 0.05 * rng.normal(size=(400, 32))
    grid = bin_grid(layout(data, seed=0), data, size=6, min_count=3)
    filled = np.argwhere(grid.filled)
    unit = grid.means / np.maximum(np.linalg.norm(grid.means, axis=-1, keepdims=True), 1e-9)
    adjacent, random_pairs = [], []
    for r, c in filled:
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < 6 and c + dc < 6 and grid.filled[r + dr, c + dc]:
                adjacent.append(unit[r, c] @ unit[r + dr, c + dc])
    for _ in range(200):
        (r1, c1), (r2, c2) = filled[rng.integers(len(filled), size=2)]
        random_pairs.append(unit[r1, c1] @ unit[r2, c2])
    assert np.mean(adjacent) > np.mean(random_pairs) + 0.2


def test_layout_leaves_torchs_thread_count_as_it_found_it():
    # numba's OpenMP pool, which torch shares, is set to every core when UMAP runs in it
    before = torch.get_num_threads()
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            layout(np.random.default_rng(threads).normal(size=(64, 8)).astype(np.float32))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_normalize_layout_clips_outliers():
    coords = np.concatenate([np.random.default_rng(1).uniform(size=(98, 2)), [[100.0, -100.0], [-50.0, 60.0]]])
    out = normalize_layout(coords, clip=0.02)
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.ptp(out[:98], axis=0).min() > 0.8  # the bulk still spans the square


def test_uniform_layout_has_even_axes_and_keeps_their_order():
    rng = np.random.default_rng(2)
    # two tight islands far apart, as UMAP leaves them: binned linearly, most cells stay empty
    coords = np.concatenate([rng.normal(0, 0.05, (100, 2)), rng.normal(5, 0.05, (100, 2))])
    even = normalize_layout(coords, clip=0.0, uniform=1.0)
    for axis in range(2):  # by hand: each axis becomes its ranks over n - 1
        ranks = np.argsort(np.argsort(coords[:, axis], kind="stable"), kind="stable") / 199
        np.testing.assert_allclose(even[:, axis], ranks, atol=1e-6)
    linear = normalize_layout(coords, clip=0.0)
    fill = lambda c: bin_grid(c, coords, size=4).filled.mean()  # noqa: E731
    assert fill(linear) <= 2 / 16 and fill(even) >= 4 / 16
    with pytest.raises(ValueError, match="uniform"):
        normalize_layout(coords, uniform=2.0)


def test_attribution_is_gradient_times_activation(session, folder, tmp_path):
    from clip_widgets.atlas import attribute_activations

    store = collect_activations(session, sorted(folder.glob("0?.png"))[:4], "blocks.0", tmp_path / "a", per_image=2,
                                progress=False)  # fmt: skip
    prompts = ["a red circle", "a blue star", "a cat"]
    result = attribute_activations(session, store, prompts, method="gradient_x_activation", batch_size=3,
                                   progress=False)  # fmt: skip
    assert result.shape == (8, 3)
    # the same quantity one image and one class at a time, with plain autograd
    text = session.encode_text(prompts)
    scale = float(session.model.logit_scale.detach().exp())
    for row in (0, 5):
        index, r, c = store.origins[row]
        pixels = session.preprocess(store.sources[index]["source"])
        for k in range(3):
            with session.layers.capture("blocks.0", detach=False) as out:
                embedding = session.model.visual(pixels)
            logit = scale * torch.nn.functional.normalize(embedding, dim=-1)[0] @ text[k]
            (grad,) = torch.autograd.grad(logit, out["blocks.0"])
            token = 1 + r * 4 + c  # class token first, then a 4 x 4 patch grid
            expected = float((grad[0, token] * out["blocks.0"][0, token]).sum())
            assert result[row, k] == pytest.approx(expected, rel=1e-3, abs=1e-5)


def test_integrated_gradients_attribution_equals_captum(session, folder, tmp_path):
    from captum.attr import IntegratedGradients

    from clip_widgets.atlas import attribute_activations

    layer, steps = "blocks.0", 6  # blocks.1 is the last block: its patch tokens never reach the output
    store = collect_activations(session, sorted(folder.glob("0?.png"))[:3], layer, tmp_path / "a", per_image=16,
                                progress=False)  # fmt: skip
    prompts = ["a red circle", "a blue star"]
    result = attribute_activations(session, store, prompts, steps=steps, batch_size=2, progress=False)
    assert np.abs(result).max() > 0.01
    # one backward per class (the CPU default) and one batched backward give the same numbers
    for way in ("loop", "batched"):
        other = attribute_activations(session, store, prompts, steps=steps, batch_size=2, class_backward=way,
                                      progress=False)  # fmt: skip
        np.testing.assert_allclose(other, result, rtol=1e-4, atol=1e-6)
    # reference: captum's integrated gradients over the patch tokens of blocks.0, from the store's
    # mean activation, the rest of the tower run by a plain forward hook that swaps the block's output
    text = session.encode_text(prompts)
    scale = float(session.model.logit_scale.detach().exp())
    block = session.model.visual.transformer.resblocks[0]
    baseline_token = torch.from_numpy(store.activations.astype(np.float64).mean(0)).float()
    for index in range(3):
        pixels = session.preprocess(store.sources[index]["source"])
        real: dict[str, torch.Tensor] = {}
        handle = block.register_forward_hook(lambda _m, _i, out, real=real: real.setdefault("tokens", out.detach()))
        session.model.visual(pixels)
        handle.remove()
        tokens = real["tokens"]  # (1, 17, D): class token, then a 4 x 4 grid

        def logits_from_patches(patches, tokens=tokens, pixels=pixels):
            whole = torch.cat([tokens[:, :1].expand(len(patches), -1, -1), patches], 1)
            swap = block.register_forward_hook(lambda _m, _i, _out: whole)
            try:
                embedding = session.model.visual(pixels.expand(len(patches), -1, -1, -1))
            finally:
                swap.remove()
            return scale * torch.nn.functional.normalize(embedding, dim=-1) @ text.T

        patches = tokens[:, 1:]
        ig = IntegratedGradients(logits_from_patches)
        for k in range(2):
            expected = ig.attribute(patches, baselines=baseline_token.expand_as(patches), target=k, n_steps=steps,
                                    method="riemann_middle", internal_batch_size=1).sum(-1)[0]  # fmt: skip
            rows = np.flatnonzero(store.origins[:, 0] == index)
            for row in rows:
                _, r, c = store.origins[row]
                assert result[row, k] == pytest.approx(float(expected[r * 4 + c]), rel=1e-3, abs=1e-5)


def test_integrated_gradients_add_up_to_the_change_of_the_logit(session, folder, tmp_path):
    from clip_widgets.atlas import attribute_activations

    # every position of the 4 x 4 grid is kept, so an image's rows cover all it has
    store = collect_activations(session, sorted(folder.glob("1?.png"))[:2], "blocks.0", tmp_path / "a", per_image=16,
                                progress=False)  # fmt: skip
    prompts = ["a red circle", "a blue star"]
    result = attribute_activations(session, store, prompts, steps=64, progress=False)
    text = session.encode_text(prompts)
    scale = float(session.model.logit_scale.detach().exp())
    block = session.model.visual.transformer.resblocks[0]
    mean = torch.from_numpy(store.activations.astype(np.float64).mean(0)).float()

    def baseline_patches(_module, _inputs, out):
        out = out.clone()
        out[:, 1:] = mean  # every patch token at the store's mean; the class token as it is
        return out

    for index in range(2):
        pixels = session.preprocess(store.sources[index]["source"])
        with torch.no_grad():
            real = scale * torch.nn.functional.normalize(session.model.visual(pixels), dim=-1) @ text.T
            handle = block.register_forward_hook(baseline_patches)
            try:
                base = scale * torch.nn.functional.normalize(session.model.visual(pixels), dim=-1) @ text.T
            finally:
                handle.remove()
        total = result[store.origins[:, 0] == index].sum(0)
        change = (real - base)[0].numpy()
        assert np.abs(change).max() > 0.05
        np.testing.assert_allclose(total, change, rtol=0.02, atol=0.01)


def test_unknown_attribution_method_lists_the_valid_ones(session, folder, tmp_path):
    from clip_widgets.atlas import attribute_activations

    store = collect_activations(session, sorted(folder.glob("0?.png"))[:1], "blocks.0", tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match="integrated_gradients"):
        attribute_activations(session, store, ["a cat"], method="saliency", progress=False)


def test_attribution_of_in_memory_collections_needs_the_images(session, tmp_path):
    from clip_widgets.atlas import attribute_activations

    scenes = [draw_scene(i).image for i in range(3)]
    store = collect_activations(session, scenes, "blocks.0", tmp_path / "m", progress=False)
    with pytest.raises(ClipWidgetsError, match="pass images="):
        attribute_activations(session, store, ["a cat"], progress=False)
    assert attribute_activations(session, store, ["a cat"], images=scenes, progress=False).shape == (3, 1)


def test_cell_attribution_and_whitening_by_hand():
    from clip_widgets.atlas import cell_attribution, whitening_matrix

    coords = np.array([[0.1, 0.1], [0.2, 0.2], [0.9, 0.9]])
    grid = bin_grid(coords, np.zeros((3, 2), np.float32), size=2)
    attributions = np.array([[1.0, 0.0], [3.0, -2.0], [0.5, 0.5]], np.float32)
    cells = cell_attribution(grid, attributions)
    np.testing.assert_allclose(cells[0, 0], [2.0, -1.0])
    np.testing.assert_allclose(cells[1, 1], [0.5, 0.5])
    assert (cells[0, 1] == 0).all()

    data = np.random.default_rng(0).normal(size=(5000, 3)) @ np.array([[2.0, 0, 0], [0.5, 1, 0], [0, 0, 0.2]])
    inverse = whitening_matrix(data, eps=0.0, chunk=999)
    np.testing.assert_allclose(inverse, np.linalg.inv(np.cov(data.T, bias=True)), rtol=1e-3)


def test_icons_invert_cell_means_and_are_cached(session, tmp_path):
    from clip_widgets.atlas import atlas_icons
    from clip_widgets.featvis import evaluate
    from clip_widgets.featvis import objectives as obj

    rng = np.random.default_rng(0)
    means = rng.normal(size=(2, 2, 64)).astype(np.float32)
    grid = bin_grid(np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]]), means.reshape(4, 64)[:3], size=2)
    icons = atlas_icons(session, "blocks.1", grid, steps=24, chunk=2, cache=tmp_path / "icons.npy", progress=False)
    assert icons.shape == (2, 2, 32, 32, 3) and (icons[1, 1] == 0).all()  # the empty cell stays black
    # each icon scores higher on its own cell's direction than on the other cells' directions
    filled = np.argwhere(grid.filled)
    table = np.array([[evaluate(session, obj.direction_cossim("blocks.1", torch.from_numpy(grid.means[r, c])),
                                icons[r2, c2][None])[0] for (r2, c2) in filled] for (r, c) in filled])  # fmt: skip
    assert (table.argmax(1) == np.arange(len(filled))).all(), table
    # one step would give different images: equal ones came from the cache
    cached = atlas_icons(session, "blocks.1", grid, steps=1, cache=tmp_path / "icons.npy", progress=False)
    np.testing.assert_array_equal(cached, icons)
    assert (tmp_path / "icons.npy").is_file()


def test_icons_optimize_one_parameterization_per_chunk(session):
    from clip_widgets.atlas import atlas_icons
    from clip_widgets.featvis.param import PhaseImage

    means = np.random.default_rng(1).normal(size=(3, 64)).astype(np.float32)
    grid = bin_grid(np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]]), means, size=2)
    made = []

    def param(batch: int) -> PhaseImage:
        made.append(PhaseImage(batch, 32, 32, seed=0))
        made[-1].start = made[-1].phase.detach().clone()
        return made[-1]

    atlas_icons(session, "blocks.1", grid, steps=2, chunk=2, param=param, progress=False)
    assert [p.batch for p in made] == [2, 1]
    assert all(not torch.equal(p.phase, p.start) for p in made)  # each was the one optimized
    with pytest.raises(TypeError, match="function of the batch size"):
        atlas_icons(session, "blocks.1", grid, steps=2, param=PhaseImage(3, 32, 32), progress=False)


def test_class_views_render_and_tiles(tmp_path):
    from PIL import Image

    from clip_widgets.atlas import class_opacity, class_rows, render_atlas, save_tile_pyramid

    cells = np.array([[[2.0, 0.0], [1.0, -1.0]], [[-3.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(class_opacity(cells, 0, floor=0.2), [[1.0, 0.6], [0.2, 0.2]])
    attributions = np.array([[1.0, 0.5], [0.1, 0.9], [-1.0, -2.0], [3.0, 0.0]])
    np.testing.assert_array_equal(class_rows(attributions, 0), [0, 3])  # row 2 argmax is 0 but negative

    icons = np.zeros((3, 3, 4, 4, 3), np.uint8)
    icons[0, 1] = 100
    icons[2, 0] = 200
    picture = render_atlas(icons, background=255)
    assert picture.shape == (12, 12, 3)
    assert (picture[0:4, 4:8] == 100).all() and (picture[8:12, 0:4] == 200).all() and (picture[0:4, 0:4] == 255).all()
    faded = render_atlas(icons, opacity=np.full((3, 3), 0.5), background=0)
    assert (faded[0:4, 4:8] == 50).all()

    index = save_tile_pyramid({3: icons, 2: icons[:2, :2]}, tmp_path / "tiles", tile_cells=2)
    assert [level["grid"] for level in index["levels"]] == [2, 3]
    assert index["levels"][1]["tiles"] == 2 and len(list((tmp_path / "tiles" / "3").glob("*.png"))) == 4
    tile = np.asarray(Image.open(tmp_path / "tiles" / "3" / "1_0.png"))
    np.testing.assert_array_equal(tile, picture[8:12, 0:8])  # the last row of tiles is cut at the edge
    assert json.loads((tmp_path / "tiles" / "index.json").read_text()) == index
