"""Training data for the embedded models: batches of shapes-world scenes and CIFAR-10 photos.

Every batch is fixed by (seed, step), so a run is seeded and a resumed run sees exactly the
batches it would have seen. Scenes come in twins that differ in one object's shape or colour;
a :class:`WorldMix` says how many are drawn in the varied style, how many show only writing
(captioned with what it names) and how many are photos.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .world import (
    CLASSES,
    COLOURS,
    READABLE,
    SHAPES,
    WORDS,
    Scene,
    caption_for,
    class_prompt,
    draw_scene,
    draw_text_scene,
    nonce_word,
)

PREPROCESS = {"size": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bicubic",
              "resize_mode": "shortest"}  # fmt: skip
PHOTO_CAPTION = "a photo of a"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_HELD_OUT = 500  # per class, the last ones by file name


def load_cifar(path: Path, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels) as uint8 (N, 32, 32, 3), cached as .npz."""
    cache = cache_dir / "cifar10.npz"
    if cache.exists():
        data = np.load(cache)
        return data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    by_class: dict[str, list[tuple[str, np.ndarray]]] = {c: [] for c in CIFAR_CLASSES}
    with tarfile.open(path) as archive:
        for member in tqdm(archive, desc="reading CIFAR-10", unit="file"):
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[1] not in by_class:
                continue
            raw = archive.extractfile(member).read()
            by_class[parts[1]].append((parts[2], np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))))
    splits: dict[str, list] = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for label, name in enumerate(CIFAR_CLASSES):
        items = [pixels for _, pixels in sorted(by_class[name], key=lambda item: item[0])]
        splits["x_train"] += items[:-CIFAR_HELD_OUT]
        splits["y_train"] += [label] * (len(items) - CIFAR_HELD_OUT)
        splits["x_test"] += items[-CIFAR_HELD_OUT:]
        splits["y_test"] += [label] * CIFAR_HELD_OUT
    arrays = {k: np.asarray(v, dtype=np.uint8 if k.startswith("x") else np.int64) for k, v in splits.items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **arrays)
    return arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"]


def to_pixels(images: list[np.ndarray] | np.ndarray, size: int = 64) -> torch.Tensor:
    """uint8 (N, h, w, 3) to normalized float (N, 3, size, size) with the model's own mean/std."""
    x = torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(PREPROCESS["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(PREPROCESS["std"]).view(1, 3, 1, 1)
    return (x - mean) / std


READING_WORDS = (*SHAPES, *SHAPES, *SHAPES, *WORDS)
"""Words written into varied scenes: shape names (in WORDS too) four times as often as the others,
since they are what the reading lesson is about."""
OBJECT_COUNTS = (1, 2, 3)
OBJECT_COUNT_ODDS = (0.6, 0.25, 0.15)
SHAPE_EDIT_ODDS = 0.8  # a twin differs in one object's shape, else in its colour


@dataclass(frozen=True)
class WorldMix:
    """What a batch is made of, as shares of the batch (photos only when CIFAR-10 is given)."""

    varied: float = 0.0
    """Share of the twin scenes drawn in the varied style (other backgrounds, sizes, camera)."""
    text: float = 0.0
    """Share of the batch that shows only writing, captioned with what it names."""
    photos: float = 0.25
    """Share of the batch that is CIFAR-10 photos captioned "a photo of a <class>"."""
    read: float = 0.0
    """Share of varied scenes with a readable word written in whose caption names what the word
    names (:func:`reading_caption`), as web captions often describe a sign or a label rather than
    the thing it is stuck on. The rest name the objects and the word."""

    nonce: float = 0.0
    """Share of the words written into varied scenes that are made-up strings the caption leaves
    out, so that text the model cannot read does not sway it (the control for reading)."""
    word_twins: float = 0.0
    """Share of varied twins that differ only in their writing (:func:`draw_word_twins`): another
    shape's name, read by the caption, or a made-up word, left out of it."""

    def __post_init__(self) -> None:
        for field in fields(self):
            share = getattr(self, field.name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"the share {field.name}={share} must lie in [0, 1]")
        if self.photos + self.text >= 1.0:
            raise ValueError(f"photos={self.photos} and text={self.text} leave no room for scenes in a batch")

    @property
    def word_probability(self) -> float:
        """How often a varied scene has a word written in: more often when captions read them."""
        return 0.5 if self.read else 0.25


def draw_twins(
    rng: np.random.Generator,
    style: str = "plain",
    photos: np.ndarray | None = None,
    word_probability: float = 0.25,
    nonce_probability: float = 0.0,
    words: tuple[str, ...] = WORDS,
) -> tuple[Scene, Scene]:
    """Two scenes that differ in one object's shape or colour and in nothing else (same seed, so
    same background, sizes, places and word): a hard negative for each other in the batch, so the
    loss cannot be lowered by colour alone."""
    count = int(rng.choice(OBJECT_COUNTS, p=OBJECT_COUNT_ODDS))
    spec = [(str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))) for _ in range(count)]
    edited = list(spec)
    index = int(rng.integers(count))
    colour, shape = spec[index]
    if rng.random() < SHAPE_EDIT_ODDS:
        shape = str(rng.choice([s for s in SHAPES if s != shape]))
    else:
        colour = str(rng.choice([c for c in COLOURS if c != colour]))
    edited[index] = (colour, shape)
    seed = int(rng.integers(2**62))
    kw = {"style": style, "photos": photos, "word_probability": word_probability,
          "nonce_probability": nonce_probability, "words": words}  # fmt: skip
    return draw_scene(seed, spec=spec, **kw), draw_scene(seed, spec=edited, **kw)


