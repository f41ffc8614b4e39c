"""NeuronExplorer.from_microscope: a built Microscope's units show their stored facets and labels at
once, with the site's dataset examples; other units are optimized as usual."""

from __future__ import annotations

import json
import shutil
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from clip_widgets.errors import ClipWidgetsError
from clip_widgets.examples import ExampleStore, example_views
from clip_widgets.microscope import build_microscope
from clip_widgets.session import ModelSession
from clip_widgets.widgets import NeuronExplorer
from clip_widgets.widgets import neuron as neuron_module
from clip_widgets.world import draw_scene

LAYER = "blocks.1"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    session = ModelSession.from_config("tiny-vit", seed=0, device="cpu")
    images = [draw_scene(k, size=64).image for k in range(12)]
    root = tmp_path_factory.mktemp("microscope")
    build_microscope(session, images, LAYER, root, max_units=3, k=3, steps=2, facets=2, progress=False)
    return session, root, json.loads((root / "microscope.json").read_text()), images


@pytest.fixture
def renders(monkeypatch):
    """The optimizations the explorer starts (each still runs, once ``gate`` is set)."""
    spied = SimpleNamespace(calls=[], gate=threading.Event())
    spied.gate.set()
    real = neuron_module.render

    def spy(session, objective, **kwargs):
        spied.calls.append(objective)
        spied.gate.wait(30)
        return real(session, objective, **kwargs)

    monkeypatch.setattr(neuron_module, "render", spy)
    return spied


def entry(manifest, unit):
    (layer,) = manifest["layers"]
    return next(e for e in layer["units"] if e["unit"] == unit)


def stored_facets(root, manifest, unit):
    return np.stack([np.asarray(Image.open(root / path).convert("RGB")) for path in entry(manifest, unit)["facets"]])


def label_of(manifest, unit):
    e = entry(manifest, unit)
    return f"{e['label']} (confidence z {e['confidence']:.2f})"


def open_site(site, root=None, session=..., **kwargs):
    """The explorer over ``site`` (or its copy at ``root``); the images again, as the site's examples
    were collected from memory."""
    built, built_root, _, images = site
    session = built if session is ... else session
    w = NeuronExplorer.from_microscope(root or built_root, session, images=images, steps=4, facets=2,
                                       example_count=3, **kwargs)  # fmt: skip
    w.wait(60)
    return w


def test_site_units_show_their_facets_and_labels_without_optimizing(site, renders):
    _, root, manifest, _ = site
    assert [e["unit"] for e in manifest["layers"][0]["units"]] == [0, 1, 2]
    w = open_site(site)
    assert (w.layer, w.unit, w.error) == (LAYER, 0, "")
    for unit in (0, 2, 1):
        w.unit = unit
        facets = stored_facets(root, manifest, unit)
        assert facets.shape[0] == 2 and facets.std() > 0  # the site's pictures, not blank
        np.testing.assert_array_equal(w.visualization, facets)
        assert w.visualization.dtype == np.uint8
        assert (w.visualization_of, w.progress, w.busy) == ([LAYER, unit], 1.0, False)
        assert manifest["layers"][0]["units"][unit]["label"]
        assert w.unit_label == label_of(manifest, unit)
    assert renders.calls == [] and w._worker is None


def test_examples_are_the_sites_store(site):
    session, root, _, images = site
    w = open_site(site, unit=2)
    views = example_views(session, ExampleStore(root / "examples"), LAYER, 2, count=3, images=images)
    assert len(views.examples) == 3
    np.testing.assert_array_equal(w.examples, views.crops)
    np.testing.assert_array_equal(w.example_image_maps, views.heat)
    assert w.example_sources == [e.source for e in views.examples]
    assert w.examples_of == [LAYER, 2]


def test_a_unit_outside_the_site_is_optimized_without_a_label(site, renders):
    _, root, manifest, _ = site
    w = open_site(site)
    w.unit = 5
    assert w.unit_label == "" and len(renders.calls) == 1
    w.wait(60)
    assert (w.visualization_of, w.busy, w.error) == ([LAYER, 5], False, "")
    assert w.visualization.shape[0] == 2
    assert not np.array_equal(w.visualization, stored_facets(root, manifest, 0))
    renders.gate.clear()  # unit 4's optimization is still running when the site's unit 0 shows
    w.unit = 4
    w.unit = 0
    renders.gate.set()
    w.wait(60)  # it stopped, and none of its frames landed over the stored facets
    np.testing.assert_array_equal(w.visualization, stored_facets(root, manifest, 0))
    assert (w.visualization_of, w.busy, w.progress) == ([LAYER, 0], False, 1.0)
    assert w.unit_label == label_of(manifest, 0) and len(renders.calls) == 2


def test_a_unit_whose_pictures_are_missing_is_optimized(site, renders, tmp_path):
    _, root, manifest, _ = site
    copy = tmp_path / "site"
    shutil.copytree(root, copy)
    (copy / entry(manifest, 1)["facets"][1]).unlink()
    w = open_site(site, copy, unit=1)
    assert len(renders.calls) == 1 and w.unit_label == label_of(manifest, 1)
    assert (w.visualization_of, w.error) == ([LAYER, 1], "")
    assert not np.array_equal(w.visualization, stored_facets(root, manifest, 1))


def test_without_a_session_it_loads_the_sites_model(site, renders):
    session, root, manifest, _ = site
    w = open_site(site, session=None)
    assert w._session is not session and w._session.name == manifest["model"] == "tiny-vit"
    np.testing.assert_array_equal(w.visualization, stored_facets(root, manifest, 0))
    assert renders.calls == []


def test_another_model_is_refused_naming_both(site, tmp_path):
    session, _, manifest, _ = site
    (tmp_path / "microscope.json").write_text(json.dumps({**manifest, "model": "world-vit"}))
    with pytest.raises(ClipWidgetsError, match="built with model 'world-vit', but the session is 'tiny-vit'"):
        NeuronExplorer.from_microscope(tmp_path, session)


def test_a_folder_without_a_manifest_says_how_to_build_one(site, tmp_path):
    session, _, _, _ = site
    with pytest.raises(FileNotFoundError, match=r"microscope\.json not found.*build_microscope"):
        NeuronExplorer.from_microscope(tmp_path, session)
