"""Record CLIP Surgery outputs of the paper's public reference implementation as a test fixture.

Usage::

    python tools/make_surgery_reference.py /path/to/CLIP_Surgery-checkout

The checkout (xmed-lab/CLIP_Surgery) is imported from the given path, never vendored. For a
small ViT (6 blocks, so the reference's last-6-block surgery applies) and a small
ModifiedResNet, this builds open_clip models with seeded random weights (batch-norm statistics
included, so no residual branch is trivially zero), rounds the weights to float16 so both
implementations see the same numbers, loads them into the reference models, runs the
reference's image encoders and its ``clip_feature_surgery``, ``get_similarity_map`` and
``similarity_map_to_points``, and writes weights, inputs and outputs to
``tests/fixtures/surgery_reference_<arch>.safetensors``. ``tests/test_surgery.py`` loads the
same weights into open_clip and checks clip_widgets' maps against these outputs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
LABELS = 5
TEXT = {"context_length": 8, "vocab_size": 64, "width": 64, "heads": 1, "layers": 1}
CONFIGS = {
    "vit": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 128, "layers": 6, "head_width": 64},
        "text_cfg": TEXT,
    },
    "resnet": {
        "embed_dim": 32,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 128, "layers": [1, 1, 1, 1], "width": 16, "head_width": 64},
        "text_cfg": TEXT,
    },
}


def randomized_state_dict(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Every floating tensor redrawn from a seeded generator, then rounded to float16."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            state[name] = tensor
            continue
        fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
        is_norm_scale = tensor.ndim == 1 and ("bn" in name or "ln" in name) and name.endswith("weight")
        if name.endswith("running_var") or is_norm_scale:
            values = rng.uniform(0.5, 1.5, tensor.shape)
        elif tensor.ndim == 1:
            values = rng.normal(0.0, 0.1, tensor.shape)
        else:
            values = rng.normal(0.0, fan_in**-0.5, tensor.shape)
        state[name] = torch.from_numpy(values).to(torch.float16).to(torch.float32)
    return state


def main(reference_root: str) -> None:
    sys.path.insert(0, str(Path(reference_root).resolve()))
    if "pkg_resources" not in sys.modules:  # the reference imports packaging through setuptools
        import types

        import packaging.version

        sys.modules["pkg_resources"] = types.SimpleNamespace(packaging=packaging)
    import clip as reference  # noqa: PLC0415  (the reference package, from the given path)
    from clip.build_model import build_model  # noqa: PLC0415

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for seed, (arch, config) in enumerate(CONFIGS.items()):
        torch.manual_seed(seed)
        model = open_clip.CLIP(**config).eval()
        state = randomized_state_dict(model, seed=100 + seed)
        size = config["vision_cfg"]["image_size"]
        generator = torch.Generator().manual_seed(200 + seed)
        pixels = torch.randn(2, 3, size, size, generator=generator)
        text = torch.nn.functional.normalize(torch.randn(LABELS, config["embed_dim"], generator=generator), dim=-1)
        empty = torch.nn.functional.normalize(torch.randn(1, config["embed_dim"], generator=generator), dim=-1)
        out_size = (size + 5, size - 3)  # non-square, not a multiple of the grid

        outputs: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            # The ResNet runs in float64: min-max normalized maps of its nearly flat random-weight
            # similarities would amplify float32 rounding past any useful tolerance. (The
            # reference's LayerNorm casts to float32, so the ViT stays in float32.)
            dtype = torch.float64 if arch == "resnet" else torch.float32
            cs_model = build_model("CS-" + arch, dict(state)).to(dtype)
            raw_model = build_model(arch, dict(state)).to(dtype)
            pixels, text, empty = pixels.to(dtype), text.to(dtype), empty.to(dtype)
            feats = cs_model.encode_image(pixels)
            feats = feats / feats.norm(dim=-1, keepdim=True)
            # the reference's feature surgery takes one image at a time
            similarity = torch.cat([reference.clip_feature_surgery(f[None], text) for f in feats])
            outputs["surgery_similarity"] = similarity
            outputs["surgery_maps"] = reference.get_similarity_map(similarity[:, 1:, :], out_size)
            single = reference.clip_feature_surgery(feats, text[:1], redundant_feats=empty)
            outputs["single_similarity"] = single
            raw = raw_model.encode_image(pixels)
            raw = raw / raw.norm(dim=-1, keepdim=True)
            outputs["raw_similarity"] = raw @ text.t()
            outputs["raw_maps"] = reference.get_similarity_map(outputs["raw_similarity"][:, 1:, :], out_size)
            for label in range(LABELS):
                points, point_labels = reference.similarity_map_to_points(similarity[0, 1:, label], out_size, t=0.8)
                outputs[f"points_{label}"] = torch.tensor(points, dtype=torch.int64).reshape(-1, 2)
                outputs[f"point_labels_{label}"] = torch.from_numpy(point_labels.astype(np.int64))

        tensors = {f"weights.{k}": v.contiguous() for k, v in state.items() if k.startswith("visual.")}
        tensors |= {"pixels": pixels, "text": text, "empty": empty}
        tensors |= {f"expected.{k}": v.contiguous() for k, v in outputs.items()}
        meta = {"config": json.dumps(config), "out_size": json.dumps(list(out_size)), "dtype": str(dtype)}
        path = FIXTURES / f"surgery_reference_{arch}.safetensors"
        save_file(
            {k: v.to(torch.float16) if k.startswith("weights.") else v for k, v in tensors.items()}, path, metadata=meta
        )
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
