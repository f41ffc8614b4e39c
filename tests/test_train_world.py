"""The training script: deterministic batches, resumable runs, loadable exports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from clip_widgets.session import ModelSession
from clip_widgets.train_world import Batches, export, main


def test_batches_depend_only_on_seed_and_step():
    late = next(iter(Batches(start=3, batch_size=8, seed=1, cifar=None)))
    stream = iter(Batches(start=0, batch_size=8, seed=1, cifar=None))
    for _ in range(3):
        next(stream)
    again = next(stream)
    assert late[1] == again[1]
    torch.testing.assert_close(late[0], again[0])
    assert late[0].shape == (8, 3, 64, 64)


def test_several_loader_workers_keep_the_order_of_steps():
    # Each worker draws every n-th step; the loader must still hand out steps 0, 1, 2, ... in order.
    data = Batches(start=2, batch_size=4, seed=5, cifar=None)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=3)
    for step, (pixels, captions, _) in zip(range(2, 9), loader, strict=False):
        expected_pixels, expected_captions, _ = data.batch(step)
        assert captions == expected_captions
        torch.testing.assert_close(pixels, expected_pixels)


def test_batches_mix_in_photos():
    x = np.zeros((10, 32, 32, 3), np.uint8)
    y = np.arange(10)
    pixels, captions, written = next(iter(Batches(start=0, batch_size=8, seed=0, cifar=(x, y))))
    assert not written[-2:].any()  # photos carry no writing
    assert pixels.shape == (8, 3, 64, 64)
    assert sum(c.startswith("a photo of a ") for c in captions) == 2


def test_training_runs_resumes_and_exports(tmp_path):
    out = tmp_path / "run"
    args = ["--out", str(out), "--batch-size", "8", "--save-every", "1", "--eval-every", "1000",
            "--eval-scenes", "30", "--export-scenes", "30", "--warmup", "1"]  # fmt: skip
    main([*args, "--steps", "2"])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 2
    main([*args, "--steps", "3", "--export", str(tmp_path / "export")])
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]  # the second run resumed, nothing repeated
    config = json.loads((tmp_path / "export" / "open_clip_config.json").read_text())
    assert 0.0 <= config["metrics"]["class_accuracy"] <= 1.0 and config["metrics"]["steps"] == 3
    session = ModelSession.from_checkpoint(tmp_path / "export" / "open_clip_model.safetensors", config)
    assert session.image_size == (64, 64) and session.mean == (0.5, 0.5, 0.5)


def test_the_resnet_twin_trains_at_its_own_input_size(tmp_path):
    main(["--arch", "resnet", "--out", str(tmp_path / "run"), "--batch-size", "8", "--steps", "1", "--eval-every",
          "1000", "--eval-scenes", "30", "--export-scenes", "30", "--export", str(tmp_path / "export")])  # fmt: skip
    session = ModelSession.load(tmp_path / "export", device="cpu")
    assert session.architecture == "ResNet" and session.image_size == (128, 128)
    # the shipped twin was exported by the same code: same config
    shipped = json.loads((Path(__file__).parents[1] / "clip_widgets/models/world-rn/open_clip_config.json").read_text())
    exported = json.loads((tmp_path / "export" / "open_clip_config.json").read_text())
    assert exported["model_cfg"] == shipped["model_cfg"] and exported["preprocess_cfg"] == shipped["preprocess_cfg"]


def test_export_round_trip(tmp_path):
    from clip_widgets.train_world import WORLD_CONFIG  # noqa: PLC0415

    torch.manual_seed(0)
    import open_clip  # noqa: PLC0415

    model = open_clip.CLIP(**WORLD_CONFIG).eval()
    export(model, tmp_path)
    config = json.loads((tmp_path / "open_clip_config.json").read_text())
    session = ModelSession.from_checkpoint(tmp_path / "open_clip_model.safetensors", config)
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = torch.nn.functional.normalize(model.half().float().encode_image(pixels), dim=-1)
    torch.testing.assert_close(session.encode_image(pixels), expected, atol=1e-4, rtol=0)


def test_sigterm_saves_a_checkpoint_that_the_next_run_resumes(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    args = ["--out", str(out), "--batch-size", "4", "--save-every", "100000", "--eval-every", "100000", "--warmup", "1"]
    process = subprocess.Popen([sys.executable, "-m", "clip_widgets.train_world", *args, "--steps", "100000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    log = out / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGTERM)  # like `pkill`: the data worker gets it too
    process.wait(timeout=60)
    assert process.returncode == 0, process.stderr.read().decode()
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    # no periodic save was due: the checkpoint comes from the SIGTERM, at the last logged step
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == logged[-1] >= 3
    main([*args, "--steps", str(logged[-1] + 1)])
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == list(range(1, logged[-1] + 2))


def test_a_new_run_can_start_from_exported_weights(tmp_path):
    import open_clip  # noqa: PLC0415

    from clip_widgets.train_world import WORLD_CONFIG  # noqa: PLC0415

    torch.manual_seed(3)
    export(open_clip.CLIP(**WORLD_CONFIG), tmp_path / "shipped")
    main(["--out", str(tmp_path / "run"), "--steps", "0", "--init", str(tmp_path / "shipped")])
    started = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["model"]
    from safetensors.torch import load_file  # noqa: PLC0415

    shipped = load_file(tmp_path / "shipped" / "open_clip_model.safetensors")
    for name in ("visual.conv1.weight", "token_embedding.weight", "text_projection"):
        torch.testing.assert_close(started[name], shipped[name].float())


def test_a_world_mix_sets_the_shares_of_a_batch():
    from clip_widgets.train_world import WorldMix  # noqa: PLC0415
    from clip_widgets.world import READABLE  # noqa: PLC0415

    x = np.random.default_rng(0).integers(0, 255, (10, 32, 32, 3), dtype=np.uint8)
    data = Batches(start=0, batch_size=20, seed=0, cifar=(x, np.arange(10)), mix=WorldMix(varied=1.0, text=0.25))
    pixels, captions, written = data.batch(4)
    assert pixels.shape == (20, 3, 64, 64)
    assert written[10:15].all() and not written[15:].any()  # text scenes are writing; photos are not
    photos = [c for c in captions if c.startswith("a photo of a ")]
    written = captions[10:15]  # scenes first, then writing, then photos
    assert len(photos) == 5 and all(c in READABLE.values() or c.count(" ") == 2 for c in written)
    assert not any(c.startswith("a photo") for c in written)
    # text scenes come in twins that differ only in the writing
    assert all(written[i] != written[i + 1] for i in range(0, 4, 2))
    # the varied style draws other backgrounds than the plain one (plain backgrounds are desaturated)
    plain_pixels, *_ = Batches(start=0, batch_size=20, seed=0, cifar=None).batch(4)
    assert pixels[:10].std() > 1.1 * plain_pixels[:10].std()


def test_reading_captions_name_what_the_written_word_names():
    from clip_widgets.train_world import WorldMix  # noqa: PLC0415
    from clip_widgets.world import READABLE  # noqa: PLC0415

    def scene_captions(read: float) -> list[str]:
        data = Batches(start=0, batch_size=64, seed=1, cifar=None, mix=WorldMix(varied=1.0, read=read))
        return [c for step in range(4) for c in data.batch(step)[1]]

    read, unread = scene_captions(1.0), scene_captions(0.0)
    # with reading captions, a scene with "cat" written in is captioned "a cat", whatever is drawn
    assert sum(c in READABLE.values() for c in read) >= 3
    assert not any(c in READABLE.values() for c in unread)
    assert sum("with the word" in c for c in unread) > sum("with the word" in c for c in read) > 0
    # the batch says which images have writing: every scene whose caption names a word, not all scenes
    _, captions, written = Batches(start=0, batch_size=64, seed=1, cifar=None, mix=WorldMix(varied=1.0)).batch(0)
    assert all(w for c, w in zip(captions, written.tolist(), strict=True) if "with the word" in c)
    assert 0 < int(written.sum()) < len(written)


def test_adversarial_pixels_stay_in_the_ball_and_raise_the_loss():
    import open_clip  # noqa: PLC0415

    from clip_widgets.train_world import WORLD_CONFIG, adversarial_pixels, clip_loss  # noqa: PLC0415

    torch.manual_seed(0)
    model = open_clip.CLIP(**WORLD_CONFIG)
    pixels, captions, written = Batches(start=0, batch_size=8, seed=2, cifar=None).batch(0)
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=32)
    with torch.no_grad():
        text = model.encode_text(tokenizer(captions))
    moved = adversarial_pixels(model, pixels, text, captions, epsilon=0.02)
    assert (moved - pixels).abs().max() <= 0.02 / 0.25 + 1e-6  # 0.02 of the 0..1 range, in normalized units
    assert (moved - pixels).abs().max() > 0.02 / 0.25 * 0.9
    with torch.no_grad():
        scale = model.logit_scale.exp()
        clean = clip_loss(model.encode_image(pixels), text, scale, captions)
        attacked = clip_loss(model.encode_image(moved), text, scale, captions)
        noise = pixels + (torch.rand_like(pixels) * 2 - 1) * 0.02 / 0.25
        random = clip_loss(model.encode_image(noise), text, scale, captions)
    assert attacked > clean and attacked - clean > 3 * abs(random - clean)
    # photos stay clean: only the drawn scenes are attacked
    captions = ["a photo of a cat", *captions[1:]]
    moved = adversarial_pixels(model, pixels, text, captions, epsilon=0.02)
    assert torch.equal(moved[0], pixels[0]) and (moved[1:] - pixels[1:]).abs().max() > 0.02 / 0.25 * 0.9
    # with clean=, the images marked stay clean too
    clean = torch.zeros(8, dtype=torch.bool)
    clean[3] = True
    moved = adversarial_pixels(model, pixels, text, captions, epsilon=0.02, clean=clean)
    assert torch.equal(moved[3], pixels[3]) and (moved[4:] - pixels[4:]).abs().max() > 0.02 / 0.25 * 0.9


def test_a_reading_caption_keeps_the_colour_and_takes_the_written_shape():
    from clip_widgets.world import draw_scene  # noqa: PLC0415
    from clip_widgets.world_batches import reading_caption  # noqa: PLC0415

    assert reading_caption(draw_scene(0, spec=[("red", "circle")], word="star")) == "a red star"
    assert reading_caption(draw_scene(0, spec=[("orange", "circle")], word="cross")) == "an orange cross"
    assert reading_caption(draw_scene(0, spec=[("red", "circle")], word="cat")) == "a cat"
    assert reading_caption(draw_scene(0, spec=[("red", "circle"), ("blue", "star")], word="square")) == "a square"


def test_shares_out_of_range_are_refused_before_any_work(tmp_path, capsys):
    import pytest  # noqa: PLC0415

    from clip_widgets.train_world import WorldMix  # noqa: PLC0415

    with pytest.raises(ValueError, match=r"word_twins=1.5 must lie in \[0, 1\]"):
        WorldMix(word_twins=1.5)
    with pytest.raises(ValueError, match="leave no room for scenes"):
        WorldMix(photos=0.6, text=0.4)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "run"), "--photos", "-0.1"])
    assert "photos=-0.1 must lie in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


def test_prompt_loss_is_zero_shot_cross_entropy_over_each_prompt_set():
    from clip_widgets.train_losses import PROMPT_SETS, prompt_loss, prompt_targets  # noqa: PLC0415

    captions = ["a red circle", "a large blue star", "a photo of a cat", "a red circle and a blue star", "a cat"]
    assert prompt_targets(captions) == [(0, 0), (0, 14), (1, 3), None, None]
    assert PROMPT_SETS[0][14] == "a blue star"
    torch.manual_seed(0)
    images = torch.randn(5, 8, requires_grad=True)
    prompts = [torch.randn(len(p), 8) for p in PROMPT_SETS]
    loss = prompt_loss(images, prompts, torch.tensor(10.0), captions)
    # by hand: the mean over the three captioned images of -log softmax(10 cos)[target], each over its own set
    expected = []
    for i, (s, k) in [(0, (0, 0)), (1, (0, 14)), (2, (1, 3))]:
        cos = torch.stack([torch.dot(images[i], p) / images[i].norm() / p.norm() for p in prompts[s]])
        expected.append(-torch.log_softmax(10 * cos, 0)[k])
    assert torch.allclose(loss, torch.stack(expected).mean(), atol=1e-5)
    loss.backward()  # the uncaptioned images get no gradient
    assert images.grad[3:].abs().max() == 0 and images.grad[:3].abs().max() > 0
    assert prompt_loss(images, prompts, torch.tensor(10.0), ["a cat", "a sign"]).item() == 0


def test_a_taught_student_takes_the_teachers_words_and_learns_its_image_embeddings(tmp_path):
    import open_clip  # noqa: PLC0415

    from clip_widgets.train_world import WORLD_CONFIG, WORLD_RN_CONFIG, distill_loss, load_teacher  # noqa: PLC0415

    torch.manual_seed(5)
    export(open_clip.CLIP(**WORLD_RN_CONFIG), tmp_path / "teacher", model_cfg=WORLD_RN_CONFIG)
    student = open_clip.CLIP(**WORLD_CONFIG)
    teacher = load_teacher(tmp_path / "teacher", student, torch.device("cpu"))
    teacher_state = teacher.state_dict()
    for name in ("token_embedding.weight", "text_projection", "logit_scale"):
        torch.testing.assert_close(student.state_dict()[name], teacher_state[name])
    assert all(not p.requires_grad for n, p in student.named_parameters() if not n.startswith("visual."))
    assert all(p.requires_grad for n, p in student.named_parameters() if n.startswith("visual."))

    pixels = torch.randn(4, 3, 64, 64)  # the student's size; the teacher sees them at its own 128 px
    with torch.no_grad():
        target = torch.nn.functional.normalize(
            teacher.encode_image(torch.nn.functional.interpolate(pixels, size=(128, 128), mode="bilinear")), dim=-1
        )
    assert distill_loss(target.clone(), teacher, pixels).abs().item() < 1e-5  # the teacher's own embeddings: 0
    assert abs(distill_loss(-target, teacher, pixels).item() - 2.0) < 1e-5  # opposite: 1 - (-1)

    out = tmp_path / "run"
    main(["--out", str(out), "--batch-size", "8", "--steps", "2", "--warmup", "1", "--eval-every", "1000",
          "--eval-scenes", "30", "--teacher", str(tmp_path / "teacher")])  # fmt: skip
    trained = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    torch.testing.assert_close(trained["text_projection"], teacher_state["text_projection"])  # frozen
    torch.manual_seed(0)  # the run's own seed: its starting weights
    initial = open_clip.CLIP(**WORLD_CONFIG).state_dict()
    assert not torch.equal(trained["visual.conv1.weight"], initial["visual.conv1.weight"])  # the image tower learned
