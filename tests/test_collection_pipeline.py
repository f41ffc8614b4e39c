"""Pipelined collection (reader threads ahead of the model, a writer thread behind it) gives the
same stores as the sequential loop, also when killed, interrupted or fed unreadable files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clip_widgets import ModelSession
from clip_widgets.atlas import ActivationStore, collect_activations
from clip_widgets.collection import Writer, prefetched
from clip_widgets.examples import ExampleStore, collect_examples
from clip_widgets.world import draw_scene

LAYERS = ["blocks.0", "ln_post"]


@pytest.fixture(scope="module")
def session(vit_session) -> ModelSession:
    return vit_session


@pytest.fixture(scope="module")
def folder(scene_folder):
    return scene_folder(22, "05b.png")


def killed_at(paths, at: int, error: type[BaseException]):
    for i, path in enumerate(paths):
        if i == at:
            raise error("killed")
        yield path


def same_examples(a: ExampleStore, b: ExampleStore) -> None:
    assert a.processed == b.processed and a.sources == b.sources
    assert a.state.keys() == b.state.keys()
    for key, array in b.state.items():
        np.testing.assert_array_equal(a.state[key], array, err_msg=key)


def test_pipelined_examples_equal_sequential_and_resume_exactly(session, folder, tmp_path):
    paths = sorted(folder.glob("*.png"))
    with pytest.warns(UserWarning, match="05b.png"):
        sequential = collect_examples(session, folder, LAYERS, tmp_path / "seq", k=4, batch_size=4, workers=0,
                                      progress=False)  # fmt: skip
    with pytest.warns(UserWarning, match="05b.png"):
        pipelined = collect_examples(session, folder, LAYERS, tmp_path / "pipe", k=4, batch_size=4, workers=2,
                                     progress=False)  # fmt: skip
    same_examples(pipelined, sequential)
    assert [s["source"] for s in pipelined.skipped] == [str(folder / "05b.png")]

    # a source that fails: the batches before it are kept, exactly as far as the sequential loop gets
    with pytest.raises(RuntimeError, match="killed"), pytest.warns(UserWarning):
        collect_examples(session, killed_at(paths, 17, RuntimeError), LAYERS, tmp_path / "r", k=4, batch_size=4,
                         checkpoint_every=2, workers=3, progress=False)  # fmt: skip
    assert ExampleStore(tmp_path / "r").processed == 16
    resumed = collect_examples(session, paths, LAYERS, tmp_path / "r", k=4, batch_size=4, workers=2, progress=False)
    same_examples(resumed, sequential)
    lines = (tmp_path / "r" / "sources.jsonl").read_text().splitlines()
    assert [json.loads(line)["source"] for line in lines] == [str(p) for p in paths]

    # Ctrl-C from the source: the store so far, which the next call completes
    with pytest.warns(UserWarning):
        stopped = collect_examples(session, killed_at(paths, 9, KeyboardInterrupt), LAYERS, tmp_path / "c", k=4,
                                   batch_size=4, workers=2, progress=False)  # fmt: skip
    assert stopped.processed == 8
    finished = collect_examples(session, paths, LAYERS, tmp_path / "c", k=4, batch_size=4, workers=1, progress=False)
    same_examples(finished, sequential)


@pytest.mark.filterwarnings("ignore:skipping")
def test_pipelined_activations_equal_sequential_and_resume_exactly(session, folder, tmp_path):
    paths = sorted(folder.glob("??.png"))
    kwargs = {"per_image": 2, "batch_size": 4, "progress": False}
    sequential = collect_activations(session, paths, "blocks.1", tmp_path / "seq", workers=0, **kwargs)
    with pytest.raises(RuntimeError):
        collect_activations(session, killed_at(paths, 13, RuntimeError), "blocks.1", tmp_path / "r",
                            checkpoint_every=1, workers=2, **kwargs)  # fmt: skip
    assert ActivationStore(tmp_path / "r").processed == 12
    resumed = collect_activations(session, paths, "blocks.1", tmp_path / "r", workers=2, **kwargs)
    for store in (resumed, collect_activations(session, paths, "blocks.1", tmp_path / "w", workers=3, **kwargs)):
        np.testing.assert_array_equal(store.activations, sequential.activations)
        np.testing.assert_array_equal(store.origins, sequential.origins)
        assert store.sources == sequential.sources and len(store) == 2 * len(paths)


def test_in_memory_items_and_negative_workers(session, tmp_path):
    scenes = [draw_scene(i, size=40).image for i in range(7)]
    a = collect_examples(session, scenes, ["blocks.0"], tmp_path / "a", k=2, batch_size=3, workers=0, progress=False)
    b = collect_examples(session, iter(scenes), ["blocks.0"], tmp_path / "b", k=2, batch_size=3, workers=2,
                         progress=False)  # fmt: skip
    same_examples(b, a)
    assert all(s.get("in_memory") for s in b.sources)
    with pytest.raises(ValueError, match="workers"):
        collect_examples(session, scenes, ["blocks.0"], tmp_path / "c", k=2, workers=-1, progress=False)


def test_prefetching_keeps_order_and_bounds_what_is_read_ahead(session):
    drawn = []

    def batches():
        for b in range(6):
            drawn.append(b)
            yield [(b, draw_scene(b, size=32).image)]

    items = prefetched(session, batches(), workers=2)
    batch, pixels, indices, lines = next(items)
    assert indices == [0] and pixels.shape[0] == 1 and len(drawn) <= 4  # at most 2 * workers ahead
    assert [item[2] for item in items] == [[b] for b in range(1, 6)]


def test_a_failed_write_is_raised_and_later_jobs_are_dropped():
    writer, ran = Writer(), []

    def fail():
        raise OSError("disk full")

    writer.submit(lambda: ran.append(1))
    writer.submit(fail)
    writer.submit(lambda: ran.append(2))
    with pytest.raises(OSError, match="disk full"):
        writer.drain()
    writer.close()
    assert ran == [1]
