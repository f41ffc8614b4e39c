"""Named layers of a CLIP image tower, and a context manager that records their outputs.

Public layer names are stable across open_clip architectures:

* ViT (``open_clip.transformer.VisionTransformer``): ``conv1`` (patch embedding, ``(C, h, w)``),
  ``ln_pre``, ``blocks.0`` … ``blocks.{n-1}`` and ``ln_post`` (``(tokens, D)``, class token first),
  plus ``attn_pool`` when the tower has an attentional pooler. ``blocks.{i}.mlp`` is the hidden
  layer of block ``i``'s MLP after its GELU (``(tokens, 4 D)``), listed before ``blocks.{i}``.
* ResNet (``open_clip.modified_resnet.ModifiedResNet``): ``stem`` (output of the 3-conv stem and its
  average pool), ``layer1`` … ``layer4`` and their bottlenecks ``layer1.0`` …, and ``attnpool``.

Token outputs are always reported and captured batch-first, ``(N, tokens, D)``, also for a
transformer that runs sequence-first internally.

Hooks live on the shared model, so they would fire in any forward pass that runs while they are
registered, also one started by another thread. Every method that registers hooks therefore
holds the registry's re-entrant ``lock`` (a session's :attr:`ModelSession.lock`) for as long as
its hooks exist: computations on one model from different threads take turns.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn

from .errors import LayerNotFoundError, UnsupportedModelError

LayerKind = Literal["conv", "tokens", "vector"]


@dataclass(frozen=True)
class LayerInfo:
    """One named layer: where it lives in ``model.visual`` and what one sample's output looks like."""

    name: str
    module_path: str
    kind: LayerKind
    shape: tuple[int, ...]
    units: int


def _visual(model: nn.Module) -> nn.Module:
    return getattr(model, "visual", model)


def _to_2tuple(size) -> tuple[int, int]:
    if isinstance(size, (tuple, list)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))


def _first_tensor(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"layer produced {type(output).__name__}, not a tensor")


