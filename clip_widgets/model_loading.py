"""Reading models from names, configs and checkpoint files: device and dtype choice, config
helpers, safe state-dict loading (weights-only pickles and safetensors; anything that needs a
full unpickler is refused), and the :class:`ModelParts` each source gives.
:class:`clip_widgets.ModelSession`'s constructors are built on these."""

from __future__ import annotations

import copy
import difflib
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import open_clip
import torch
from torch import nn

from .errors import UnsafeCheckpointError
from .testing import TINY_CONFIGS

__all__ = ["ModelParts", "build_from_config", "check_model_name", "checkpoint_parts", "close_matches", "config_parts",
           "load_state_dict_file", "load_weights", "pretrained_parts", "resolve_device", "resolve_dtype",
           "split_config", "tokenizer_for_config"]  # fmt: skip

HUB_SCHEMAS = ("hf-hub:", "local-dir:")
"""Name prefixes open_clip resolves itself (a Hugging Face repository, a local directory)."""

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# ---------------------------------------------------------------------------------------------
# Device, dtype and config helpers
# ---------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """An explicit device, else CUDA if available, else MPS if available, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """float32 by default; float16 on a CPU becomes float32 with a warning."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        key = dtype.lower().removeprefix("torch.")
        if key not in _DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
        dtype = _DTYPES[key]
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float16 or bfloat16, not {dtype}")
    if dtype == torch.float16 and device.type == "cpu":
        warnings.warn("float16 is slow or missing on CPUs; using float32", UserWarning, stacklevel=3)
        return torch.float32
    return dtype


def split_config(config: dict) -> tuple[dict, dict]:
    """(model config, preprocess overrides) from a plain config or an open_clip_config.json layout."""
    config = copy.deepcopy(config)
    if "model_cfg" in config:
        return config["model_cfg"], dict(config.get("preprocess_cfg") or {})
    return config, dict(config.pop("preprocess_cfg", None) or {})


def build_from_config(model_cfg: dict) -> nn.Module:
    model_cfg = dict(model_cfg)
    text_cfg = model_cfg.get("text_cfg", {})
    custom = model_cfg.pop("custom_text", False) or "hf_model_name" in text_cfg
    if "multimodal_cfg" in model_cfg:
        return open_clip.CoCa(**model_cfg)
    return (open_clip.CustomTextCLIP if custom else open_clip.CLIP)(**model_cfg)


def tokenizer_for_config(model_cfg: dict):
    """The open_clip tokenizer a config's text tower expects, with the config's context length."""
    text_cfg = model_cfg.get("text_cfg", {})
    context_length = text_cfg.get("context_length", open_clip.tokenizer.DEFAULT_CONTEXT_LENGTH)
    kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
    hf_name = text_cfg.get("hf_tokenizer_name")
    if hf_name:
        return open_clip.tokenizer.HFTokenizer(
            hf_name, context_length=context_length, tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs
        )
    return open_clip.tokenizer.SimpleTokenizer(context_length=context_length, **kwargs)


def close_matches(name: str, choices: Sequence[str], n: int = 5) -> list[str]:
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def check_model_name(name: str) -> None:
    models = open_clip.list_models()
    if name in models:
        return
    close = close_matches(name, models)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    raise ValueError(f"unknown model name {name!r}.{hint} See open_clip.list_models() for all {len(models)}.")


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a weights-only torch pickle, on the CPU.

    A pickle that needs more than plain tensors and containers is refused with
    :class:`UnsafeCheckpointError` (unpickling it could run arbitrary code).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as e:  # safetensors raises its own error type for damaged headers
            raise ValueError(f"cannot read safetensors file {path}: {e}") from e
    else:
        if not _looks_like_torch_file(path):
            raise ValueError(f"{path} is not a PyTorch checkpoint or safetensors file")
        if _is_torchscript(path):
            raise ValueError(
                f"{path} is a TorchScript archive, not a state dict; for OpenAI's original files use "
                "ModelSession.from_pretrained(name, 'openai'), or save model.state_dict() from it yourself"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                f"refusing to load {path}: it is not a plain weights file and unpickling it could run "
                f"arbitrary code ({_unpickling_reason(e)}). Re-save only the state dict "
                "(torch.save(model.state_dict(), ...)) or convert it to .safetensors."
            ) from e
        except Exception as e:  # a damaged archive or pickle
            raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e
    if isinstance(state, nn.Module):  # cannot happen with weights_only, kept for clarity
        raise UnsafeCheckpointError(f"refusing to load {path}: it holds a pickled module, not a state dict")
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        cleaned[key] = value
    return cleaned


