"""ModelSession: device and dtype choice, preprocessing, text encoding and its cache, loading."""

from __future__ import annotations

import time

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.constants import IMAGENET_MEAN, IMAGENET_STD, OPENAI_DATASET_MEAN
from PIL import Image
from safetensors.torch import save_file

from clip_widgets.errors import UnsafeCheckpointError
from clip_widgets.model_loading import tokenizer_for_config
from clip_widgets.session import DEFAULT_TEMPLATES, ModelSession, resolve_device, resolve_dtype
from clip_widgets.testing import TINY_VIT, tiny_config


class NotJustWeights:
    """Anything a weights-only unpickler must refuse."""

    def __init__(self):
        self.payload = torch.zeros(2)


def _fresh(name: str = "tiny-vit", **kw) -> ModelSession:
    return ModelSession.from_config(name, seed=0, device="cpu", **kw)


def _pixels(session: ModelSession, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, *session.image_size, generator=torch.Generator().manual_seed(1))


# -- device, dtype, attributes -----------------------------------------------------------------


def test_device_choice(monkeypatch, vit_session):
    assert vit_session.device == torch.device("cpu")
    assert next(vit_session.model.parameters()).device.type == "cpu"
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == torch.device("cuda")


def test_dtype_choice():
    cpu = torch.device("cpu")
    assert resolve_dtype(None, cpu) == torch.float32
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    assert resolve_dtype(torch.float16, torch.device("cuda")) == torch.float16
    with pytest.warns(UserWarning, match="float32"):
        assert resolve_dtype("float16", cpu) == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("int8", cpu)


def test_bfloat16_session_on_cpu(astronaut):
    session = _fresh(dtype="bfloat16")
    assert session.dtype == torch.bfloat16
    assert next(session.model.parameters()).dtype == torch.bfloat16
    pixels = session.preprocess(astronaut)
    assert pixels.dtype == torch.bfloat16
    features = session.encode_image(pixels)
    assert features.dtype == torch.float32 and features.shape == (1, 32)
    assert session.encode_text(["a cat"]).dtype == torch.float32


def test_attributes_and_repr(vit_session, resnet_session):
    assert vit_session.is_vit and not vit_session.is_resnet
    assert resnet_session.is_resnet and not resnet_session.is_vit
    assert vit_session.image_size == (32, 32) and resnet_session.image_size == (64, 64)
    assert not vit_session.model.training
    assert all(p.requires_grad for p in vit_session.model.parameters())
    text = repr(vit_session)
    for part in ("tiny-vit", "ViT", "cpu", "float32", "32x32"):
        assert part in text
    assert "ResNet" in repr(resnet_session)
    assert len(DEFAULT_TEMPLATES) >= 6 and all("{}" in t for t in DEFAULT_TEMPLATES)


