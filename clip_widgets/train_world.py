"""Train the embedded default model: a small open_clip CLIP on the shapes world (+ CIFAR-10 photos).

    python -m clip_widgets.train_world --out runs/world --steps 3000 [--cifar ../shared/data/cifar10-train.tar.gz]
        [--arch vit|resnet] [--device cuda|cpu] [--workers N]

Contrastive training (symmetric InfoNCE) on scenes drawn on the fly from
:mod:`clip_widgets.world`, each batch's scenes fixed by the step number, so a run is seeded and
a resumed run sees exactly the batches it would have seen. With ``--cifar``, a quarter of each
batch is CIFAR-10 training photos captioned "a photo of a <class>"; the last 500 photos of
each class are held out for evaluation. A checkpoint (model, optimizer, step) is written every
``--save-every`` steps and on Ctrl-C or SIGTERM; run the same command again to resume. ``--export`` writes
the float16 safetensors and config that ship in ``clip_widgets/models/``. It trains on the GPU
when there is one; scenes are drawn by ``--workers`` processes, each drawing every n-th batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .train_losses import PROMPT_SETS, adversarial_pixels, clip_loss, prompt_loss
from .world import CLASSES, class_prompt, draw_scene
from .world_batches import CIFAR_CLASSES, PREPROCESS, Batches, WorldMix, load_cifar, to_pixels

__all__ = ["ARCHITECTURES", "Batches", "WorldMix", "adversarial_pixels", "build_parser", "clip_loss", "distill_loss",
           "evaluate", "export", "load_teacher", "main", "preprocess_cfg"]  # fmt: skip

WORLD_CONFIG = {
    "embed_dim": 128,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "patch_size": 8, "width": 128, "layers": 6, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 3, "layers": 4},
}
"""The embedded model: a 6-block ViT at 64 px (patch 8, an 8 x 8 grid) and a 4-block text tower."""
WORLD_RN_CONFIG = {
    "embed_dim": 128,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 128, "layers": [2, 2, 2, 2], "width": 16, "head_width": 32},
    "text_cfg": WORLD_CONFIG["text_cfg"],
}
"""Its ModifiedResNet twin: two bottlenecks per stage, at 128 px (scenes drawn at 64 px and
scaled up), so the last stage is a 4 x 4 map, not 2 x 2, for Surgery and atlases."""
ARCHITECTURES = {"vit": WORLD_CONFIG, "resnet": WORLD_RN_CONFIG}
EVAL_SEED_BASE = 10**9  # evaluation scenes come from seeds training never uses


def preprocess_cfg(model_cfg: dict) -> dict:
    """The preprocessing an exported model ships with: :data:`PREPROCESS` at its input size."""
    return {**PREPROCESS, "size": model_cfg["vision_cfg"]["image_size"]}


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer, *, scenes: int = 600, cifar_test=None) -> dict[str, float]:
    """Zero-shot accuracy on held-out single-object scenes over the 30 classes (and over colour
    and shape alone, read off the same prediction), and on held-out CIFAR-10 photos."""
    model.eval()
    device = next(model.parameters()).device
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    text = F.normalize(model.encode_text(tokenizer([class_prompt(c) for c in CLASSES]).to(device)), dim=-1)
    images, truth = [], []
    for k in range(scenes):
        rng = np.random.default_rng(EVAL_SEED_BASE + k)
        target = CLASSES[k % len(CLASSES)]
        colour, shape = target.split()
        images.append(np.asarray(draw_scene(rng, spec=[(colour, shape)], word_probability=0.0).image))
        truth.append(target)
    predicted = []
    for chunk in range(0, scenes, 200):
        features = F.normalize(model.encode_image(to_pixels(images[chunk : chunk + 200], size).to(device)), dim=-1)
        predicted += [CLASSES[i] for i in (features @ text.T).argmax(-1).tolist()]
    pairs = [(p.split(), t.split()) for p, t in zip(predicted, truth, strict=True)]
    result = {
        "class_accuracy": float(np.mean([p == t for p, t in pairs])),
        "colour_accuracy": float(np.mean([p[0] == t[0] for p, t in pairs])),
        "shape_accuracy": float(np.mean([p[1] == t[1] for p, t in pairs])),
    }
    if cifar_test is not None:
        x, y = cifar_test
        prompts = tokenizer([f"a photo of a {c}" for c in CIFAR_CLASSES]).to(device)
        labels = F.normalize(model.encode_text(prompts), dim=-1)
        hits = 0
        for chunk in range(0, len(x), 500):
            features = F.normalize(model.encode_image(to_pixels(x[chunk : chunk + 500], size).to(device)), dim=-1)
            hits += int(((features @ labels.T).argmax(-1).cpu() == torch.from_numpy(y[chunk : chunk + 500])).sum())
        result["cifar_accuracy"] = hits / len(x)
    model.train()
    return result


def export(model: torch.nn.Module, directory: Path, metrics: dict | None = None, model_cfg: dict | None = None) -> None:
    """float16 safetensors + open_clip_config.json (model_cfg + preprocess_cfg), loadable by ModelSession."""
    from safetensors.torch import save_file  # noqa: PLC0415

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, directory / "open_clip_model.safetensors")
    model_cfg = model_cfg or WORLD_CONFIG
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg(model_cfg)}
    if metrics:
        config["metrics"] = metrics
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_teacher(directory: Path, student: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The exported model in ``directory``, frozen on ``device``; its text tower and logit scale
    are copied into ``student`` and frozen there, so the student's image tower learns into the
    teacher's embedding space and is read with the teacher's words."""
    from safetensors.torch import load_file  # noqa: PLC0415

    config = json.loads((directory / "open_clip_config.json").read_text())["model_cfg"]
    teacher = open_clip.CLIP(**config)
    teacher.load_state_dict({k: v.float() for k, v in load_file(directory / "open_clip_model.safetensors").items()})
    teacher.eval().requires_grad_(False).to(device)
    text_state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("visual.")}
    missing = student.load_state_dict(text_state, strict=False)
    if missing.unexpected_keys:
        raise ValueError(f"{directory}: its text tower does not fit the student's ({missing.unexpected_keys[:3]})")
    for name, parameter in student.named_parameters():
        if not name.startswith("visual."):
            parameter.requires_grad_(False)
    return teacher


