"""Reading models from names, configs and checkpoint files: device and dtype choice, config
helpers, and safe state-dict loading (weights-only pickles and safetensors; anything that needs a
full unpickler is refused). :class:`clip_widgets.ModelSession` is built on these."""

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
from typing import Any

import open_clip
import torch
from torch import nn

from .errors import UnsafeCheckpointError

__all__ = ["build_from_config", "check_model_name", "close_matches", "load_state_dict_file", "load_weights",
           "resolve_device", "resolve_dtype", "split_config", "tokenizer_for_config"]  # fmt: skip

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
