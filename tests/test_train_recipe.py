"""A recipe chains train_world runs, each from the previous one's export, and resumes by stage."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from clip_widgets.train_recipe import RECIPES, Stage, main, stage_dirs

TINY = "--batch-size 8 --steps 2 --warmup 1 --eval-every 1000 --eval-scenes 30 --export-scenes 30"
RECIPE = {"tiny": (Stage("first", TINY), Stage("second", f"{TINY} --lr 1e-2"))}


def _log_steps(directory):
    return [json.loads(line)["step"] for line in (directory / "log.jsonl").read_text().splitlines()]


def test_a_recipe_runs_its_stages_in_a_chain_and_skips_what_is_done(tmp_path, capsys):
    out = tmp_path / "run"
    first, second = stage_dirs(out, RECIPE["tiny"])
    assert main(["tiny", "--out", str(out), "--until", "first"], RECIPE) == first / "export"
    assert not second.exists()
    final = main(["tiny", "--out", str(out), "--export", str(tmp_path / "shipped")], RECIPE)
    printed = capsys.readouterr().out
    assert "stage 0-first: done, skipped" in printed
    assert f"starting from the weights in {first / 'export' / 'open_clip_model.safetensors'}" in printed
    assert final == second / "export" and _log_steps(first) == [1, 2] and _log_steps(second) == [1, 2]
    # the second stage trained on from the first: its weights moved away from them
    a, b = (
        load_file(first / "export/open_clip_model.safetensors"),
        load_file(second / "export/open_clip_model.safetensors"),
    )
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "shipped/open_clip_model.safetensors").read_bytes() == (
        second / "export/open_clip_model.safetensors").read_bytes()  # fmt: skip
    # a stage killed after its last checkpoint, before its export, resumes: nothing is trained twice
    shutil.rmtree(second / "export")
    assert main(["tiny", "--out", str(out)], RECIPE) == second / "export"
    assert _log_steps(second) == [1, 2] and (second / "export/open_clip_model.safetensors").exists()


def test_a_stage_that_does_not_exist_names_the_stages(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["tiny", "--out", str(tmp_path), "--until", "third"], RECIPE)
    assert "the stages of tiny are first, second" in capsys.readouterr().err


def test_every_shipped_stage_parses_as_train_world_options():
    from clip_widgets.train_world import build_parser  # noqa: PLC0415

    parser = build_parser()
    for stages in RECIPES.values():
        for stage in stages:
            parser.parse_args([*stage.argv(), "--out", "x"])  # raises SystemExit on an unknown option
