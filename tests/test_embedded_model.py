"""The embedded models (the default ``world-vit`` and its ResNet twin ``world-rn``) show real,
checkable behaviour on the shapes world.

Each test asserts something a broken pipeline (wrong weights, wrong normalization, a shuffled
tokenizer, maps flipped or transposed) would fail, with margins far from chance but below what
the shipped models measure (see ``bench/eval_world.py`` and the README), never exact floats.
Scenes come from seeds the training never draws (it uses small step-derived seeds).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clip_widgets import ModelSession, surgery_maps
from clip_widgets.surgery import whole_image_pixels
from clip_widgets.world import CLASSES, COLOURS, SHAPES, class_prompt, draw_scene

SEED = 3 * 10**9
CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-train.tar.gz"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# per model: (architecture, input size, a layer for feature visualization, a layer with an 8 x 8 map)
MODELS = {"world-vit": ("ViT", 64, "blocks.4", "blocks.3"), "world-rn": ("ResNet", 128, "layer3", "layer3"),
          "world-rn-robust": ("ResNet", 128, "layer3", "layer3"),
          "world-vit-robust": ("ViT", 64, "blocks.4", "blocks.3")}  # fmt: skip


@pytest.fixture(scope="module", params=list(MODELS))
def session(request) -> ModelSession:
    return ModelSession.load(request.param, device="cpu")


READERS = {"world-rn": "attnpool"}
"""The models trained to read (README), with the layer whose units are multimodal: the attention
pool's output (the last block's units are not yet, README)."""


@pytest.fixture(scope="module", params=list(READERS))
def reader(request) -> ModelSession:
    return ModelSession.load(request.param, device="cpu")


@pytest.fixture(scope="module")
def vit() -> ModelSession:
    return ModelSession.default(device="cpu")


def image_features(session: ModelSession, images) -> torch.Tensor:
    return session.encode_image(torch.cat([whole_image_pixels(session, image) for image in images]))


def test_default_is_the_embedded_vit():
    assert ModelSession.default(device="cpu").name == "world-vit"
    assert set(MODELS) <= set(ModelSession.embedded_models())


def test_embedded_models_and_their_metrics(session):
    architecture, size = MODELS[session.name][:2]
    assert session.architecture == architecture
    assert session.image_size == (size, size)
    assert {"class_accuracy", "colour_accuracy", "shape_accuracy", "cifar_accuracy"} <= set(session.metrics)
    # what training measured on 1,500 held-out scenes at export (the target is 0.9; see the README)
    assert session.metrics["class_accuracy"] >= 0.9


def test_zero_shot_over_the_thirty_classes(session):
    truth = [CLASSES[k % len(CLASSES)] for k in range(240)]
    images = [draw_scene(SEED + k, spec=[tuple(t.split())], word_probability=0.0).image for k, t in enumerate(truth)]
    text = session.encode_text([class_prompt(c) for c in CLASSES])
    predicted = [CLASSES[i] for i in (image_features(session, images) @ text.T).argmax(-1).tolist()]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    colour = np.mean([p.split()[0] == t.split()[0] for p, t in zip(predicted, truth, strict=True)])
    assert accuracy >= 0.9, accuracy  # chance is 1/30; the shipped models measure 0.98-1.0
    assert colour > 0.95, colour
    # the shipped weights are the ones training scored at export (other held-out seeds)
    assert abs(accuracy - session.metrics["class_accuracy"]) < 0.05, (accuracy, session.metrics)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_colour_prompt_prefers_scenes_of_that_colour(session, shape):
    # the same seed draws the same background and place; only the colour changes
    scenes = {colour: draw_scene(SEED + 500, spec=[(colour, shape)], word_probability=0.0) for colour in COLOURS}
    features = image_features(session, [s.image for s in scenes.values()])
    text = session.encode_text([class_prompt(f"{colour} {shape}") for colour in COLOURS])
    scores = text @ features.T  # (prompt colour, scene colour)
    # "a red <shape>" scores the red scene above every other colour's scene, for every colour
    assert (scores.argmax(dim=1) == torch.arange(len(COLOURS))).all(), scores


def test_a_shape_prompt_prefers_scenes_of_that_shape(session):
    hits = []
    for k, colour in enumerate(COLOURS):
        scenes = [draw_scene(SEED + 600 + k, spec=[(colour, shape)], word_probability=0.0) for shape in SHAPES]
        text = session.encode_text([class_prompt(f"{colour} {shape}") for shape in SHAPES])
        scores = text @ image_features(session, [s.image for s in scenes]).T
        hits += (scores.argmax(dim=1) == torch.arange(len(SHAPES))).tolist()
    assert np.mean(hits) > 0.9, np.mean(hits)  # chance is 1/5


def test_surgery_maps_point_inside_the_named_object(session):
    hits, chance = {"surgery": [], "raw": []}, []
    for k in range(24):
        scene = draw_scene(SEED + 1000 + k, objects=(2, 3), word_probability=0.0)
        result = surgery_maps(session, scene.image, list(CLASSES))
        for obj in scene.objects:
            if obj.mask.sum() < 20:
                continue
            chance.append(obj.mask.mean())
            for method, maps in (("surgery", result.surgery), ("raw", result.raw)):
                heat = maps[CLASSES.index(obj.label)]
                hits[method].append(bool(obj.mask.flat[int(heat.argmax())]))
    surgery, raw = np.mean(hits["surgery"]), np.mean(hits["raw"])
    assert len(chance) > 30
    # a random point lands in the object about 6% of the time; transposed or shuffled maps stay near
    # that. The shipped models measure 0.36-0.47 for Surgery, 0.00-0.02 for raw CLIP (bench/eval_world.py).
    assert surgery > 3 * np.mean(chance), (surgery, np.mean(chance))
    assert surgery > raw + 0.1, (surgery, raw)


def test_a_written_word_pulls_the_prediction_towards_it(session):
    # the typographic effect: writing a shape's name into a scene moves its scores towards that shape
    shifts = []
    text = session.encode_text([class_prompt(c) for c in CLASSES])
    for k in range(30):
        colour, shape = CLASSES[k % len(CLASSES)].split()
        word = SHAPES[(SHAPES.index(shape) + 1 + k % 4) % len(SHAPES)]
        clean = draw_scene(SEED + 2000 + k, spec=[(colour, shape)], word_probability=0.0).image
        attacked = draw_scene(SEED + 2000 + k, spec=[(colour, shape)], word=word).image
        scores = image_features(session, [clean, attacked]) @ text.T
        towards, own = CLASSES.index(f"{colour} {word}"), CLASSES.index(f"{colour} {shape}")
        shifts.append(float((scores[1, towards] - scores[1, own]) - (scores[0, towards] - scores[0, own])))
    assert np.mean(np.array(shifts) > 0) > 0.7, shifts


def held_out_cifar(per_class: int) -> tuple[list, list[int]]:
    """The first ``per_class`` photos of each class from the held-out part (files 4500-4999)."""
    from PIL import Image

    images, labels = [], []
    counts = dict.fromkeys(CIFAR_CLASSES, 0)
    with tarfile.open(CIFAR) as archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[1] not in counts:
                continue
            if int(Path(parts[2]).stem) < 4500 or counts[parts[1]] >= per_class:
                continue
            counts[parts[1]] += 1
            images.append(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB"))
            labels.append(CIFAR_CLASSES.index(parts[1]))
    return images, labels


@pytest.mark.skipif(not CIFAR.is_file(), reason=f"CIFAR-10 archive not found at {CIFAR}")
def test_zero_shot_on_held_out_cifar_photos(session):
    images, labels = held_out_cifar(per_class=30)
    assert len(images) == 300
    text = session.encode_text([f"a photo of a {name}" for name in CIFAR_CLASSES])
    predicted = (image_features(session, images) @ text.T).argmax(-1)
    accuracy = float((predicted == torch.tensor(labels)).float().mean())
    assert accuracy > 0.35, accuracy  # chance is 0.1


def test_feature_visualization_raises_units_above_noise_and_real_scenes(session):
    from clip_widgets.featvis import evaluate, render
    from clip_widgets.featvis import objectives as obj
    from clip_widgets.featvis.param import PhaseImage
    from clip_widgets.generate import class_image

    units = [0, 1, 2, 3]
    layer = MODELS[session.name][2]
    result = render(session, obj.channel(layer, units), batch=4, steps=128, progress=False)
    scenes = np.stack([np.asarray(draw_scene(SEED + 3000 + k).image) for k in range(32)])
    with torch.no_grad():  # pixel noise, and noise with a photograph's spectrum (where the render starts)
        noise = torch.cat([torch.rand(32, 3, *session.image_size), PhaseImage(32, *session.image_size, seed=1)()])
    raised = {}
    for unit, image in zip(units, result.images, strict=True):
        objective = obj.channel(layer, unit)
        achieved = evaluate(session, objective, image[None])[0]
        on_noise, on_scenes = evaluate(session, objective, noise), evaluate(session, objective, scenes)
        # a margin in proportion, since the two towers' units live on different scales
        raised[unit] = (achieved > on_noise.max() + 0.2 * abs(achieved)) and achieved > np.median(on_scenes)
    # most units are driven past what noise and a typical scene give them. The natural spectrum
    # the render keeps costs activation: world-vit's blocks.4 unit 0 reaches 1.85, where the top
    # tenth of scenes gives 2.90 (free Fourier coefficients go past it with pixel patterns)
    assert sum(raised.values()) >= 3, raised
    # an image optimized for a class prompt is classified as that colour by the same model
    for colour in ("red", "blue"):
        made = class_image(session, class_prompt(f"{colour} star"), steps=96, restarts=1, progress=False)
        text = session.encode_text([class_prompt(c) for c in CLASSES])
        predicted = CLASSES[int((image_features(session, [Image.fromarray(made.images[0])]) @ text.T).argmax())]
        assert predicted.startswith(colour), predicted


SIX_CLASSES = ["red circle", "green star", "blue triangle", "yellow square", "purple cross", "orange circle"]


def class_images_read(maker: ModelSession, readers: list[str], times: int = 2, **kw) -> dict[str, list[str]]:
    """``class_image`` of :data:`SIX_CLASSES` on ``maker``, each class ``times`` from its own start
    (one optimization can flip a class, and does with the thread count), in one batch,
    classified zero-shot by each reader. One optimization each (``restarts=1``): what the engine
    draws, without the default's picking, at half the time."""
    kw.setdefault("restarts", 1)
    from clip_widgets.generate import class_image

    prompts = [class_prompt(c) for c in SIX_CLASSES] * times
    made = class_image(maker, prompts, progress=False, **kw).images
    read = {}
    for name in readers:
        reader = ModelSession.load(name, device="cpu")
        text = reader.encode_text([class_prompt(c) for c in CLASSES])
        read[name] = [
            CLASSES[p] for p in (image_features(reader, [Image.fromarray(m) for m in made]) @ text.T).argmax(-1)
        ]
    return read