class LayerRegistry:
    """The named layers of a model's image tower (``model.visual``, or the tower itself).

    Output shapes come from one forward pass of a zero image at the tower's input size, run on
    first use of :attr:`names`-independent queries such as ``registry["blocks.0"].shape``.
    ``lock`` is held while hooks are registered (a new re-entrant lock when not given).
    """

    def __init__(self, model: nn.Module, lock: threading.RLock | None = None):
        self.lock = lock if lock is not None else threading.RLock()
        self.visual = _visual(model)
        self._paths: dict[str, str] = {}  # public name -> module path inside the tower
        self._sequence_first: set[str] = set()  # outputs laid out (tokens, N, D)
        self._infos: dict[str, LayerInfo] | None = None
        v = self.visual
        if isinstance(v, VisionTransformer):
            self._paths["conv1"] = "conv1"
            self._paths["ln_pre"] = "ln_pre"
            seq_first = not getattr(v.transformer, "batch_first", True)
            for i, block in enumerate(v.transformer.resblocks):
                names = [f"blocks.{i}"]
                if isinstance(getattr(getattr(block, "mlp", None), "gelu", None), nn.Module):
                    # the MLP's hidden units after the nonlinearity: a block's natural "neurons";
                    # listed first because they run before the block's output
                    names.insert(0, f"blocks.{i}.mlp")
                    self._paths[names[0]] = f"transformer.resblocks.{i}.mlp.gelu"
                self._paths[names[-1]] = f"transformer.resblocks.{i}"
                if seq_first:
                    self._sequence_first.update(names)
            if getattr(v, "attn_pool", None) is not None:
                self._paths["attn_pool"] = "attn_pool"
            self._paths["ln_post"] = "ln_post"
            self.architecture = "vit"
        elif isinstance(v, ModifiedResNet):
            self._paths["stem"] = "avgpool"  # the last op of ModifiedResNet.stem()
            for stage in ("layer1", "layer2", "layer3", "layer4"):
                self._paths[stage] = stage
                for i in range(len(getattr(v, stage))):
                    self._paths[f"{stage}.{i}"] = f"{stage}.{i}"
            if getattr(v, "attnpool", None) is not None:
                self._paths["attnpool"] = "attnpool"
            self.architecture = "resnet"
        else:
            raise UnsupportedModelError(
                f"no layer registry for image towers of type {type(v).__name__}; "
                "supported: open_clip VisionTransformer and ModifiedResNet"
            )
        self._finished = self._finish_order()  # where forward() may stop; the names never change

    # -- lookup --------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        """Public layer names, in forward order (sub-blocks after their stage)."""
        return list(self._paths)

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def __iter__(self) -> Iterator[LayerInfo]:
        infos = self._ensure_infos()
        return iter([infos[n] for n in self._paths])

    def __len__(self) -> int:
        return len(self._paths)

    def _check(self, name: str) -> None:
        if name in self._paths:
            return
        close = difflib.get_close_matches(str(name), self.names, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise LayerNotFoundError(
            f"no layer named {name!r} in this {self.architecture} image tower.{hint} "
            f"Valid names: {', '.join(self.names)}"
        )

    def __getitem__(self, name: str) -> LayerInfo:
        self._check(name)
        return self._ensure_infos()[name]

    def module(self, name: str) -> nn.Module:
        """The ``nn.Module`` behind a public layer name."""
        self._check(name)
        return self.visual.get_submodule(self._paths[name])

    def __repr__(self) -> str:
        return f"LayerRegistry({self.architecture}, {len(self)} layers: {', '.join(self.names)})"

    # -- shapes --------------------------------------------------------------------------------

    def _input_size(self) -> tuple[int, int]:
        size = getattr(self.visual, "image_size", None)
        if size is None:
            size = getattr(self.visual, "preprocess_cfg", {}).get("size", 224)
        return _to_2tuple(size)

    def _ensure_infos(self) -> dict[str, LayerInfo]:
        if self._infos is not None:
            return self._infos
        try:
            param = next(self.visual.parameters())
            device, dtype = param.device, param.dtype
        except StopIteration:
            device, dtype = torch.device("cpu"), torch.float32
        h, w = self._input_size()
        dummy = torch.zeros(1, 3, h, w, device=device, dtype=dtype)
        with self.lock:  # the mode switch must not leak into another thread's pass
            was_training = self.visual.training
            self.visual.eval()
            try:
                with torch.no_grad(), self.capture(*self._paths) as out:
                    self.visual(dummy)
            finally:
                self.visual.train(was_training)
        infos = {}
        for name, path in self._paths.items():
            if name not in out:
                raise UnsupportedModelError(f"layer {name!r} ({path}) did not run in a forward pass")
            shape = tuple(out[name].shape[1:])
            kind: LayerKind = "conv" if len(shape) == 3 else "tokens" if len(shape) == 2 else "vector"
            units = shape[0] if kind == "conv" else shape[-1]
            infos[name] = LayerInfo(name=name, module_path=path, kind=kind, shape=shape, units=int(units))
        self._infos = infos
        return infos

    # -- capture -------------------------------------------------------------------------------

    @contextmanager
    def capture(self, *names: str, detach: bool = True) -> Iterator[dict[str, torch.Tensor]]:
        """Record the outputs of ``names`` during every forward pass inside the ``with`` block.

        Yields a dict filled as the layers run (a later forward overwrites an earlier one). Token
        outputs are batch-first ``(N, tokens, D)``. ``detach=False`` keeps the autograd graph, for
        gradients with respect to a layer's output. Hooks are removed on exit, exception or not.
        The registry's ``lock`` is held for the whole block, so no other thread's pass sees them.
        """
        for name in names:  # validate everything before touching the model
            self._check(name)
        store: dict[str, torch.Tensor] = {}
        handles = []

        def make_hook(name: str):
            seq_first = name in self._sequence_first

            def hook(_module, _inputs, output):
                t = _first_tensor(output)
                if seq_first and t.ndim == 3:
                    t = t.transpose(0, 1)
                store[name] = t.detach() if detach else t

            return hook

        with self.lock:
            try:
                for name in dict.fromkeys(names):
                    module = self.visual.get_submodule(self._paths[name])
                    handles.append(module.register_forward_hook(make_hook(name)))
                yield store
            finally:
                for handle in handles:
                    handle.remove()

    @contextmanager
    def replace(self, name: str, value: torch.Tensor) -> Iterator[None]:
        """Make layer ``name`` output ``value`` (batch-first, laid out as :meth:`capture` records
        it) in every forward pass inside the ``with`` block, whatever its input: an intervention,
        e.g. for path attributions. The hook is removed on exit, exception or not."""
        self._check(name)
        seq_first = name in self._sequence_first

        def hook(_module, _inputs, output):
            new = value.transpose(0, 1) if seq_first and value.ndim == 3 else value
            if tuple(new.shape) != tuple(_first_tensor(output).shape):
                raise ValueError(f"{name} outputs {tuple(_first_tensor(output).shape)}, not {tuple(new.shape)}")
            return new if isinstance(output, torch.Tensor) else (new, *output[1:])

        with self.lock:
            handle = self.visual.get_submodule(self._paths[name]).register_forward_hook(hook)
            try:
                yield
            finally:
                handle.remove()

    def _finish_order(self) -> list[str]:
        """Names in the order their modules finish: a ResNet stage after its bottlenecks (which
        :attr:`names` lists after it), so stopping at the last to finish has every hook fired."""
        if self.architecture != "resnet":
            return self.names
        stages = [name for name in self.names if "." not in name]
        return [n for stage in stages for n in (*(m for m in self.names if m.startswith(f"{stage}.")), stage)]

    def forward(
        self, pixels: torch.Tensor, *names: str, detach: bool = True, need_output: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Run the tower on normalized ``pixels`` and return ``(outputs of names, tower output)``.

        Unless ``need_output``, the pass stops once the deepest of ``names`` has run (the tower
        output is then ``None``), so early layers cost only the blocks before them.
        """
        deepest = max(names, key=self._finished.index) if names and not need_output else None
        with self.capture(*names, detach=detach) as captured:  # holds the lock, also for the stop hook
            stop = None
            if deepest is not None:
                # registered after the capture hooks on the same module, so it runs after they record
                stop = self.module(deepest).register_forward_hook(_raise_stop)
            try:
                output = self.visual(pixels)
            except _StopForward:
                output = None
            finally:
                if stop is not None:
                    stop.remove()
        if isinstance(output, tuple):  # towers that also return tokens
            output = output[0]
        return {name: captured[name] for name in names}, output


class _StopForward(Exception):
    """Raised by a hook once every requested layer has run, to skip the rest of the tower."""


def _raise_stop(*_) -> None:
    raise _StopForward
