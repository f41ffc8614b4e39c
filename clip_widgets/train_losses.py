"""The losses the embedded models train with: contrastive, adversarial and zero-shot prompts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .world import CLASSES, class_prompt
from .world_batches import CIFAR_CLASSES, PHOTO_CAPTION, PREPROCESS

__all__ = ["PROMPT_SETS", "adversarial_pixels", "clip_loss", "prompt_loss", "prompt_targets"]


def clip_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor, captions: list[str]
) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same caption counts as a match: a batch holds
    many "a photo of a cat" and "a red circle", and pushing those apart would teach noise."""
    logits = logit_scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    ids = {caption: k for k, caption in enumerate(dict.fromkeys(captions))}
    caption_ids = torch.tensor([ids[c] for c in captions], device=logits.device)
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def adversarial_pixels(
    model: torch.nn.Module,
    pixels: torch.Tensor,
    text_features: torch.Tensor,
    captions: list[str],
    epsilon: float,
    clean: torch.Tensor | None = None,
) -> torch.Tensor:
    """The batch moved within an L-infinity ball of ``epsilon`` (in 0..1 pixel units) to raise the
    loss: one signed-gradient step from a random start (Wong et al., 2020, "Fast is better than
    free"). Training on it makes the image tower's gradients follow what people see, so that
    images made by gradient ascent on the model show shapes and colours, not pixel patterns.

    The CIFAR-10 photos in the batch stay clean: at 2.5/255 their accuracy fell from 0.75 to 0.39
    in 400 steps, while the drawn scenes, which the pictures are about, kept 1.00. ``clean``
    (bool, one per image) leaves more images alone, e.g. those with writing (attacking every
    scene cut the reading ResNet's flips to a written shape from 0.30 to 0.12; with the writing
    left clean they still fell, to 0.18 after 300 steps)."""
    radius = epsilon / PREPROCESS["std"][0]  # the same ball in normalized units
    scene = torch.tensor([not c.startswith(PHOTO_CAPTION) for c in captions], device=pixels.device)
    if clean is not None:
        scene &= ~clean.to(pixels.device)
    delta = (torch.rand_like(pixels) * 2 - 1) * radius * scene.view(-1, 1, 1, 1)
    delta.requires_grad_(True)
    loss = clip_loss(model.encode_image(pixels + delta), text_features, model.logit_scale.exp().detach(), captions)
    (gradient,) = torch.autograd.grad(loss, delta)
    step = (delta + 1.25 * radius * gradient.sign()).clamp(-radius, radius) * scene.view(-1, 1, 1, 1)
    return pixels + step.detach()


PROMPT_SETS: tuple[tuple[str, ...], ...] = (
    tuple(class_prompt(c) for c in CLASSES),
    tuple(f"{PHOTO_CAPTION} {c}" for c in CIFAR_CLASSES),
)
"""The zero-shot prompt sets the models are read with: the 30 shape classes and CIFAR-10's."""
_SIZES = ("large", "small")


def _prompt_index() -> dict[str, tuple[int, int]]:
    index = {}
    for s, prompts in enumerate(PROMPT_SETS):
        index |= {prompt: (s, k) for k, prompt in enumerate(prompts)}
    for k, label in enumerate(CLASSES):  # "a large red circle" is a red circle too
        index |= {class_prompt(f"{size} {label}"): (0, k) for size in _SIZES}
    return index


_PROMPT_INDEX = _prompt_index()


def prompt_targets(captions: list[str]) -> list[tuple[int, int] | None]:
    """For each caption, (prompt set, class) when it names exactly one class of a prompt set
    (a lone shape, read or drawn; a photo), else None (crowds, words, signs)."""
    return [_PROMPT_INDEX.get(caption) for caption in captions]


def prompt_loss(
    image_features: torch.Tensor, prompt_features: list[torch.Tensor], logit_scale: torch.Tensor, captions: list[str]
) -> torch.Tensor:
    """Cross-entropy of the zero-shot classification over each prompt set (``prompt_features[s]``,
    one row per prompt of :data:`PROMPT_SETS` ``[s]``), for the images whose caption is one of its
    prompts. The contrastive loss only compares an image with the captions that happen to share
    its batch; this compares a lone red circle with every other class, the way it is read. With a
    made-up word written beside it, every class but "a red circle" is a negative: text the caption
    leaves out must not pull the image towards "cross" or "star"."""
    targets = prompt_targets(captions)
    losses = []
    for s, features in enumerate(prompt_features):
        rows = [i for i, t in enumerate(targets) if t is not None and t[0] == s]
        if not rows:
            continue
        labels = torch.tensor([targets[i][1] for i in rows], device=image_features.device)
        logits = logit_scale * F.normalize(image_features[rows], dim=-1) @ F.normalize(features, dim=-1).T
        losses.append(F.cross_entropy(logits, labels, reduction="sum"))
    if not losses:
        return image_features.sum() * 0.0
    return torch.stack(losses).sum() / sum(t is not None for t in targets)
