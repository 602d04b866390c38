"""What shared stages and the frozen-encoder feature cache save in a study.

Runs the same 2-arm study twice with the real pipeline (`ablate.run.runner.run_recipe`):
the arms differ only in stage 2 (the instruction-tuning learning rate), so with sharing
the second arm reuses the first arm's stage 1 and the cached encoder features; without,
every stage is trained and every image encoded again. Each variant gets its own output
folder and MLflow store, so neither can reuse the other's work. Prints both wall times and
their ratio.

    python benchmarks/study_cost.py                 # tiny_easyvqa on 400 images per stage
    python benchmarks/study_cost.py --images 64 --eval-limit 32   # a quick check
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_study(folder: Path, recipe: Path, output_dir: Path, images: int, eval_limit: int) -> Path:
    overrides = {
        "output_dir": str(output_dir),
        "stages.align.data.sources.0.source.images_limit": images,
        "stages.instruct.data.sources.0.source.images_limit": images,
        "stages.instruct.epochs": 1,
        "eval.limit": eval_limit,
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


def sharing_off_kwargs() -> tuple[dict, str]:
    """run_recipe arguments that turn stage sharing and feature caching off."""
    from ablate.run.runner import run_recipe

    params = inspect.signature(run_recipe).parameters
    kwargs = {"reuse_stages": False}
    note = ""
    if "feature_cache" in params:
        kwargs["feature_cache"] = False
    else:
        note = "run_recipe has no feature_cache switch yet: the 'without' variant turns off stage sharing only"
    return kwargs, note


def run_variant(label: str, root: Path, args, run_kwargs: dict) -> dict:
    from rich.console import Console

    from ablate.study.runner import run_study, summary

    root.mkdir(parents=True)
    study = write_study(root, Path(args.recipe), root / "runs", args.images, args.eval_limit)
    console = Console(stderr=True)
    console.rule(f"{label}: {run_kwargs or 'sharing and caching on'}")
    t0 = time.perf_counter()
    outcome = run_study(study, scale="tiny", tracking_uri=f"sqlite:///{root / 'mlflow.db'}", run_kwargs=run_kwargs,
                        report=False, console=console)
    wall = time.perf_counter() - t0
    if outcome.counts()["done"] != 2:
        raise SystemExit(f"{label}: not every cell finished: {outcome.counts()}")
    return {"wall": wall, **summary(outcome.states)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "tiny_easyvqa.yaml"))
    parser.add_argument("--images", type=int, default=400, help="easy-VQA images per training stage")
    parser.add_argument("--eval-limit", type=int, default=200, help="eval items per run")
    parser.add_argument("--workdir", default=None, help="keep everything here (default: a temp folder, removed)")
    args = parser.parse_args(argv)

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ablate-study-cost-"))
    off, note = sharing_off_kwargs()
    try:
        shared = run_variant("with sharing", work / "shared", args, {})
        unshared = run_variant("without sharing", work / "unshared", args, off)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{'variant':<18}{'wall s':>10}{'compute s':>12}{'stages reused':>15}{'cache hits':>12}")
    for label, r in (("with sharing", shared), ("without sharing", unshared)):
        print(f"{label:<18}{r['wall']:>10.1f}{r['seconds']:>12.1f}{int(r['stages_reused']):>9} of {int(r['stages']):<3}"
              f"{int(r['feature_cache_hits']):>12}")
    print(f"wall-time ratio without/with sharing: {unshared['wall'] / shared['wall']:.2f}x")
    if note:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
