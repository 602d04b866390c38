"""All six studies at `--scale tiny` with one seed, timed against the 15-minute target.

Runs `ablate study NAME --scale tiny --seeds 1` for every study in `studies/`, one after the
other, as a user would type it, from one fresh working folder (its `runs/` and `mlflow.db`; so the stage
store and feature cache start empty and fill up across studies, as they do for a user). The
zoo checkpoints the studies name are built first and not timed: like downloaded weights, they
are built once per ABLATE_HOME. Prints each study's wall time, the total, and the ratio to
the target.

    python benchmarks/tiny_suite.py                    # all six
    python benchmarks/tiny_suite.py --studies connector clip_layer
    python benchmarks/tiny_suite.py --workers 1        # one cell at a time (default: 2, one per core)

Each study runs its cells on `--workers` local worker processes, which split the machine's
threads between them (one each on 2 cores): a tiny cell gains little from a second thread, so
two cells side by side finish sooner than one after the other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 15 * 60  # the whole tiny suite on an idle 2-core machine


def zoo_names(studies: list[str]) -> list[str]:
    """Every zoo checkpoint a tiny arm of these studies loads."""
    from ablate import zoo
    from ablate.study.runner import prepare_study

    return sorted({name for study in studies for recipe in prepare_study(study, "tiny", seeds=1).recipes.values()
                   for name in zoo.zoo_names(recipe.model)})


def main() -> None:
    from ablate.study.discovery import available
    from ablate.zoo import build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="*", default=None, help="default: every study in studies/")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes per study (default 2)")
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    args = parser.parse_args()

    found = available()
    studies = args.studies or sorted(found)
    out = Path(args.out or tempfile.mkdtemp(prefix="ablate-tiny-suite-"))
    out.mkdir(parents=True, exist_ok=True)
    for name in zoo_names(studies):
        print(f"zoo {name}: building if needed (not timed)", flush=True)
        build(name)

    times: dict[str, float] = {}
    for name in studies:
        cmd = [sys.executable, "-m", "ablate.cli", "study", str(found.get(name, name)), "--scale", "tiny",
               "--seeds", "1", "--workers", str(args.workers), "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=out)  # the recipes' relative output_dir "runs" lands in `out`
        times[name] = time.perf_counter() - start
        print(f"== {name}: {times[name]:.0f} s (exit {done.returncode})", flush=True)
        if done.returncode != 0:
            sys.exit(done.returncode)

    total = sum(times.values())
    print("\nstudy              wall time")
    for name, seconds in times.items():
        print(f"{name:<18} {seconds:7.0f} s")
    print(f"{'total':<18} {total:7.0f} s  ({total / 60:.1f} min; target {TARGET_S / 60:.0f} min, "
          f"ratio {total / TARGET_S:.2f})")
    print(f"{len(studies)} studies, --seeds 1 --workers {args.workers}; reports and runs under {out}")


if __name__ == "__main__":
    main()