def right(read: list[str], part: slice = slice(None)) -> int:
    """How many of the images are read as their class (``part`` of the words: the colour with
    ``slice(0, 1)``)."""
    classes = SIX_CLASSES * (len(read) // len(SIX_CLASSES))
    return sum(r.split()[part] == c.split()[part] for r, c in zip(read, classes, strict=True))


@pytest.mark.parametrize("maker", ["world-rn-robust", "world-rn"])
def test_a_resnets_class_images_are_read_by_both_kinds_of_network(maker):
    """A ResNet's class images are classified right by the other ResNet and by both ViTs,
    networks that never saw them being made (one of each of the six classes, one torch thread,
    as the tests run).

    world-rn-robust's (adversarial training makes gradient ascent draw the class, README): the
    ResNets read 6 and 6 of these 6, the ViTs 5 and 4; world-rn's: the ResNets 6 and 6, the ViTs
    5 and 5. Twice each class (12 images in one batch): world-rn-robust's 11 and 11, 9 and 9;
    world-rn's 12 and 12, 8 and 9, and upright (``turns=False``) the ViTs read only 3 and 4 of
    world-rn's: its ragged stars and crosses are what turning draws as outlines. Six images in
    one batch read upright as well as turned (4 to 6 of 6): on so few, the turns weigh less than
    the order of float sums."""
    readers = ["world-rn", "world-rn-robust", "world-vit", "world-vit-robust"]
    read = class_images_read(ModelSession.load(maker, device="cpu"), readers, times=1)
    for name in readers[:2]:
        assert right(read[name]) >= 5, (name, read[name])
    for name in readers[2:]:
        assert right(read[name]) >= 4, (name, read[name])


def test_class_images_drawn_on_an_empty_ground_cross_from_the_vit_to_a_resnet():
    """world-vit's class images with the default alpha channel and four draws a step show their
    colour and mostly their class to the ResNets: one of each of the six classes (four passes a
    step make a ViT's class images the slowest of these tests) gives colours 6 of 6 and classes
    5 of 6 to each (one thread). Twice each: colours 12 of 12, classes 9 and 9; upright 10 and 9;
    with one draw a step, the default before, classes 8 and 8. Without the alpha (kind="phase")
    the ResNets read 4 and 5 of 12 (one draw: 1 and 1, 3 to 5 colours wrong): the frame fills
    with texture only world-vit reads."""
    read = class_images_read(ModelSession.load("world-vit", device="cpu"), ["world-rn", "world-rn-robust"], times=1)
    for name, classes in read.items():
        assert right(classes, slice(0, 1)) >= 5, (name, classes)
        assert right(classes) >= 4, (name, classes)


def test_the_robust_vit_draws_classes_both_resnets_read():
    """world-vit-robust (world-vit fine-tuned on adversarial scenes at a small radius, README)
    draws class images that each ResNet reads right: one of each of the six classes, 6 of 6 by
    each (one thread). Twice each: 11 and 12; upright 10 and 11; with one draw a step, the
    default before, 10 and 10, where world-vit's own give 9 and 9, and its images without the
    alpha channel 6 and 3."""
    read = class_images_read(
        ModelSession.load("world-vit-robust", device="cpu"), ["world-rn", "world-rn-robust"], times=1
    )
    for name, classes in read.items():
        assert right(classes) >= 5, (name, classes)


def test_atlas_attribution_points_to_the_class_of_the_images(session, tmp_path):
    from clip_widgets.atlas import attribute_activations, collect_activations

    classes = ["red circle", "blue star"]
    masks = []
    for k in range(16):
        colour, shape = classes[k % 2].split()
        scene = draw_scene(SEED + 4000 + k, spec=[(colour, shape)], word_probability=0.0)
        scene.image.save(tmp_path / f"{k:02d}.png")
        masks.append(scene.masks[0])
    # integrated gradients from the mean activation (the default); one-pass gradient x activation
    # gives this ViT's object patches the wrong sign (see attribute_activations)
    store = collect_activations(session, tmp_path, MODELS[session.name][3], tmp_path / "acts", per_image=64,
                                progress=False)  # fmt: skip
    attributions = attribute_activations(session, store, [class_prompt(c) for c in classes], progress=False)
    origins = store.origins
    own = origins[:, 0] % 2  # the class of each row's image
    # the 8 x 8 patch of each row lies mostly on the object (the background says little of the class)
    on_object = np.array([masks[i][r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8].mean() > 0.5 for i, r, c in origins])
    assert on_object.sum() > 40
    # an object's activations move its own class's logit up more than the other class's
    preference = attributions[:, 0] - attributions[:, 1]
    assert preference[on_object & (own == 0)].mean() > 0 > preference[on_object & (own == 1)].mean()


def test_saliency_falls_on_the_named_object(vit):
    # the ViT only: on world-rn the plain gradient's mass on the object is 0.8x its area (README)
    session = vit
    from clip_widgets.saliency import attribute

    shares, areas = [], []
    prompts = [class_prompt(c) for c in CLASSES]
    for k in range(24):
        scene = draw_scene(SEED + 5000 + k, objects=2, word_probability=0.0)
        obj = scene.objects[0]
        if obj.mask.sum() < 30:
            continue
        result = attribute(session, whole_image_pixels(session, scene.image), class_prompt(obj.label), classes=prompts,
                           method="gradient")  # fmt: skip
        saliency = result.maps[0]  # at the model's input size; the scene is 64 x 64
        factor = saliency.shape[0] // obj.mask.shape[0]
        saliency = saliency.reshape(obj.mask.shape[0], factor, obj.mask.shape[1], factor).sum((1, 3))
        shares.append(saliency[obj.mask].sum() / saliency.sum())
        areas.append(obj.mask.mean())
    # the gradient's mass on the named object is well above its share of the image (1x for a
    # map that ignores the image; the shipped model measures about 1.7x)
    assert np.mean(shares) > 1.3 * np.mean(areas), (np.mean(shares), np.mean(areas))


def test_typographic_attack_report_on_circles(vit):
    # the default ViT, which reads little: even so the written word raises its shape (README)
    session = vit
    from clip_widgets.typographic import attack

    circles = [draw_scene(SEED + 6000 + k, spec=[("red", "circle")], word_probability=0.0).image for k in range(24)]
    prompts = [class_prompt(c) for c in CLASSES]
    report = attack(session, circles, "star", prompts, target=class_prompt("red star"), position=(0.5, 0.85),
                    size=0.25, progress=False)  # fmt: skip
    star = prompts.index(class_prompt("red star"))
    # the written word raises the probability of "a red star" on most scenes
    assert np.mean(report.attacked_probs[:, star] > report.clean_probs[:, star]) > 0.75


def classify(session: ModelSession, images) -> list[str]:
    text = session.encode_text([class_prompt(c) for c in CLASSES])
    return [CLASSES[i] for i in (image_features(session, images) @ text.T).argmax(-1).tolist()]


def standardized(acts: np.ndarray) -> np.ndarray:
    return (acts - acts.mean(0)) / (acts.std(0) + 1e-6)


def test_a_reader_reads_shape_names_written_alone(reader):
    from clip_widgets.world import draw_text_scene

    truth = [SHAPES[k % len(SHAPES)] for k in range(60)]
    predicted = classify(reader, [draw_text_scene(SEED + 7000 + k, text=t).image for k, t in enumerate(truth)])
    read = np.mean([p.split()[1] == t for p, t in zip(predicted, truth, strict=True)])
    assert read > 0.6, read  # chance is 0.2


def test_a_written_shape_name_sways_a_reader_and_a_made_up_word_does_not(reader):
    from clip_widgets.world import nonce_word

    rng = np.random.default_rng(0)
    to_written, made_up_flips, kept, seed = 0, 0, 0, SEED + 8000
    for k in range(90):
        colour, shape = CLASSES[k % len(CLASSES)].split()
        word = SHAPES[(SHAPES.index(shape) + 1 + k % 4) % len(SHAPES)]
        made_up = nonce_word(rng)[: len(word)].ljust(len(word), "a")  # the same length as the shape name
        while True:  # a scene where neither word covers the shape: flips by occlusion are not reading
            seed += 1
            scenes = [draw_scene(seed, spec=[(colour, shape)], word=w, style="varied", word_probability=0.0)
                      for w in ("", word, made_up)]  # fmt: skip
            if not any((s.word_mask & s.masks[0]).any() for s in scenes[1:]):
                break
        clean, attacked, control = classify(reader, [s.image for s in scenes])
        if clean != f"{colour} {shape}":
            continue
        kept += 1
        to_written += attacked == f"{colour} {word}"
        made_up_flips += control != clean
    assert kept > 45, kept
    # a model that does not read flips as often, or as rarely, for both (before it read: 6 to the written
    # shape, 16 for a made-up word, of 67); the first reader: 51 and 25 of 84; with word twins: 56 and 12 of 77;
    # the shipped one, also trained on the class prompts: 59 and 6 of 74. (On another renderer: 7.0x, README.)
    assert to_written / kept > 0.6 and to_written > 5 * max(made_up_flips, 1), (to_written, made_up_flips, kept)


def test_a_readers_late_units_answer_a_shape_drawn_and_written(reader):
    from clip_widgets.probe import pooled_activations
    from clip_widgets.world import draw_text_scene

    per = 12
    drawn = [draw_scene(SEED + 9000 + 100 * i + j, spec=[(list(COLOURS)[j % 6], shape)], style="varied",
                        word_probability=0.0).image for i, shape in enumerate(SHAPES) for j in range(per)]  # fmt: skip
    written = [draw_text_scene(SEED + 9500 + 100 * i + j, text=shape).image for i, shape in enumerate(SHAPES)
               for j in range(per)]  # fmt: skip
    acts = pooled_activations(reader, drawn + written, READERS[reader.name], progress=False)
    kinds = np.repeat(np.arange(len(SHAPES)), per)
    # each form standardized on its own: a unit's answer to writing is compared with other writing
    drawn_acts, written_acts = (standardized(part) for part in (acts[: len(drawn)], acts[len(drawn) :]))

    def multimodal(pairing: np.ndarray) -> int:
        """Units whose mean on drawn shape s and on the written name pairing[s] both stand a standard
        deviation above the other shapes (drawn) and the other names (written)."""
        found = np.zeros(acts.shape[1], bool)
        for s in range(len(SHAPES)):
            d = drawn_acts[kinds == s].mean(0) - drawn_acts[kinds != s].mean(0)
            w = written_acts[kinds == pairing[s]].mean(0) - written_acts[kinds != pairing[s]].mean(0)
            found |= (d >= 1) & (w >= 1)
        return int(found.sum())

    same = multimodal(np.arange(len(SHAPES)))
    shuffled = max(multimodal(np.roll(np.arange(len(SHAPES)), k)) for k in range(1, len(SHAPES)))
    # units that answer a star drawn and the word "star" outnumber those pairing a shape with another's
    # name, for every other pairing (the shipped reader: 26 against at most 7; before it read: 0 and 0)
    assert same >= 10 and same > 2 * shuffled, (same, shuffled)
