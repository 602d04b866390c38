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

Before the runs it prints the suite's training floor: the FLOPs `ablate plan` counts for every
stage the suite trains (cells and diagnostic runs; a stage the stage store shares counted once,
in the first study that trains it), at the rate this machine multiplies matrices of the zoo
Llama's shape on every core. No schedule of the same work finishes its training faster, and
evaluation comes on top; when the floor alone exceeds the target, no lever but less work can
meet it. It also prints the floor at the machine's bf16 matmul rate: what the same stages would
need with `precision: bf16` (autocast), a lever that changes the numerics and so every measured
figure. After the runs it prints each study's wall time beside its floor.

    python benchmarks/tiny_suite.py --floor-only       # the floor alone (about 20 s; builds no zoo entry)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling diagnostic_runs.py

TARGET_S = 15 * 60  # the whole tiny suite on an idle 2-core machine
SCALE = "tiny"
# The zoo Llama's MLP (hidden 256 -> 688) over a batch's positions: the matmul most of its FLOPs are.
RATE_SHAPE = (1024, 256, 688)


def zoo_names(studies: list[str]) -> list[str]:
    """Every zoo checkpoint a tiny arm of these studies loads."""
    from ablate import zoo
    from ablate.study.runner import prepare_study

    return sorted({name for study in studies for recipe in prepare_study(study, SCALE, seeds=1).recipes.values()
                   for name in zoo.zoo_names(recipe.model)})


def training_flops(studies: list[str]) -> dict[str, float]:
    """{study: FLOPs of the stages it trains}: its cells' and its diagnostics' runs, as `ablate plan`
    counts them, each stage once across the suite (the first study to train it pays for it)."""
    from ablate.plan.estimate import Planner, Settings
    from ablate.plan.gpus import DEFAULT_GPU, gpu
    from ablate.study.runner import prepare_study
    from diagnostic_runs import planned_jobs

    planner = Planner(Settings(gpu(DEFAULT_GPU), 1, 1.0))  # only FLOPs are read: the GPU plays no part
    counted: set[str] = set()
    flops: dict[str, float] = {}
    for name in studies:
        prepared = prepare_study(name, SCALE, seeds=1)
        base_dir = prepared.study.base_path(SCALE).resolve().parent
        recipes = [*prepared.recipes.values(), *(job.recipe for job in planned_jobs(name, "sqlite:///unused.db"))]
        flops[name] = 0.0
        for recipe in recipes:
            for stage in planner.plan(recipe, base_dir).stages:
                if stage.key not in counted and stage.flops_per_sample and stage.samples:
                    counted.add(stage.key)
                    flops[name] += stage.flops_per_sample * stage.samples
    return flops


def matmul_rate(threads: int, seconds: float = 2.0, dtype: str = "float32") -> float:
    """FLOP/s of torch matmuls of RATE_SHAPE in `dtype` on `threads` threads, best of a few timed rounds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows, inner, cols = RATE_SHAPE
    a, b = torch.randn(rows, inner, dtype=getattr(torch, dtype)), torch.randn(inner, cols, dtype=getattr(torch, dtype))
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(20):
            a @ b
        best = max(best, 20 * 2 * rows * inner * cols / (time.perf_counter() - started))
    torch.set_num_threads(before)
    return best


def print_floor(flops: dict[str, float], rate: float, threads: int) -> None:
    total = sum(flops.values())
    print(f"\ntraining floor: planned training FLOPs at {rate / 1e9:.0f} GFLOP/s ({threads} threads, "
          f"{' x '.join(map(str, RATE_SHAPE))} fp32 matmuls, load average {os.getloadavg()[0]:.1f}); "
          "evaluation not counted")
    for name, value in flops.items():
        print(f"{name:<18} {value / 1e12:7.1f} TFLOP {value / rate:7.0f} s")
    print(f"{'total':<18} {total / 1e12:7.1f} TFLOP {total / rate:7.0f} s  ({total / rate / 60:.1f} min; "
          f"target {TARGET_S / 60:.0f} min, floor/target {total / rate / TARGET_S:.2f})", flush=True)


def print_bf16_floor(flops: dict[str, float], rate: float, threads: int) -> None:
    """The same FLOPs at this machine's bf16 matmul rate: the floor if every stage trained with
    `precision: bf16` (autocast; the studies train fp32, and their figures were measured so)."""
    bf16 = matmul_rate(threads, dtype="bfloat16")
    floor = sum(flops.values()) / bf16
    print(f"at bf16 ({bf16 / 1e9:.0f} GFLOP/s, {bf16 / rate:.2f}x fp32): {floor:.0f} s ({floor / 60:.1f} min; "
          f"floor/target {floor / TARGET_S:.2f})", flush=True)


def run_suite(studies: list[str], workers: int, out: Path) -> dict[str, float]:
    """Each study as a user types it, one after another in `out`; {study: wall seconds}."""
    from ablate.study.discovery import available

    found = available()
    times: dict[str, float] = {}
    for name in studies:
        cmd = [sys.executable, "-m", "ablate.cli", "study", str(found.get(name, name)), "--scale", SCALE,
               "--seeds", "1", "--workers", str(workers), "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}"]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=out)  # the recipes' relative output_dir "runs" lands in `out`
        times[name] = time.perf_counter() - start
        print(f"== {name}: {times[name]:.0f} s (exit {done.returncode})", flush=True)
        if done.returncode != 0:
            sys.exit(done.returncode)
    return times


def print_times(times: dict[str, float], flops: dict[str, float], rate: float) -> None:
    total = sum(times.values())
    print("\nstudy              wall time   floor   floor/wall")
    for name, seconds in times.items():
        floor = flops[name] / rate
        print(f"{name:<18} {seconds:7.0f} s {floor:7.0f} s {floor / seconds:8.2f}")
    floor = sum(flops.values()) / rate
    print(f"{'total':<18} {total:7.0f} s {floor:7.0f} s {floor / total:8.2f}  ({total / 60:.1f} min; target "
          f"{TARGET_S / 60:.0f} min, ratio {total / TARGET_S:.2f})")


def main() -> None:
    from ablate.study.discovery import available
    from ablate.zoo import build, is_built

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="*", default=None, help="default: every study in studies/")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes per study (default 2)")
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--floor-only", action="store_true", help="print the training floor and stop")
    args = parser.parse_args()

    studies = args.studies or sorted(available())
    for name in zoo_names(studies):  # before planning: the plan tokenizes with the zoo tokenizers
        if args.floor_only:  # no builds for a figure: an unbuilt tokenizer's lengths are estimated
            if not is_built(name):
                print(f"zoo {name}: not built, so the plan estimates its lengths from words", flush=True)
            continue
        print(f"zoo {name}: building if needed (not timed)", flush=True)
        build(name)
    threads = os.cpu_count() or 1
    flops, rate = training_flops(studies), matmul_rate(threads)
    print_floor(flops, rate, threads)
    print_bf16_floor(flops, rate, threads)
    if args.floor_only:
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="ablate-tiny-suite-"))
    out.mkdir(parents=True, exist_ok=True)
    times = run_suite(studies, args.workers, out)
    print_times(times, flops, rate)
    print(f"{len(studies)} studies, --seeds 1 --workers {args.workers}; reports and runs under {out}")


if __name__ == "__main__":
    main()