def test_from_config_is_seeded_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = _fresh(), _fresh(), ModelSession.from_config("tiny-vit", seed=1, device="cpu")
    assert torch.equal(torch.rand(1), expected_next)
    pa, pb, pc = (s.model.visual.conv1.weight for s in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


# -- normalization and preprocessing ------------------------------------------------------------


def test_own_normalization_not_imagenet():
    default = _fresh()
    assert default.mean == pytest.approx(OPENAI_DATASET_MEAN)
    assert default.mean != pytest.approx(IMAGENET_MEAN)

    cfg = tiny_config("tiny-vit")
    cfg["preprocess_cfg"] = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    custom = ModelSession.from_config(cfg, device="cpu")
    assert custom.mean == (0.5, 0.5, 0.5) and custom.std == (0.25, 0.25, 0.25)
    assert custom.mean != pytest.approx(IMAGENET_MEAN) and custom.std != pytest.approx(IMAGENET_STD)
    # the pixels really use it: a uniform gray of 204/255 = 0.8 becomes (0.8 - 0.5) / 0.25 = 1.2
    pixels = custom.preprocess(Image.new("RGB", (50, 40), (204, 204, 204)))
    torch.testing.assert_close(pixels, torch.full_like(pixels, 1.2), rtol=0, atol=1e-5)
    # and it is recorded on the model for other tools
    assert open_clip.get_model_preprocess_cfg(custom.model)["mean"] == (0.5, 0.5, 0.5)


def test_preprocess_shape_dtype_and_crop(vit_session, resnet_session, astronaut):
    assert vit_session.preprocess(astronaut).shape == (1, 3, 32, 32)
    batch = resnet_session.preprocess([astronaut, np.asarray(astronaut), Image.new("L", (10, 20))])
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == torch.float32 and batch.device.type == "cpu"

    # a wide image: shortest side to 32, then a centre crop keeps the middle (green) third only
    wide = np.zeros((60, 180, 3), dtype=np.uint8)
    wide[:, :60, 0] = 255
    wide[:, 60:120, 1] = 255
    wide[:, 120:, 2] = 255
    pixels = vit_session.preprocess(wide)[0]
    mean = torch.tensor(vit_session.mean).view(3, 1, 1)
    std = torch.tensor(vit_session.std).view(3, 1, 1)
    rgb = pixels * std + mean
    assert rgb[1, 4:-4, 4:-4].min() > 0.95
    assert rgb[0, :, 2:-2].max() < 0.05 and rgb[2, :, 2:-2].max() < 0.05  # bicubic bleeds at the edges


def test_encode_image_unit_norm(vit_session, resnet_session):
    for session in (vit_session, resnet_session):
        features = session.encode_image(_pixels(session, 3))
        assert features.shape == (3, 32) and not features.requires_grad
        torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))
        raw = session.encode_image(_pixels(session, 3), normalize=False)
        torch.testing.assert_close(F.normalize(raw, dim=-1), features)


# -- text ---------------------------------------------------------------------------------------


def test_encode_text_shape_and_norm(vit_session):
    out = vit_session.encode_text(["a dog", "a cat", "a bird"])
    assert out.shape == (3, 32) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))
    assert vit_session.encode_text("a dog").shape == (1, 32)
    assert vit_session.encode_text([]).shape == (0, 32)


def test_template_ensemble_matches_hand_computation():
    session = _fresh()
    templates = ["a photo of a {}.", "a sketch of the {}.", "{} in the wild"]
    prompts = ["zebra", "teapot"]
    got = session.encode_text(prompts, templates=templates)

    with torch.no_grad():
        expected = []
        for prompt in prompts:
            tokens = session.tokenizer([t.format(prompt) for t in templates])
            per_template = F.normalize(session.model.encode_text(tokens), dim=-1)
            expected.append(F.normalize(per_template.mean(dim=0), dim=-1))
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-5, atol=1e-6)
    # the ensemble differs from the bare prompts
    assert not torch.allclose(got, session.encode_text(prompts), atol=1e-3)


def test_template_without_placeholder_is_rejected(vit_session):
    with pytest.raises(ValueError, match="placeholder"):
        vit_session.encode_text(["cat"], templates=["a photo of a {}.", "a photo"])


def test_text_cache_hits_and_misses():
    session = _fresh()
    prompts = ["a red car", "a blue car", "a tree"]
    first = session.encode_text(prompts)
    assert session.text_cache_info() == {"hits": 0, "misses": 3, "size": 3, "maxsize": 4096}
    second = session.encode_text(prompts)
    assert session.text_cache_info()["hits"] == 3 and session.text_cache_info()["misses"] == 3
    torch.testing.assert_close(first, second)

    calls = []
    original = session._encode_texts
    session._encode_texts = lambda texts: calls.append(list(texts)) or original(texts)
    mixed = session.encode_text(["a tree", "a house", "a red car"])
    info = session.text_cache_info()
    assert info["misses"] == 4 and info["hits"] == 5 and info["size"] == 4
    assert calls == [["a house"]]  # only the new prompt went through the text tower

    fresh = _fresh().encode_text(["a tree", "a house", "a red car"])
    torch.testing.assert_close(mixed, fresh)

    # templates are part of the key
    session.encode_text(["a tree"], templates=["{}!"])
    assert session.text_cache_info()["misses"] == 5


