"""What shared stages and the frozen-encoder feature cache save in a study.

Runs the same 2-arm study twice with the real pipeline (`ablate.run.runner.run_recipe`):
the arms differ only in stage 2 (the instruction-tuning learning rate), so with sharing
the second arm reuses the first arm's stage 1, and the frozen encoder's features are
encoded once and read back for every later epoch, stage and arm; without
(`reuse_stages=False`, `data.feature_cache: false`), every stage is trained and every
image encoded on every pass. Each variant gets its own output folder, MLflow store and
ABLATE_HOME (so an empty feature cache; the zoo checkpoints are built beforehand and shared),
so neither can reuse the other's work. Prints both wall times and their ratio.

    python benchmarks/study_cost.py                 # tiny_easyvqa on 400 images per stage
    python benchmarks/study_cost.py --images 64 --eval-limit 32   # a quick check
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_study(folder: Path, recipe: Path, output_dir: Path, args, shared: bool) -> Path:
    overrides = {
        "output_dir": str(output_dir),
        "stages.align.data.sources.0.source.images_limit": args.images,
        "stages.instruct.data.sources.0.source.images_limit": args.images,
        "stages.instruct.epochs": args.epochs,
        "eval.limit": args.eval_limit,
        "data.feature_cache": shared,
        "data.cache_dir": str(folder / "datasets"),  # tokenized data: cold for both variants
    }
    study = {
        "description": "Two arms that differ only in stage 2 (instruction-tuning learning rate).",
        "scales": {"tiny": {"base": str(recipe.resolve()), "seeds": 1, "overrides": overrides}},
        "axes": [{"name": "instruct_lr", "path": "stages.instruct.lr",
                  "arms": [{"label": "lr 1e-3", "value": 1.0e-3}, {"label": "lr 5e-4", "value": 5.0e-4}]}],
        "baseline": "lr 1e-3",
    }
    path = folder / "study_cost.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def prebuild_zoo(recipe: Path) -> Path:
    """Build the recipe's zoo checkpoints now, so neither timed variant pays for it."""
    from ablate.recipe import load_recipe
    from ablate.zoo import build, zoo_dir, zoo_names

    for name in zoo_names(load_recipe(recipe).model):
        build(name)
    return zoo_dir()


def run_variant(label: str, root: Path, args, shared: bool, zoo: Path) -> dict:
    """One timed study in its own output folder, MLflow store and ABLATE_HOME (empty feature cache)."""
    from rich.console import Console

    from ablate.study.runner import run_study, summary

    home = root / "home"
    home.mkdir(parents=True)
    (home / "zoo").symlink_to(zoo, target_is_directory=True)
    os.environ["ABLATE_HOME"] = str(home)
    study = write_study(root, Path(args.recipe), root / "runs", args, shared)
    console = Console(stderr=True)
    console.rule(label)
    t0 = time.perf_counter()
    outcome = run_study(study, scale="tiny", tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                        run_kwargs={} if shared else {"reuse_stages": False}, report=False, console=console)
    wall = time.perf_counter() - t0
    if outcome.counts()["done"] != 2:
        raise SystemExit(f"{label}: not every cell finished: {outcome.counts()}")
    return {"wall": wall, **summary(outcome.states)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "tiny_easyvqa.yaml"))
    parser.add_argument("--images", type=int, default=400, help="easy-VQA images per training stage")
    parser.add_argument("--epochs", type=float, default=2, help="epochs of stage 2")
    parser.add_argument("--eval-limit", type=int, default=200, help="eval items per run")
    parser.add_argument("--workdir", default=None, help="keep everything here (default: a temp folder, removed)")
    args = parser.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ablate-study-cost-"))
    home = os.environ.get("ABLATE_HOME")
    zoo = prebuild_zoo(Path(args.recipe))
    try:
        shared = run_variant("with sharing and caching", work / "shared", args, True, zoo)
        unshared = run_variant("without sharing or caching", work / "unshared", args, False, zoo)
    finally:
        if home is None:
            os.environ.pop("ABLATE_HOME", None)
        else:
            os.environ["ABLATE_HOME"] = home
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'variant':<18}{'wall s':>10}{'compute s':>12}{'stages reused':>15}{'cache hits':>12}")
    for label, r in (("with sharing", shared), ("without sharing", unshared)):
        print(f"{label:<18}{r['wall']:>10.1f}{r['seconds']:>12.1f}{int(r['stages_reused']):>9} of {int(r['stages']):<3}"
              f"{int(r['feature_cache_hits']):>12}")
    print(f"wall-time ratio without/with sharing: {unshared['wall'] / shared['wall']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
