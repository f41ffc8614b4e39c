"""The CUDA paths agree with the CPU: the same embedded model, the same inputs, on both devices.

Skipped where there is no CUDA GPU (as in CI); run it on a machine with one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip_widgets import ModelSession, surgery_maps
from clip_widgets.world import CLASSES, class_prompt, draw_scene

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
SEED = 5 * 10**9


@pytest.fixture(scope="module")
def cpu() -> ModelSession:
    return ModelSession.default(device="cpu")


@pytest.fixture(scope="module")
def gpu() -> ModelSession:
    return ModelSession.default()  # the default device where there is a GPU


@pytest.fixture(scope="module")
def scenes() -> list:
    return [draw_scene(SEED + k, objects=(1, 3)).image for k in range(24)]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_the_default_device_is_the_gpu(gpu):
    assert gpu.device.type == "cuda"
    assert next(gpu.model.parameters()).is_cuda


def test_embeddings_and_zero_shot_agree(cpu, gpu, scenes):
    on_cpu = cpu.encode_image(cpu.preprocess(scenes))
    on_gpu = gpu.encode_image(gpu.preprocess(scenes)).cpu()
    assert torch.nn.functional.cosine_similarity(on_cpu, on_gpu).min() > 0.999
    text_cpu = cpu.encode_text([class_prompt(c) for c in CLASSES])
    text_gpu = gpu.encode_text([class_prompt(c) for c in CLASSES]).cpu()
    assert torch.nn.functional.cosine_similarity(text_cpu, text_gpu).min() > 0.999
    assert ((on_cpu @ text_cpu.T).argmax(-1) == (on_gpu @ text_gpu.T).argmax(-1)).float().mean() > 0.95


def test_half_precision_session_agrees(cpu, scenes):
    half = ModelSession.default(dtype=torch.float16)
    on_cpu = cpu.encode_image(cpu.preprocess(scenes))
    on_half = half.encode_image(half.preprocess(scenes)).float().cpu()
    assert torch.nn.functional.cosine_similarity(on_cpu, on_half).min() > 0.99


def test_surgery_maps_agree(cpu, gpu, scenes):
    labels = [class_prompt(c) for c in CLASSES[:6]]
    for image in scenes[:4]:
        a, b = surgery_maps(cpu, image, labels), surgery_maps(gpu, image, labels)
        assert correlation(a.surgery, b.surgery) > 0.99
        assert correlation(a.raw, b.raw) > 0.99
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-3)


def test_saliency_agrees(cpu, gpu, scenes):
    from clip_widgets.saliency import attribute

    for method in ("gradient", "integrated_gradients"):
        a = attribute(cpu, scenes[:4], class_prompt("red circle"), classes=[class_prompt(c) for c in CLASSES],
                      method=method, steps=8)  # fmt: skip
        b = attribute(gpu, scenes[:4], class_prompt("red circle"), classes=[class_prompt(c) for c in CLASSES],
                      method=method, steps=8)  # fmt: skip
        assert correlation(a.maps, b.maps) > 0.99, method


def test_feature_visualization_runs_and_scores_alike(cpu, gpu):
    from clip_widgets.featvis import evaluate, render
    from clip_widgets.featvis import objectives as obj

    result = render(gpu, obj.channel("blocks.4", [0, 1]), batch=2, steps=48, progress=False)
    assert result.images.shape == (2, 64, 64, 3) and not result.interrupted
    for unit, image in enumerate(result.images):
        on_gpu = float(evaluate(gpu, obj.channel("blocks.4", unit), image[None])[0])
        on_cpu = float(evaluate(cpu, obj.channel("blocks.4", unit), image[None])[0])
        assert on_gpu == pytest.approx(on_cpu, rel=1e-2, abs=1e-2)
        noise = evaluate(gpu, obj.channel("blocks.4", unit), torch.rand(8, 3, 64, 64))
        assert on_gpu > float(noise.max())


def test_atlas_collection_and_attribution_agree(cpu, gpu, scenes, tmp_path):
    from clip_widgets.atlas import attribute_activations, collect_activations

    for k, image in enumerate(scenes[:8]):
        image.save(tmp_path / f"{k}.png")
    stores = {
        name: collect_activations(session, sorted(tmp_path.glob("*.png")), "blocks.3", tmp_path / name, per_image=8,
                                  progress=False)
        for session, name in ((cpu, "cpu"), (gpu, "gpu"))
    }  # fmt: skip
    np.testing.assert_array_equal(stores["cpu"].origins, stores["gpu"].origins)
    np.testing.assert_allclose(stores["cpu"].activations, stores["gpu"].activations, atol=0.02, rtol=0.02)
    prompts = [class_prompt(c) for c in CLASSES[:4]]
    a = attribute_activations(cpu, stores["cpu"], prompts, progress=False)
    b = attribute_activations(gpu, stores["gpu"], prompts, progress=False)
    assert correlation(a, b) > 0.99


def test_dataset_examples_agree(cpu, gpu, scenes, tmp_path):
    from clip_widgets.examples import collect_examples

    a = collect_examples(cpu, scenes, "blocks.2", tmp_path / "cpu", k=4, progress=False)
    b = collect_examples(gpu, scenes, "blocks.2", tmp_path / "gpu", k=4, progress=False)
    for unit in (0, 5, 17):
        top_a = [e.index for e in a.examples("blocks.2", unit)]
        top_b = [e.index for e in b.examples("blocks.2", unit)]
        assert top_a[0] == top_b[0] and len(set(top_a) & set(top_b)) >= 3


def test_training_steps_on_the_gpu_resume_on_the_cpu(tmp_path):
    from clip_widgets.train_world import main

    out = tmp_path / "run"
    common = ["--out", str(out), "--batch-size", "16", "--workers", "2", "--eval-every", "1000",
              "--eval-scenes", "30", "--export-scenes", "30"]  # fmt: skip
    main([*common, "--steps", "3", "--device", "cuda"])
    main([*common, "--steps", "5", "--device", "cpu", "--export", str(tmp_path / "export")])
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 5
    assert ModelSession.load(tmp_path / "export", device="cuda").device.type == "cuda"