def draw_text_twins(rng: np.random.Generator, photos: np.ndarray | None = None) -> tuple[Scene, Scene]:
    """Two text scenes alike in all but the writing (same background, sign, place, size): to
    tell them apart, a model must read."""
    first = str(rng.choice(list(READABLE))) if rng.random() < 0.6 else str(rng.choice(CLASSES))
    pool = [w for w in (list(READABLE) if first in READABLE else CLASSES) if w != first]
    second = str(rng.choice(pool))
    seed = int(rng.integers(2**62))
    return draw_text_scene(seed, text=first, photos=photos), draw_text_scene(seed, text=second, photos=photos)


def draw_word_twins(rng: np.random.Generator, photos: np.ndarray | None = None) -> tuple[list[Scene], list[str]]:
    """Two varied scenes of one lone shape, alike in all but the writing beside it: another shape's
    name, captioned as read ("a red star" for a red circle labelled "star"), or a made-up word of
    about its length, left out of the caption ("a red circle"). To tell them apart a model must
    read the word, not merely notice that something is written."""
    colour, shape = str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES))
    name = str(rng.choice([s for s in SHAPES if s != shape]))
    made_up = nonce_word(rng)
    while abs(len(made_up) - len(name)) > 1:
        made_up = nonce_word(rng)
    seed = int(rng.integers(2**62))
    kw = {"spec": [(colour, shape)], "style": "varied", "photos": photos}
    read, unread = draw_scene(seed, word=name, **kw), draw_scene(seed, word=made_up, **kw)
    return [read, unread], [reading_caption(read), caption_for(unread.objects)]


def reading_caption(scene: Scene) -> str:
    """What a caption that reads the scene's word says: the thing the word names ("a cat"); for a
    shape's name written beside a lone shape, that shape in the object's colour ("a red star"
    for a red circle labelled "star"), as a labelled thing is captioned by its label."""
    if scene.word in SHAPES and len(scene.objects) == 1:
        return class_prompt(f"{scene.objects[0].colour} {scene.word}")
    return READABLE[scene.word]


class Batches(torch.utils.data.IterableDataset):
    """Batches for steps ``start``.. as (pixels, captions); batch ``k`` depends only on (seed, k).
    Scenes come in twins (:func:`draw_twins`); ``mix`` sets the shares of varied scenes, writing
    and (with ``cifar``) photos, which also serve as backgrounds of varied scenes."""

    def __init__(
        self,
        start: int,
        batch_size: int,
        seed: int,
        cifar: tuple[np.ndarray, np.ndarray] | None,
        size: int = 64,
        mix: WorldMix = WorldMix(),
    ):
        self.start, self.batch_size, self.seed, self.cifar, self.size = start, batch_size, seed, cifar, size
        self.mix = mix

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[str]]]:
        # With several loader workers, worker i draws steps start+i, start+i+n, ...; the loader reads
        # them round-robin, so the order of batches (and a resumed run) does not depend on n.
        worker = torch.utils.data.get_worker_info()
        offset, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        step = self.start + offset
        while True:
            yield self.batch(step)
            step += stride

    def batch(self, step: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        """Batch ``step``: pixels, captions, and which images have writing in them (bool)."""
        rng = np.random.default_rng([self.seed, step])
        photos = round(self.batch_size * self.mix.photos) if self.cifar is not None else 0
        texts = round(self.batch_size * self.mix.text)
        scenes = self.batch_size - photos - texts
        backgrounds = self.cifar[0] if self.cifar is not None else None
        images, captions, written = [], [], []
        while len(images) < scenes:
            style = "varied" if rng.random() < self.mix.varied else "plain"
            if style == "varied" and self.mix.word_twins and rng.random() < self.mix.word_twins:
                twins, twin_captions = draw_word_twins(rng, backgrounds)
            elif style == "varied":
                words = READING_WORDS if self.mix.read else WORDS
                twins = draw_twins(rng, style, backgrounds, self.mix.word_probability, self.mix.nonce, words)
                reads = twins[0].word in READABLE and rng.random() < self.mix.read
                twin_captions = [reading_caption(t) if reads else t.caption for t in twins]
            else:
                twins = draw_twins(rng, style, backgrounds)
                twin_captions = [t.caption for t in twins]
            for scene, caption in list(zip(twins, twin_captions, strict=True))[: scenes - len(images)]:
                images.append(np.asarray(scene.image))
                captions.append(caption)
                written.append(bool(scene.word))
        while len(images) < scenes + texts:
            for scene in draw_text_twins(rng, backgrounds)[: scenes + texts - len(images)]:
                images.append(np.asarray(scene.image))
                captions.append(scene.caption)
                written.append(True)
        written += [False] * photos
        if not photos:
            return to_pixels(images, self.size), captions, torch.tensor(written)
        x, y = self.cifar
        picks = rng.integers(0, len(x), photos)
        flips = rng.random(photos) < 0.5
        photo_pixels = np.where(flips[:, None, None, None], x[picks][:, :, ::-1], x[picks])
        captions += [f"{PHOTO_CAPTION} {CIFAR_CLASSES[label]}" for label in y[picks]]
        pixels = torch.cat([to_pixels(images, self.size), to_pixels(photo_pixels, self.size)])
        return pixels, captions, torch.tensor(written)
