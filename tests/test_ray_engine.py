"""The Ray engine on a local cluster: the stores it writes equal the in-process engine's (the same
top-k per unit, the same activation rows, the same sources log), a killed run resumes shard by
shard with nothing lost or counted twice, and Datasets, bad items and bad engines are handled."""

from __future__ import annotations

import numpy as np
import pytest

from clip_widgets import ModelSession
from clip_widgets.atlas import collect_activations
from clip_widgets.errors import ClipWidgetsError
from clip_widgets.examples import ExampleStore, collect_examples
from clip_widgets.probe import pooled_activations
from clip_widgets.world import draw_scene

ray = pytest.importorskip("ray", reason="the Ray engine is optional: pip install 'clip_widgets[ray]'")
from clip_widgets import ray_engine  # noqa: E402 - after the skip
from clip_widgets.ray_engine import RayEngine  # noqa: E402

LAYERS = ["blocks.0", "ln_post"]
ENGINE = RayEngine(actors=1, shard_size=12)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def session(vit_session) -> ModelSession:
    return vit_session


@pytest.fixture(scope="module")
def folder(scene_folder):
    return scene_folder(40, "13b.png")


def same_examples(a: ExampleStore, b: ExampleStore) -> None:
    assert a.processed == b.processed and a.sources == b.sources
    assert a.state.keys() == b.state.keys()
    for key, array in b.state.items():
        if key.endswith("/values"):  # other batchings may round the last bit differently
            np.testing.assert_allclose(a.state[key], array, rtol=1e-5, atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(a.state[key], array, err_msg=key)


def test_examples_on_ray_equal_the_in_process_store(session, folder, tmp_path):
    local = collect_examples(session, folder, LAYERS, tmp_path / "local", k=5, batch_size=4, progress=False)
    with pytest.warns(UserWarning, match="13b.png"):
        remote = collect_examples(session, folder, LAYERS, tmp_path / "ray", k=5, batch_size=4, progress=False,
                                  engine=ENGINE)  # fmt: skip
    same_examples(remote, local)
    assert [s["source"].endswith("13b.png") for s in remote.skipped] == [True]
    assert not list((tmp_path / "ray" / "shards").iterdir())  # every shard merged and cleared


def test_activations_on_ray_equal_the_in_process_rows(session, folder, tmp_path):
    kw = dict(per_image=3, seed=4, batch_size=4, progress=False)
    local = collect_activations(session, folder, "blocks.0", tmp_path / "local", **kw)
    with pytest.warns(UserWarning, match="13b.png"):
        remote = collect_activations(session, folder, "blocks.0", tmp_path / "ray", engine=ENGINE, **kw)
    assert remote.rows == local.rows == 40 * 3
    np.testing.assert_array_equal(remote.origins, local.origins)
    np.testing.assert_allclose(remote.activations, local.activations, atol=2e-3)
    assert remote.sources == local.sources


def test_a_killed_run_resumes_by_shard_without_loss_or_duplicates(session, folder, tmp_path, monkeypatch):
    whole = collect_examples(session, folder, LAYERS, tmp_path / "whole", k=5, batch_size=4, progress=False)
    merge = ray_engine._Merger._merge
    calls = []

    def killed_on_second_shard(self, shard):
        calls.append(shard)
        if len(calls) == 2:
            raise KeyboardInterrupt
        merge(self, shard)

    monkeypatch.setattr(ray_engine._Merger, "_merge", killed_on_second_shard)
    store = tmp_path / "store"
    first = collect_examples(session, folder, LAYERS, store, k=5, batch_size=4, progress=False, engine=ENGINE)
    assert first.processed == 12  # the first shard merged and checkpointed, no more
    left = sorted(p.name for p in (store / "shards").glob("shard-*.npz"))
    assert "shard-000000000012-000000000024.npz" in left  # finished before the kill: kept

    monkeypatch.setattr(ray_engine._Merger, "_merge", merge)
    arrived = []
    add = ray_engine._Merger.add
    monkeypatch.setattr(
        ray_engine._Merger, "add", lambda self, batch: (arrived.extend(batch["index"]), add(self, batch))
    )
    with pytest.warns(UserWarning):
        resumed = collect_examples(session, folder, LAYERS, store, k=5, batch_size=4, progress=False, engine=ENGINE)
    same_examples(resumed, whole)
    reused = {i for name in left for i in range(int(name[6:18]), int(name[19:31]))}
    assert not reused & set(arrived), "a shard finished before the kill was computed again"
    assert sorted(arrived + sorted(reused)) == list(range(12, 41))  # everything after the checkpoint, once


def test_a_dataset_with_images_and_paths(session, tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in range(10):
        draw_scene(100 + i, size=48).image.save(clean / f"{i}.png")
    dataset = ray.data.read_images(str(clean), include_paths=True, mode="RGB")
    remote = collect_examples(session, dataset, LAYERS, tmp_path / "ray", k=3, batch_size=4, progress=False,
                              engine=ENGINE)  # fmt: skip
    assert remote.processed == 10 and not remote.skipped
    paths = [s["source"] for s in remote.sources]
    assert sorted(paths) == sorted(str(p) for p in clean.iterdir())
    local = collect_examples(session, paths, LAYERS, tmp_path / "local", k=3, batch_size=4, progress=False)
    same_examples(remote, local)


def test_pooled_activations_on_ray_come_back_in_order(session, folder):
    paths = sorted(p for p in folder.iterdir() if p.name != "13b.png")
    local = pooled_activations(session, [str(p) for p in paths], "blocks.0", batch_size=4, progress=False)
    remote = pooled_activations(session, paths, "blocks.0", batch_size=4, progress=False, engine=ENGINE)
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)
    with pytest.raises(ClipWidgetsError, match="13b.png"):  # a probe needs every row: nothing skipped silently
        pooled_activations(session, folder, "blocks.0", progress=False, engine=ENGINE)


def test_what_the_ray_engine_cannot_read_is_refused_clearly(session, folder, tmp_path):
    images = [draw_scene(i, size=48).image for i in range(3)]
    with pytest.raises(ClipWidgetsError, match="ray.data.Dataset.*engine='local'"):
        collect_examples(session, images, LAYERS, tmp_path / "a", engine="ray", progress=False)
    with pytest.raises(ValueError, match="'local', 'ray'"):
        collect_examples(session, folder, LAYERS, tmp_path / "b", engine="spark", progress=False)
    with pytest.raises(ClipWidgetsError, match="'image' column"):
        collect_examples(session, ray.data.from_items([{"x": 1}]), LAYERS, tmp_path / "c", engine=ENGINE,
                         progress=False)  # fmt: skip
