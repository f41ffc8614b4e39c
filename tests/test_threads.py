"""One session, two threads: computations take turns on the session's lock, so hooks one of
them registers (an activation capture, an early stop) never fire in the other's forward pass."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch

from clip_widgets.session import ModelSession
from clip_widgets.surgery import surgery_maps
from clip_widgets.typographic import zero_shot
from clip_widgets.world import draw_scene

CLASSES = ["a red circle", "a blue star", "a green cross"]
ROUNDS = 40


@pytest.fixture(scope="module")
def session() -> ModelSession:
    # 224 px and four blocks: each forward pass is long enough for the threads to overlap
    return ModelSession.from_config("small-vit", seed=0, device="cpu")


@pytest.fixture(scope="module")
def scenes() -> list:
    return [draw_scene(i, size=96).image for i in range(3)]


def hammer(*jobs: Callable[[], None]) -> dict[str, list[str]]:
    """Run each job ROUNDS times in its own thread, all at once; what went wrong, per job."""
    failures: dict[str, list[str]] = {job.__name__: [] for job in jobs}
    start = threading.Barrier(len(jobs))

    def loop(job: Callable[[], None]) -> None:
        start.wait()
        for _ in range(ROUNDS):
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                failures[job.__name__].append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=loop, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung: a deadlock?"
    return failures


def test_an_early_stopped_capture_and_zero_shot_do_not_disturb_each_other(session, scenes):
    pixels = session.preprocess(scenes)
    with torch.no_grad():  # single-threaded references
        expected_block = session.layers.forward(pixels, "blocks.0")[0]["blocks.0"].clone()
    expected_probs = zero_shot(session, scenes, CLASSES)

    def capture_with_early_stop() -> None:
        with torch.no_grad():
            captured, output = session.layers.forward(pixels, "blocks.0")
        assert output is None  # the pass really stopped after blocks.0
        assert torch.equal(captured["blocks.0"], expected_block), "the capture saw another thread's pass"

    def classify() -> None:
        probs = zero_shot(session, scenes, CLASSES)
        np.testing.assert_allclose(probs, expected_probs, rtol=1e-5, atol=1e-6)

    failures = hammer(capture_with_early_stop, classify)
    assert failures == {"capture_with_early_stop": [], "classify": []}


def test_a_widget_style_capture_around_encode_image_and_surgery_take_turns(session, scenes):
    # the typographic lab captures a layer around encode_image; surgery runs the tower's modules
    # by hand, where a capture hook of another thread would fire and an early stop would abort it
    pixels = session.preprocess(scenes[:2])
    with session.layers.capture("blocks.2") as captured:
        expected_embedding = session.encode_image(pixels)
    expected_block = captured["blocks.2"].clone()
    expected_maps = surgery_maps(session, scenes[2], CLASSES[:2], size="input")

    def capture_around_encode() -> None:
        with session.layers.capture("blocks.2") as seen:
            embedding = session.encode_image(pixels)
        assert torch.equal(seen["blocks.2"], expected_block)
        assert torch.allclose(embedding, expected_embedding, atol=1e-6)

    def early_stops() -> None:
        with torch.no_grad():
            session.layers.forward(pixels, "blocks.0")

    def surgery() -> None:
        maps = surgery_maps(session, scenes[2], CLASSES[:2], size="input")
        np.testing.assert_allclose(maps.surgery, expected_maps.surgery, rtol=1e-5, atol=1e-6)

    failures = hammer(capture_around_encode, early_stops, surgery)
    assert failures == {"capture_around_encode": [], "early_stops": [], "surgery": []}


def test_the_registry_shares_the_sessions_reentrant_lock(session):
    assert session.layers.lock is session.lock
    with session.lock, session.lock, session.layers.capture("blocks.0"):  # re-entrant: no deadlock
        session.encode_image(torch.zeros(1, 3, *session.image_size))


def test_the_typographic_lab_stays_right_while_the_explorer_renders_in_the_background(session, scenes):
    from clip_widgets.widgets import NeuronExplorer, TypographicLab

    explorer = NeuronExplorer(session, "blocks.1", 0, steps=400, facets=1, vocabulary=[])  # renders for a while
    lab = TypographicLab(session, scenes[0], CLASSES, text="star")
    try:
        for round_, text in enumerate(["cross", "circle", "red", "blue", "green", "star"] * 3):
            lab.text = f"{text} {round_}"
            expected = zero_shot(session, [scenes[0], lab.attacked_image()], CLASSES)
            assert lab.error == "", f"round {round_}: {lab.error}"
            np.testing.assert_allclose([lab.clean_probs, lab.attacked_probs], expected, rtol=1e-5, atol=1e-6)
        assert explorer.busy, "the explorer finished too early to overlap"
    finally:
        explorer._generation += 1  # stop the render at its next step
        explorer.wait(120)
        explorer.close()
        lab.close()
