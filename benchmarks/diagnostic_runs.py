"""A study's diagnostic runs one after another against side by side on two slots.

After its cells, `ablate study NAME --workers K` runs the diagnostics' extra runs side by side on
the workers' slots (spawned processes) where each worker has its own GPUs, and one after another
in the study's process, with all the machine's threads, where there are none. This script
measures that choice on CPU: it plans the runs a tiny study's diagnostics make (from the study's
recipes at `--seeds 1`, as `ablate study` plans them), then runs them both ways, one after
another with `--threads` (default: every CPU) and side by side on `--slots` processes that split
those threads, each way in its own folder with an empty stage store and its own MLflow database.
It prints each run's eval metrics both ways, both wall times and their ratio. The zoo
checkpoints are built first and not timed.

    python benchmarks/diagnostic_runs.py                      # llm_scale: 2 runs at 2 epochs
    python benchmarks/diagnostic_runs.py --study data_types   # 4 runs

The last printed line is `ratio <one after another / side by side>`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

SCALE = "tiny"


def planned_jobs(study_name: str, tracking_uri: str):
    """The diagnostics' runs of the study at tiny scale with one seed, as `ablate study` would plan
    them once its cells are done (a diagnostic plans from the cells' recipes)."""
    from ablate.study.diagnostics.run import context, pending_jobs
    from ablate.study.runner import prepare_study

    prepared = prepare_study(study_name, SCALE, seeds=1)
    ctx = context(prepared.study, SCALE, [], prepared.recipes, [])
    return pending_jobs(ctx, prepared.label, recipe_path=prepared.study.base_path(SCALE), tracking_uri=tracking_uri,
                        parent_run_id=None)


def one_after_another(study_name: str, folder: Path, threads: int) -> tuple[float, dict[str, float]]:
    """Every run in this process with all `threads` (how the diagnostics ran before)."""
    from ablate.study.cell import import_run_fn
    from ablate.study.diagnostics.run import run_here
    from ablate.study.worker import DEFAULT_RUN_FN
    from ablate.threads import ThreadChoice, apply_threads

    print(f"one after another: {apply_threads(ThreadChoice(threads, '--threads')).line()}", flush=True)
    jobs = planned_jobs(study_name, f"sqlite:///{folder / 'mlflow.db'}")
    started = time.perf_counter()
    run_here(jobs, import_run_fn(DEFAULT_RUN_FN), say)
    return time.perf_counter() - started, objectives(folder)


def side_by_side(study_name: str, folder: Path, slots: int, threads: int) -> tuple[float, dict[str, float]]:
    """Every run on `slots` spawned processes, each with its share of the `threads`."""
    from ablate.study.diagnostics.pool import Slots, run_jobs
    from ablate.study.worker import DEFAULT_RUN_FN
    from ablate.threads import ENV

    jobs = planned_jobs(study_name, f"sqlite:///{folder / 'mlflow.db'}")
    envs = [{ENV: str(max(1, threads // slots))} for _ in range(slots)]
    print(f"side by side: {slots} slots, {envs[0] or 'threads as set'}", flush=True)
    started = time.perf_counter()
    run_jobs(jobs, Slots(envs, folder / "workers", DEFAULT_RUN_FN), say)
    return time.perf_counter() - started, objectives(folder)


def say(line: str) -> None:
    from rich.console import Console

    Console().print(f"  {line}", highlight=False)


def objectives(folder: Path) -> dict[str, dict[str, float]]:
    """Each finished run's eval metrics, by run name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, filter_string="attributes.status = 'FINISHED'")
    return {run.info.run_name: {k: v for k, v in run.data.metrics.items() if k.startswith("eval/")} for run in runs}


def in_folder(folder: Path, measure):
    """`measure` with the working folder at `folder` (the recipes' output_dir "runs" lands there)."""
    folder.mkdir(parents=True)
    before = Path.cwd()
    os.chdir(folder)
    try:
        return measure(folder)
    finally:
        os.chdir(before)


def main() -> None:
    from ablate import zoo
    from ablate.study.runner import prepare_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="llm_scale")
    parser.add_argument("--slots", type=int, default=2, help="side-by-side processes (default 2, one per core)")
    parser.add_argument("--out", default=None, help="output folder (default: a new temporary folder)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads of the one-after-another runs, split between the slots (default: every CPU)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="ablate-diagnostic-runs-"))
    recipes = prepare_study(args.study, SCALE, seeds=1).recipes.values()
    for name in sorted({n for recipe in recipes for n in zoo.zoo_names(recipe.model)}):
        print(f"zoo {name}: building if needed (not timed)", flush=True)
        zoo.build(name)
    serial_s, serial = in_folder(out / "one-after-another",
                                 lambda folder: one_after_another(args.study, folder, args.threads))
    side_s, side = in_folder(out / "side-by-side",
                             lambda folder: side_by_side(args.study, folder, args.slots, args.threads))
    print(f"\n{'run':<80} {'one after another':>18} {'side by side':>14}")
    for name in sorted(serial):
        for key, value in sorted(serial[name].items()):
            print(f"{name + ' ' + key:<80} {value:18.4f} {side.get(name, {}).get(key, float('nan')):14.4f}")
    print(f"{'wall time (s)':<80} {serial_s:18.0f} {side_s:14.0f}")
    print(f"{args.study}: {len(serial)} diagnostic runs; folders under {out}")
    print(f"ratio {serial_s / side_s:.2f}")


if __name__ == "__main__":
    main()
