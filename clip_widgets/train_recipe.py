"""The embedded models' training recipes, one command each: a chain of :mod:`train_world` runs.

    python -m clip_widgets.train_recipe world-rn --out runs/world-rn --cifar ../shared/data/cifar10-train.tar.gz
        [--export clip_widgets/models/world-rn] [--until STAGE] [--device cuda] [--workers N]

Each stage is one ``train_world`` run that starts from the previous stage's export, each adding
one lesson (reading, made-up words, word twins...), the way the shipped weights were made.
Stages run in ``OUT/<k>-<stage>``; run the same command again after a kill or Ctrl-C: finished
stages (those with an export) are skipped and the interrupted one resumes from its checkpoint.
``--until`` stops after a stage; ``--export`` copies the last stage's export where the package
looks for it.
"""

from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import train_world

__all__ = ["RECIPES", "Stage", "main", "stage_dirs"]


@dataclass(frozen=True)
class Stage:
    """One ``train_world`` run of a recipe: its name and its options (without --out, --init,
    --export or --cifar, which the recipe supplies)."""

    name: str
    options: str
    lesson: str = ""

    def argv(self) -> list[str]:
        return self.options.split()


_RN_FINE_TUNE = ("--arch resnet --batch-size 128 --lr 3e-4 --warmup 50 --varied 0.6 --text-scenes 0.3 --photos 0.3 "
                 "--nonce 0.6")  # fmt: skip
RECIPES: dict[str, tuple[Stage, ...]] = {
    "world-vit": (Stage("base", "--steps 3900 --batch-size 512 --lr 7e-4 --warmup 500", "the plain world, twins"),),
    "world-rn": (
        Stage("base", "--arch resnet --steps 3100 --batch-size 512 --lr 7e-4 --warmup 500", "the plain world, twins"),
        Stage(
            "reader",
            "--arch resnet --steps 1200 --batch-size 128 --lr 4e-4 --warmup 50 --varied 0.6 "
            "--text-scenes 0.3 --read 0.8 --nonce 0.4",
            "varied scenes, writing captioned as read",
        ),  # fmt: skip
        Stage("nonce", f"{_RN_FINE_TUNE} --steps 600 --read 0.8 --nonce 0.5", "made-up words with English clusters"),
        Stage("noise", f"{_RN_FINE_TUNE} --steps 700 --read 0.9", "noise backgrounds up to the full range"),
        Stage("bold", f"{_RN_FINE_TUNE} --steps 800 --read 1.0", "bold type"),
        Stage(
            "word-twins",
            f"{_RN_FINE_TUNE} --steps 600 --read 1.0 --word-twins 0.3",
            "twins that differ only in the written word",
        ),  # fmt: skip
        Stage(
            "prompts",
            f"{_RN_FINE_TUNE} --steps 600 --read 1.0 --word-twins 0.3 --prompt-loss 1.0",
            "zero-shot cross-entropy over every class prompt",
        ),  # fmt: skip
        Stage(
            "prompts-varied",
            f"{_RN_FINE_TUNE} --steps 400 --lr 1e-4 --warmup 20 --varied 0.8 --read 1.0 --word-twins 0.3 "
            "--prompt-loss 1.0",
            "the same, on more varied scenes, at a lower rate",
        ),  # fmt: skip
    ),
}
"""Stages per shipped model. The lessons were added to the world one run at a time, so a stage
that ran before a lesson existed saw a world without it; replayed today, every stage sees the
whole world."""
RECIPES["world-rn-robust"] = (
    *RECIPES["world-rn"],
    Stage(
        "robust",
        f"{_RN_FINE_TUNE} --steps 400 --lr 2e-4 --warmup 20 --read 1.0 --word-twins 0.3 --prompt-loss 1.0 "
        "--adversarial 0.005 --clean-writing",
        "adversarial scenes (writing and photos left clean)",
    ),
)

RECIPES["world-vit-robust"] = (
    *RECIPES["world-vit"],
    Stage(
        "robust",
        "--steps 400 --batch-size 128 --lr 1e-4 --warmup 20 --varied 0.3 --photos 0.25 --prompt-loss 1.0 "
        "--adversarial 0.002",
        "adversarial scenes at a small radius, some varied",
    ),
)


def stage_dirs(out: Path, stages: tuple[Stage, ...]) -> list[Path]:
    return [out / f"{k}-{stage.name}" for k, stage in enumerate(stages)]


def _exported(directory: Path) -> bool:
    return (directory / "export" / "open_clip_model.safetensors").exists()


def main(argv: list[str] | None = None, recipes: dict[str, tuple[Stage, ...]] = RECIPES) -> Path | None:
    """Run (or resume) a recipe; returns the last finished stage's export, or None if stopped early."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=sorted(recipes))
    parser.add_argument("--out", type=Path, required=True, help="run directory; each stage gets a folder in it")
    parser.add_argument("--cifar", type=Path, default=None, help="cifar10-train.tar.gz (every stage mixes photos in)")
    parser.add_argument("--export", type=Path, default=None, help="copy the last stage's export here")
    parser.add_argument("--until", default=None, help="stop after this stage")
    parser.add_argument("--device", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args, passthrough = parser.parse_known_args(argv)
    stages = recipes[args.recipe]
    names = [s.name for s in stages]
    if args.until is not None and args.until not in names:
        parser.error(f"--until {args.until!r}: the stages of {args.recipe} are {', '.join(names)}")
    shared = passthrough + [f"--{k}={v}" for k in ("device", "workers", "threads") if (v := getattr(args, k))]
    if args.cifar is not None:
        shared += ["--cifar", str(args.cifar)]
    previous = None
    for stage, directory in zip(stages, stage_dirs(args.out, stages), strict=True):
        if _exported(directory):
            print(f"stage {directory.name}: done, skipped")
        else:
            print(f"stage {directory.name}: {stage.lesson or stage.options}")
            init = ["--init", str(previous / "export")] if previous is not None else []
            train_world.main([*stage.argv(), *shared, *init, "--out", str(directory),
                              "--export", str(directory / "export")])  # fmt: skip
            if not _exported(directory):
                print(f"stopped in stage {directory.name}; run the same command to resume")
                return None
        previous = directory
        if stage.name == args.until:
            break
    final = previous / "export"
    if args.export is not None:
        shutil.copytree(final, args.export, dirs_exist_ok=True)
        print(f"exported {final} to {args.export}")
    return final


if __name__ == "__main__":
    main()