def test_text_cache_is_lru_bounded():
    session = ModelSession.from_config("tiny-vit", device="cpu", name="small-cache")
    session._text_cache_size = 2
    session.encode_text(["a", "b"])
    session.encode_text(["a"])  # "a" is now most recent
    session.encode_text(["c"])  # evicts "b"
    assert [k[0] for k in session._text_cache] == ["a", "c"]
    assert session.text_cache_info()["size"] == 2


# -- checkpoints --------------------------------------------------------------------------------


def _same_outputs(a: ModelSession, b: ModelSession) -> None:
    pixels = _pixels(a)
    torch.testing.assert_close(a.encode_image(pixels), b.encode_image(pixels))
    torch.testing.assert_close(a.encode_text(["a lamp", "a cup"]), b.encode_text(["a lamp", "a cup"]))


def test_checkpoint_round_trip_safetensors(tmp_path, resnet_session):
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in resnet_session.model.state_dict().items()}, str(path))
    loaded = ModelSession.from_checkpoint(path, "tiny-resnet", device="cpu")
    assert loaded.is_resnet and "weights.safetensors" in loaded.name
    _same_outputs(resnet_session, loaded)


def test_export_directory_loads_by_relative_or_absolute_path(tmp_path, monkeypatch, vit_session):
    import json

    directory = tmp_path / "runs" / "export"
    directory.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in vit_session.model.state_dict().items()},
              str(directory / "open_clip_model.safetensors"))  # fmt: skip
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_VIT}))
    monkeypatch.chdir(tmp_path)
    for spec in ("runs/export", directory):
        _same_outputs(vit_session, ModelSession.load(spec, device="cpu"))
    with pytest.raises(ValueError, match="no embedded model or export directory 'runs'"):
        ModelSession.from_embedded("runs")