def distill_loss(image_features: torch.Tensor, teacher: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """1 - cosine between the student's image embeddings and the teacher's on the same images, at
    the teacher's input size (the scenes are drawn at 64 px; bilinear scaling, as ``to_pixels``)."""
    size = teacher.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    with torch.no_grad():
        if pixels.shape[-1] != size:
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
        target = F.normalize(teacher.encode_image(pixels), dim=-1)
    return (1 - (F.normalize(image_features, dim=-1) * target).sum(-1)).mean()


def _start_worker(_worker_id: int) -> None:
    # Ctrl-C and `pkill` reach the data workers too; they must outlive them until the main process
    # has finished its step and saved, then they are shut down with the loader.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)  # many workers share the cores; drawing is single-threaded anyway


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (also checked against every stage of :mod:`train_recipe`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints, log)")
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="vit",
                        help="image tower: the ViT that ships as world-vit, or its ModifiedResNet twin")  # fmt: skip
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cifar", type=Path, default=None, help="cifar10-train.tar.gz to mix real photos in")
    parser.add_argument(
        "--varied",
        type=float,
        default=0.0,
        help="share of scenes drawn in the varied style (other backgrounds, sizes, camera)",
    )
    parser.add_argument(
        "--text-scenes",
        type=float,
        default=0.0,
        help="share of each batch that shows only writing, captioned with what it names",
    )
    parser.add_argument(
        "--read",
        type=float,
        default=0.0,
        help="share of varied scenes with a readable word whose caption names what the word names",
    )
    parser.add_argument(
        "--nonce",
        type=float,
        default=0.0,
        help="share of words in varied scenes that are made-up strings the caption leaves out",
    )
    parser.add_argument(
        "--word-twins",
        type=float,
        default=0.0,
        help="share of varied twins that differ only in the written word (shape name or made-up)",
    )
    parser.add_argument(
        "--photos", type=float, default=0.25, help="share of each batch that is CIFAR-10 photos (with --cifar)"
    )
    parser.add_argument(
        "--adversarial",
        type=float,
        default=0.0,
        metavar="EPSILON",
        help="train on images perturbed within this L-inf radius (0..1 pixel units, e.g. 0.01)",
    )
    parser.add_argument(
        "--clean-writing",
        action="store_true",
        help="with --adversarial, leave scenes with writing unattacked, so the model keeps reading",
    )
    parser.add_argument("--prompt-loss", type=float, default=0.0, metavar="WEIGHT",
                        help="add this weight of zero-shot cross-entropy over the class prompts, for images "
                             "captioned with one (train_losses.prompt_loss)")  # fmt: skip
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="an export directory (e.g. clip_widgets/models/world-rn) whose image embeddings the "
        "image tower learns to match; its text tower and logit scale are copied in and frozen",
    )
    parser.add_argument(
        "--distill",
        type=float,
        default=5.0,
        metavar="WEIGHT",
        help="with --teacher, the weight of 1 - cos(image embedding, teacher's)",
    )
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-scenes", type=int, default=600, help="held-out scenes per periodic evaluation")
    parser.add_argument("--export-scenes", type=int, default=1500, help="held-out scenes for the shipped metrics")
    parser.add_argument("--export", type=Path, default=None, help="write the shipped weights here at the end")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes drawing scenes (default: one per spare core, at most 15)")  # fmt: skip
    parser.add_argument("--init", type=Path, default=None,
                        help="start a new run from these weights (an export directory or its safetensors), "
                             "e.g. clip_widgets/models/world-vit to train the shipped model further")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mix = WorldMix(varied=args.varied, text=args.text_scenes, photos=args.photos, read=args.read,
                       nonce=args.nonce, word_twins=args.word_twins)  # fmt: skip
    except ValueError as error:
        parser.error(str(error))  # before any model or data is loaded
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    workers = args.workers or max(1, min(15, (os.cpu_count() or 2) - 1))
    torch.backends.cuda.matmul.allow_tf32 = True  # float32 weights, TF32 matrix products on a GPU

    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model_cfg = ARCHITECTURES[args.arch]
    image_size = model_cfg["vision_cfg"]["image_size"]
    model = open_clip.CLIP(**model_cfg)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=model_cfg["text_cfg"]["context_length"])
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.98), eps=1e-6)  # fmt: skip
    checkpoint_path = args.out / "checkpoint.pt"
    step = 0
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, weights_only=True, map_location="cpu")
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = int(checkpoint["step"])
        print(f"resuming {checkpoint_path} at step {step}")
    elif args.init is not None:
        from safetensors.torch import load_file  # noqa: PLC0415

        weights = args.init / "open_clip_model.safetensors" if args.init.is_dir() else args.init
        model.load_state_dict({k: v.float() for k, v in load_file(weights).items()})
        print(f"starting from the weights in {weights}")

    teacher = None
    if args.teacher is not None:
        teacher = load_teacher(args.teacher, model, device)
        print(f"distilling from {args.teacher} (its text tower and logit scale, frozen)")
    model.to(device)
    # The optimizer's moments follow the parameters (a checkpoint written on a GPU resumes on a CPU too).
    for state in optimizer.state.values():
        for key, value in state.items():
            if torch.is_tensor(value) and key != "step":
                state[key] = value.to(device)
    print(f"training on {device} with {workers} data worker(s)")

    cifar = cifar_test = None
    if args.cifar is not None:
        x_train, y_train, x_test, y_test = load_cifar(args.cifar, args.out)
        cifar, cifar_test = (x_train, y_train), (x_test, y_test)

    def save() -> None:
        tmp = checkpoint_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
        tmp.replace(checkpoint_path)  # atomic: a kill mid-save leaves the previous checkpoint

    def lr_at(k: int) -> float:
        if k < args.warmup:
            return args.lr * (k + 1) / args.warmup
        progress = (k - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    loader = torch.utils.data.DataLoader(
        Batches(step, args.batch_size, args.seed, cifar, image_size, mix),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4,
        worker_init_fn=_start_worker,
        pin_memory=device.type == "cuda",
    )
    # Ctrl-C and `kill` stop the run between steps, so the checkpoint matches the log; a second
    # Ctrl-C stops at once. (Background jobs ignore SIGINT; SIGTERM still saves.)
    stop_requested: list[int] = []

    def stop(signum, frame):
        if stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    previous_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    log = (args.out / "log.jsonl").open("a")
    model.train()
    progress = tqdm(total=args.steps, initial=step, desc="training", unit="step")
    started = time.perf_counter()
    frozen_prompts = None
    try:
        for pixels, captions, written in loader:
            if step >= args.steps:
                break
            if stop_requested:
                raise KeyboardInterrupt
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            pixels = pixels.to(device, non_blocking=True)
            with torch.set_grad_enabled(teacher is None):  # a taught student's text tower is frozen
                text_features = model.encode_text(tokenizer(captions).to(device, non_blocking=True))
            if args.adversarial:
                clean = written if args.clean_writing else None
                pixels = adversarial_pixels(model, pixels, text_features.detach(), captions, args.adversarial, clean)
            image_features = model.encode_image(pixels)
            loss = clip_loss(image_features, text_features, model.logit_scale.exp(), captions)
            if args.prompt_loss:
                if teacher is None:
                    prompts = [model.encode_text(tokenizer(list(p)).to(device)) for p in PROMPT_SETS]
                else:  # a frozen text tower gives the same prompt embeddings every step: once
                    if frozen_prompts is None:
                        with torch.no_grad():
                            frozen_prompts = [model.encode_text(tokenizer(list(p)).to(device)) for p in PROMPT_SETS]
                    prompts = frozen_prompts
                loss = loss + args.prompt_loss * prompt_loss(image_features, prompts, model.logit_scale.exp(), captions)
            if teacher is not None:
                loss = loss + args.distill * distill_loss(image_features, teacher, pixels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
            record = {"step": step, "loss": round(loss.item(), 4), "lr": lr_at(step - 1),
                      "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            if step % args.save_every == 0 or step == args.steps:
                save()
            if step % args.eval_every == 0 or step == args.steps:
                record |= evaluate(model, tokenizer, scenes=args.eval_scenes, cifar_test=cifar_test)
                progress.write(json.dumps(record))
            log.write(json.dumps(record) + "\n")
            log.flush()
    except KeyboardInterrupt:
        progress.write(f"interrupted at step {step}; checkpoint saved, run the same command to resume")
    finally:
        save()
        progress.close()
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    if args.export is not None and step >= args.steps:
        metrics = evaluate(model, tokenizer, scenes=args.export_scenes, cifar_test=cifar_test)
        export(model, args.export, {**metrics, "steps": step}, model_cfg)
        print(json.dumps(metrics))


if __name__ == "__main__":
    main()
