"""A loaded CLIP model with everything needed to feed it: device, dtype, preprocessing, tokenizer.

:class:`ModelSession` is the object every widget takes. It knows the model's *own* input size and
normalization (from open_clip's preprocess config, never ImageNet's by assumption), encodes images
and prompts, caches text embeddings and exposes the image tower's named layers.

Threads: one session may serve several widgets, some of which compute in background threads.
Every path that runs the model or reads activations holds the session's re-entrant
:attr:`ModelSession.lock`, so two computations never interleave and hooks registered by one
(an activation capture, an early stop) never fire in the other's forward pass.

Precision: ``dtype`` defaults to float32. float16 and bfloat16 are honoured on CUDA (and MPS); on
a CPU float16 is replaced by float32 with a warning (many CPU kernels lack half support and are
slow), while bfloat16 is kept.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from open_clip.transformer import VisionTransformer
from torch import nn

from .images import load_image, transform_image
from .layers import LayerRegistry
from .model_loading import (
    HUB_SCHEMAS,
    checkpoint_parts,
    config_parts,
    load_state_dict_file,
    pretrained_parts,
    resolve_device,
    resolve_dtype,
)
from .testing import TINY_CONFIGS

DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a close-up photo of the {}.",
    "a blurry photo of a {}.",
    "a drawing of a {}.",
    "a painting of the {}.",
    "a low resolution picture of a {}.",
    "a bright image showing a {}.",
    "a cropped view of the {}.",
)
"""Generic prompt templates for prompt ensembling; each has one ``{}`` for the label."""

_TEXT_BATCH = 1024  # token sequences per text-tower call; bounds memory for huge label sets
EMBEDDED_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_MODEL = "world-vit"
"""The embedded model: trained on the shapes world of :mod:`clip_widgets.world` and CIFAR-10
photos by ``python -m clip_widgets.train_world``; it ships with the package and needs no network."""
_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


# ---------------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------------


class ModelSession:
    """A CLIP model in eval mode on a device, with its preprocessing, tokenizer and a text cache."""

    def __init__(
        self,
        model: nn.Module,
        *,
        tokenizer,
        preprocess_cfg: dict,
        name: str = "custom",
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        text_cache_size: int = 4096,
    ):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.name = name
        self.metrics: dict[str, Any] = {}  # evaluation figures an embedded model ships with
        self.tokenizer = tokenizer
        self.lock = threading.RLock()
        """Held by every computation on the model (encoding, hooks, layer captures); hold it too
        (``with session.lock:``) around your own code that calls the model or registers hooks,
        and do not wait on another thread's work on this session while holding it."""

        visual = getattr(self.model, "visual", None)
        cfg = merge_preprocess_dict(PreprocessCfg(), dict(preprocess_cfg or {}))
        size = getattr(visual, "image_size", None) or cfg["size"]
        size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
        self.image_size: tuple[int, int] = (int(size[0]), int(size[-1]))
        cfg["size"] = self.image_size
        self.preprocess_cfg: dict = cfg
        self.mean: tuple[float, float, float] = tuple(float(m) for m in _three(cfg["mean"]))
        self.std: tuple[float, float, float] = tuple(float(s) for s in _three(cfg["std"]))
        if visual is not None and not getattr(visual, "preprocess_cfg", None):
            open_clip.model.set_model_preprocess_cfg(self.model, dict(cfg))  # so other tools agree
        self._transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False)

        self.is_vit = isinstance(visual, VisionTransformer)
        self.is_resnet = isinstance(visual, ModifiedResNet)
        self._layers: LayerRegistry | None = None

        self._text_cache: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._text_cache_size = int(text_cache_size)
        self._hits = 0
        self._misses = 0

    def __getstate__(self) -> dict:
        # what another process needs to rebuild the session (a Ray actor's model copy): not the
        # lock, the hooks registry or the text cache, which are made anew there
        state = self.__dict__.copy()
        state.update(lock=None, _layers=None, _text_cache=OrderedDict(), _hits=0, _misses=0)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()

    # -- constructors --------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        name: str,
        pretrained: str | None = None,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> ModelSession:
        """An open_clip hub model (``name`` from ``open_clip.list_models()`` with a pretrained tag).

        ``pretrained`` is a tag from ``open_clip.list_pretrained_tags_by_model(name)`` (default:
        ``"openai"`` when available, else the first listed tag) or a local checkpoint file. Weights
        are fetched and cached by open_clip (``cache_dir`` overrides its cache location).
        ``"hf-hub:org/repo"`` and ``"local-dir:/path"`` names are passed to open_clip as they are.
        """
        if pretrained is not None and Path(os.fspath(pretrained)).expanduser().is_file():
            return cls.from_checkpoint(pretrained, name, device=device, dtype=dtype)
        device_ = resolve_device(device)  # before the download: a bad device fails fast
        return cls(**pretrained_parts(name, pretrained, cache_dir)._asdict(), device=device_, dtype=dtype)

    @classmethod
    def from_config(
        cls,
        config: dict | str,
        *,
        seed: int | None = 0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        name: str | None = None,
        preprocess_cfg: dict | None = None,
    ) -> ModelSession:
        """A randomly initialised model from an open_clip config dict, a name in ``TINY_CONFIGS``,
        or an architecture name from ``open_clip.list_models()`` (e.g. ``"ViT-B-16"``: its shapes and
        speed, without weights).

        The config is what ``open_clip.CLIP(**config)`` takes; it may also carry a ``preprocess_cfg``
        entry (or be an ``open_clip_config.json`` layout with ``model_cfg``/``preprocess_cfg``) to set
        the normalization. Initialisation is seeded without touching the global RNG state.
        """
        parts = config_parts(config, seed=seed, name=name, preprocess_cfg=preprocess_cfg)
        return cls(**parts._asdict(), device=device, dtype=dtype)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        config: dict | str,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        preprocess_cfg: dict | None = None,
    ) -> ModelSession:
        """Weights from a local file into the architecture ``config`` (an open_clip model name or dict).

        ``.safetensors`` files are read with safetensors; ``.pt``/``.pth``/``.bin`` with
        ``torch.load(weights_only=True)``, refusing anything that needs a full pickle. State dicts
        nested under ``"state_dict"`` or ``"model"`` and ``module.`` prefixes are handled.
        """
        parts = checkpoint_parts(path, config, preprocess_cfg=preprocess_cfg)
        return cls(**parts._asdict(), device=device, dtype=dtype)

    @classmethod
    def embedded_models(cls) -> list[str]:
        """Names of the models that ship inside the package."""
        return sorted(p.name for p in EMBEDDED_DIR.glob("*") if (p / "open_clip_config.json").is_file())

    @classmethod
    def from_embedded(
        cls,
        name: str = DEFAULT_MODEL,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
    ) -> ModelSession:
        """A model that ships inside the package (see :meth:`embedded_models`), offline; or any
        directory laid out the same way (``open_clip_config.json`` beside
        ``open_clip_model.safetensors``, as ``train_world --export`` writes), by its path."""
        directory = EMBEDDED_DIR / name
        if not (directory / "open_clip_config.json").is_file() and Path(name).expanduser().is_dir():
            directory = Path(name).expanduser().resolve()  # a relative path means the working directory's
        config_path = directory / "open_clip_config.json"
        if not config_path.is_file():
            available = ", ".join(cls.embedded_models()) or "none"
            raise ValueError(f"no embedded model or export directory {name!r}; embedded models: {available}")
        config = json.loads(config_path.read_text())
        session = cls.from_checkpoint(directory / "open_clip_model.safetensors", config, device=device, dtype=dtype)
        session.name = name
        session.metrics = dict(config.get("metrics", {}))
        return session

    @classmethod
    def default(cls, **kw: Any) -> ModelSession:
        """The embedded default model (:data:`DEFAULT_MODEL`)."""
        return cls.from_embedded(DEFAULT_MODEL, **kw)

    @classmethod
    def load(cls, spec: str | os.PathLike, **kw: Any) -> ModelSession:
        """One entry point: ``"world-vit"`` (an embedded model), ``"tiny-vit"`` (a built-in config),
        ``"ViT-B-32:openai"`` or ``"ViT-B-32"``
        with ``pretrained=...`` (a hub model), ``"hf-hub:org/repo"``, an export directory (relative
        or absolute), or a checkpoint file path (then ``config=`` is required)."""
        spec_str = os.fspath(spec)
        if (EMBEDDED_DIR / spec_str / "open_clip_config.json").is_file():
            return cls.from_embedded(spec_str, **kw)
        if (Path(spec_str).expanduser() / "open_clip_config.json").is_file():
            return cls.from_embedded(spec_str, **kw)  # an export directory, relative or absolute
        if spec_str in TINY_CONFIGS:
            return cls.from_config(spec_str, **kw)
        if spec_str.startswith(HUB_SCHEMAS):
            return cls.from_pretrained(spec_str, **kw)
        if Path(spec_str).expanduser().is_file() or spec_str.endswith(_CHECKPOINT_SUFFIXES):
            config = kw.pop("config", None)
            if config is None:
                raise ValueError(f"loading the checkpoint {spec_str} needs config= (a model name or dict)")
            return cls.from_checkpoint(spec_str, config, **kw)
        if ":" in spec_str and "pretrained" not in kw:
            model_name, tag = spec_str.split(":", 1)
            return cls.from_pretrained(model_name, tag, **kw)
        return cls.from_pretrained(spec_str, **kw)

    # -- images --------------------------------------------------------------------------------

    def preprocess(self, images: Any) -> torch.Tensor:
        """Pixels ``(N, 3, H, W)`` on the session's device and dtype, resized and center-cropped the
        model's way and normalized with its own mean/std. ``images``: one image or a list of them
        (anything :func:`clip_widgets.images.load_image` accepts; a 4-D array is a batch). Memory
        stays bounded for extreme aspect ratios (see :func:`clip_widgets.images.transform_image`)."""
        if isinstance(images, (list, tuple)) or getattr(images, "ndim", None) == 4:
            items = list(images)
        else:
            items = [images]
        if not items:
            raise ValueError("no images given")
        pixels = torch.stack([transform_image(self._transform, load_image(item)) for item in items])
        return pixels.to(device=self.device, dtype=self.dtype)

    def encode_image(self, pixels: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Image embeddings ``(N, D)`` in float32 (L2-normalized unless ``normalize=False``)."""
        if pixels.ndim == 3:
            pixels = pixels.unsqueeze(0)
        with self.lock, torch.no_grad():
            features = self.model.encode_image(pixels.to(device=self.device, dtype=self.dtype))
        features = features.float()
        return F.normalize(features, dim=-1) if normalize else features

    # -- text ----------------------------------------------------------------------------------

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        with self.lock, torch.no_grad():
            for start in range(0, len(texts), _TEXT_BATCH):
                tokens = self.tokenizer(texts[start : start + _TEXT_BATCH]).to(self.device)
                chunks.append(self.model.encode_text(tokens).float())
        return F.normalize(torch.cat(chunks), dim=-1)

    def encode_text(self, prompts: Sequence[str], templates: Sequence[str] | None = None) -> torch.Tensor:
        """Unit-norm float32 text embeddings ``(len(prompts), D)`` on the session's device.

        With ``templates`` (each containing ``"{}"``), a prompt's embedding is the mean of its
        normalized per-template embeddings, re-normalized. Results are cached (LRU) per prompt and
        template tuple; only uncached prompts run through the text tower.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        key_templates = None
        if templates is not None:
            if isinstance(templates, str):
                templates = [templates]
            key_templates = tuple(templates)
            if not key_templates:
                raise ValueError("templates is empty; pass None to use the prompts as they are")
            bad = [t for t in key_templates if "{}" not in t]
            if bad:
                raise ValueError(f"every template needs a '{{}}' placeholder for the prompt; not: {bad}")
        if not prompts:
            return torch.empty(0, self.embed_dim, device=self.device)

        with self.lock:  # the cache is shared by every thread using the session
            results: dict[str, torch.Tensor] = {}
            todo: dict[str, None] = {}  # ordered set of uncached prompts
            for prompt in prompts:
                key = (prompt, key_templates)
                if key in self._text_cache:
                    self._text_cache.move_to_end(key)
                    results[prompt] = self._text_cache[key]
                    self._hits += 1
                elif prompt in results or prompt in todo:
                    self._hits += 1  # a repeat inside this call is computed once
                else:
                    todo[prompt] = None
                    self._misses += 1

            if todo:
                todo_list = list(todo)
                if key_templates is None:
                    fresh = self._encode_texts(todo_list)
                else:
                    texts = [t.replace("{}", p) for p in todo_list for t in key_templates]
                    per_template = self._encode_texts(texts).reshape(len(todo_list), len(key_templates), -1)
                    fresh = F.normalize(per_template.mean(dim=1), dim=-1)
                for prompt, embedding in zip(todo_list, fresh, strict=True):
                    results[prompt] = embedding
                    self._remember((prompt, key_templates), embedding)
            return torch.stack([results[p] for p in prompts])

    def _remember(self, key: tuple, embedding: torch.Tensor) -> None:
        if self._text_cache_size <= 0:
            return
        self._text_cache[key] = embedding
        self._text_cache.move_to_end(key)
        while len(self._text_cache) > self._text_cache_size:
            self._text_cache.popitem(last=False)

    def text_cache_info(self) -> dict[str, int]:
        """Prompt-level cache statistics: ``hits``, ``misses``, ``size`` and ``maxsize``."""
        return {
            "hits": self._hits,
            "misses": self._misses,
            "size": len(self._text_cache),
            "maxsize": self._text_cache_size,
        }

    def clear_text_cache(self) -> None:
        """Drop cached text embeddings and reset the counters."""
        with self.lock:
            self._text_cache.clear()
            self._hits = self._misses = 0

    # -- introspection -------------------------------------------------------------------------

    @property
    def embed_dim(self) -> int:
        """Width of the joint embedding space."""
        out = getattr(getattr(self.model, "visual", None), "output_dim", None)
        if out is None:
            out = self._encode_texts([""]).shape[-1]
        return int(out)

    @property
    def logit_scale(self) -> float:
        """The model's learned temperature, ``exp(logit_scale)``: a zero-shot logit is this times
        a cosine similarity. 100 (CLIP's cap) for models without one."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if scale is not None else 100.0

    @property
    def layers(self) -> LayerRegistry:
        """Named layers of the image tower (built on first use)."""
        if self._layers is None:
            with self.lock:  # built once, also when two threads ask at the same time
                if self._layers is None:
                    self._layers = LayerRegistry(self.model, lock=self.lock)  # hooks take turns with encoding
        return self._layers

    @property
    def architecture(self) -> str:
        visual = getattr(self.model, "visual", None)
        if self.is_vit:
            return "ViT"
        if self.is_resnet:
            return "ResNet"
        return type(visual).__name__ if visual is not None else type(self.model).__name__

    def __repr__(self) -> str:
        h, w = self.image_size
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"ModelSession(name={self.name!r}, architecture={self.architecture}, device={self.device}, "
            f"dtype={dtype}, image_size={h}x{w})"
        )


def _three(values) -> tuple:
    values = tuple(values) if isinstance(values, (tuple, list)) else (values,)
    return values * 3 if len(values) == 1 else values


__all__ = ["DEFAULT_TEMPLATES", "ModelSession", "load_state_dict_file", "resolve_device", "resolve_dtype"]