def test_checkpoint_round_trip_torch_save(tmp_path, vit_session):
    path = tmp_path / "weights.pt"
    torch.save(vit_session.model.state_dict(), path)
    _same_outputs(vit_session, ModelSession.from_checkpoint(path, TINY_VIT, device="cpu"))

    nested = tmp_path / "trainer.pth"
    state = {f"module.{k}": v for k, v in vit_session.model.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": state}, nested)
    _same_outputs(vit_session, ModelSession.from_checkpoint(nested, "tiny-vit"))
    _same_outputs(vit_session, ModelSession.load(str(nested), config="tiny-vit", device="cpu"))


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "suspicious_model.pt"
    torch.save({"state_dict": NotJustWeights()}, path)
    with pytest.raises(UnsafeCheckpointError, match="suspicious_model.pt") as info:
        ModelSession.from_checkpoint(path, "tiny-vit")
    assert "arbitrary code" in str(info.value) and "NotJustWeights" in str(info.value)

    whole = tmp_path / "whole_model.pt"
    torch.save(_fresh().model, whole)  # a pickled nn.Module, not a state dict
    with pytest.raises(UnsafeCheckpointError, match="whole_model.pt.*open_clip.model.CLIP"):
        ModelSession.from_checkpoint(whole, "tiny-vit")


def test_non_checkpoint_file_is_a_plain_error(tmp_path):
    junk = tmp_path / "notes.bin"
    junk.write_bytes(b"just some text, not a checkpoint")
    with pytest.raises(ValueError, match="notes.bin is not a PyTorch checkpoint"):
        ModelSession.from_checkpoint(junk, "tiny-vit")


def test_checkpoint_key_mismatch_is_explained(tmp_path, vit_session):
    state = dict(vit_session.model.state_dict())
    state.pop("visual.proj")
    state["visual.extra_head.weight"] = torch.zeros(2)
    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(ValueError, match=r"missing \(e.g. visual.proj\).*unexpected \(e.g. visual.extra"):
        ModelSession.from_checkpoint(path, "tiny-vit")
    with pytest.raises(ValueError, match="does not match"):
        ModelSession.from_checkpoint(path, "tiny-resnet")


def test_checkpoint_with_hub_architecture_name_checks_the_name(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match="ViT-B-32"):
        ModelSession.from_checkpoint(path, "ViT-B-31")
    with pytest.raises(ValueError, match="needs config"):
        ModelSession.load(str(path))


# -- hub names ----------------------------------------------------------------------------------


def test_unknown_model_name_suggests_close_match():
    with pytest.raises(ValueError, match="unknown model name 'ViT-B-33'.*ViT-B-32"):
        ModelSession.from_pretrained("ViT-B-33", "openai")
    with pytest.raises(ValueError, match="ViT-B-32"):
        ModelSession.load("vit-b-32x:openai")


def test_unknown_pretrained_tag_lists_available_tags():
    with pytest.raises(ValueError, match="unknown pretrained tag 'openia'.*Did you mean openai.*laion2b"):
        ModelSession.from_pretrained("ViT-B-32", "openia")


def test_pretrained_download_failure_is_fast_and_clear(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="could not load pretrained weights for RN50:openai"):
        ModelSession.load("RN50:openai", cache_dir=tmp_path / "empty-cache", device="cpu")
    assert time.perf_counter() - start < 30


def test_load_dispatch(monkeypatch):
    calls = []
    monkeypatch.setattr(
        ModelSession, "from_pretrained", classmethod(lambda cls, *a, **kw: calls.append((a, kw)) or "hub")
    )
    assert ModelSession.load("ViT-B-32:laion2b_s34b_b79k") == "hub"
    assert ModelSession.load("ViT-B-32", pretrained="openai", device="cpu") == "hub"
    assert ModelSession.load("hf-hub:org/repo") == "hub"
    assert calls == [
        (("ViT-B-32", "laion2b_s34b_b79k"), {}),
        (("ViT-B-32",), {"pretrained": "openai", "device": "cpu"}),
        (("hf-hub:org/repo",), {}),
    ]
    session = ModelSession.load("tiny-resnet", device="cpu")
    assert isinstance(session, ModelSession) and session.name == "tiny-resnet"


def test_tokenizer_follows_config_context_length(vit_session):
    assert isinstance(vit_session.tokenizer, open_clip.tokenizer.SimpleTokenizer)
    assert vit_session.tokenizer(["hello"]).shape == (1, TINY_VIT["text_cfg"]["context_length"])
    assert tokenizer_for_config({"text_cfg": {}}).context_length == 77


def test_from_config_builds_any_open_clip_architecture_with_random_weights():
    session = ModelSession.from_config("RN50", device="cpu")
    assert session.name == "RN50 (random weights)"
    assert session.architecture == "ResNet" and session.image_size == (224, 224)
    with pytest.raises(ValueError, match="Did you mean.*ViT-B-16"):
        ModelSession.from_config("ViT-B-61")


def test_a_session_pickles_for_another_process(vit_session, astronaut):
    """What a Ray actor receives: the same model and preprocessing, a lock and layers of its own."""
    import pickle

    copy = pickle.loads(pickle.dumps(vit_session))
    assert copy.lock is not vit_session.lock and copy.lock.acquire(blocking=False)
    copy.lock.release()
    with torch.no_grad():
        np.testing.assert_array_equal(
            copy.encode_image(copy.preprocess(astronaut)).numpy(),
            vit_session.encode_image(vit_session.preprocess(astronaut)).numpy(),
        )
    assert copy.layers.names == vit_session.layers.names and copy.layers is not vit_session.layers
    assert copy.text_cache_info()["size"] == 0