def _looks_like_torch_file(path: Path) -> bool:
    """A torch zip archive or a legacy pickle (protocol 2+), as opposed to unrelated bytes."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _unpickling_reason(error: Exception) -> str:
    text = str(error)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return f"it references {found.group(1)}, which is not a tensor or plain container"
    found = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return found.group(1).strip() if found else type(error).__name__


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Any) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:5])})")
        raise ValueError(
            f"checkpoint {path} does not match the model config: {'; '.join(parts)} keys. "
            "Is the config the one the checkpoint was trained with?"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        examples = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in bad[:3])
        raise ValueError(f"checkpoint {path} has {len(bad)} tensors of the wrong shape: {examples}")
    model.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------
# What each source gives a session
# ---------------------------------------------------------------------------------------------


class ModelParts(NamedTuple):
    """A model on the CPU in float32 and what feeding it takes; ``ModelSession(**parts._asdict())``."""

    model: nn.Module
    tokenizer: Any
    preprocess_cfg: dict
    name: str


def _cache(cache_dir: str | os.PathLike | None) -> str | None:
    return None if cache_dir is None else str(cache_dir)


def pretrained_parts(name: str, pretrained: str | None, cache_dir: str | os.PathLike | None = None) -> ModelParts:
    """An open_clip hub model: ``name`` from ``open_clip.list_models()`` and a pretrained tag
    (default ``"openai"`` when it has one, else its first), or an ``hf-hub:``/``local-dir:`` name.
    Unknown names and tags raise naming the close matches and the valid tags."""
    if name.startswith(HUB_SCHEMAS):
        tag = None
    else:
        check_model_name(name)
        tags = open_clip.list_pretrained_tags_by_model(name)
        if not tags:
            raise ValueError(
                f"{name!r} has no pretrained weights in open_clip; use "
                f"ModelSession.from_checkpoint(path, {name!r}) for your own weights"
            )
        tag = pretrained if pretrained is not None else ("openai" if "openai" in tags else tags[0])
        if tag not in tags:
            close = close_matches(tag, tags, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown pretrained tag {tag!r} for {name} (and not an existing file).{hint} "
                f"Available tags: {', '.join(tags)}"
            )
    label = f"{name}:{tag}" if tag else name
    try:
        model, _, _ = open_clip.create_model_and_transforms(
            name, pretrained=tag, device="cpu", cache_dir=_cache(cache_dir)
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"could not load pretrained weights for {label}: {e}. open_clip downloads them on first use "
            "and caches them; without network access, put the file in the cache (cache_dir) or use "
            "ModelSession.from_checkpoint with a local file."
        ) from e
    tokenizer = open_clip.get_tokenizer(name, cache_dir=_cache(cache_dir))
    return ModelParts(model, tokenizer, dict(open_clip.get_model_preprocess_cfg(model)), label)


def config_parts(config: dict | str, *, seed: int | None = 0, name: str | None = None,
                 preprocess_cfg: dict | None = None) -> ModelParts:  # fmt: skip
    """A randomly initialised model from an open_clip config dict, a name in ``TINY_CONFIGS`` or
    an architecture in ``open_clip.list_models()``; seeded without touching the global RNG."""
    label = name
    if isinstance(config, str):
        if config in TINY_CONFIGS:
            label = label or config
            config = TINY_CONFIGS[config]
        elif config in open_clip.list_models():
            label = label or f"{config} (random weights)"
            config = open_clip.get_model_config(config)
        else:
            close = close_matches(config, [*TINY_CONFIGS, *open_clip.list_models()], n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown config {config!r}.{hint} Built-in configs: {', '.join(TINY_CONFIGS)}; "
                "or any name in open_clip.list_models()"
            )
    model_cfg, pp = split_config(config)
    pp.update(preprocess_cfg or {})
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = build_from_config(model_cfg)
    return ModelParts(model, tokenizer_for_config(model_cfg), pp, label or "custom")


def checkpoint_parts(path: str | os.PathLike, config: dict | str, *, preprocess_cfg: dict | None = None) -> ModelParts:
    """Weights from a local file (see :func:`load_state_dict_file`) in the architecture ``config``:
    an open_clip model name, a name in ``TINY_CONFIGS`` or a config dict."""
    path = Path(path).expanduser()
    state = load_state_dict_file(path)
    if isinstance(config, str) and config not in TINY_CONFIGS:
        check_model_name(config)
        model = open_clip.create_model(config, pretrained=None, device="cpu", pretrained_text=False)
        pp = dict(open_clip.get_model_preprocess_cfg(model))
        tokenizer = open_clip.get_tokenizer(config)
        label = f"{config}:{path.name}"
    else:
        label = f"{config}:{path.name}" if isinstance(config, str) else path.name
        model_cfg, pp = split_config(TINY_CONFIGS[config] if isinstance(config, str) else config)
        model = build_from_config(model_cfg)
        tokenizer = tokenizer_for_config(model_cfg)
    pp.update(preprocess_cfg or {})
    load_weights(model, state, path)
    return ModelParts(model, tokenizer, pp, label)
