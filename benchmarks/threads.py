"""Thread counts on a shared machine: torch's default (one per core) against ablate's choice.

Times two jobs, each as its own `ablate` process, with `--threads 2` (torch's default on a
2-core machine) and with the count ablate chooses (no `--threads`), first as the machine is, then
beside one busy process (`python -c 'while True: pass'`, started and stopped here):

- zoo: `ablate zoo build tiny-llama-easyvqa` in a fresh ABLATE_HOME, with its language
  pretraining cut to `--steps` steps (the full build runs 1,000; `--steps 1000` times it whole);
- run: `ablate run recipes/tiny_easyvqa.yaml` with each stage cut to `--run-steps` steps and the
  eval to `--eval-items` items, stages trained afresh (`--no-reuse`), zoo checkpoints prebuilt.

Prints one line per job with its wall time, the count and reason ablate printed, and the
1-minute load average before and after.

    python benchmarks/threads.py                    # about 10 to 30 minutes, depending on the load
    python benchmarks/threads.py --steps 1000 --only zoo
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO_ENTRY = "tiny-llama-easyvqa"


def zoo_proxy(steps: int) -> None:
    """In this process: build the zoo Llama with `steps` pretraining steps (ABLATE_HOME is fresh)."""
    from dataclasses import replace

    from ablate import zoo
    from ablate.cli import main

    spec = zoo.ZOO[ZOO_ENTRY]
    zoo.ZOO[ZOO_ENTRY] = replace(spec, pretrain={**spec.pretrain, "steps": steps})
    sys.exit(main(["zoo", "build", ZOO_ENTRY, *sys.argv[sys.argv.index("--") + 1:]]))


def job_command(job: str, args, out: Path) -> list[str]:
    if job == "zoo":
        return [sys.executable, __file__, "--zoo-proxy", str(args.steps), "--"]
    return [sys.executable, "-m", "ablate.cli", "run", str(REPO / "recipes" / "tiny_easyvqa.yaml"), "--no-reuse",
            "-s", f"output_dir={out / 'runs'}", "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}",
            "-s", f"stages.0.max_steps={args.run_steps}", "-s", f"stages.1.max_steps={args.run_steps}",
            "-s", f"eval.limit={args.eval_items}"]


def timed_job(job: str, threads: str, args, home: Path) -> str:
    out = Path(tempfile.mkdtemp(prefix=f"threads-{job}-"))
    env = {k: v for k, v in os.environ.items() if k not in ("ABLATE_THREADS", "OMP_NUM_THREADS")}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               ABLATE_HOME=str(out / "home") if job == "zoo" else str(home))
    cmd = job_command(job, args, out) + ([] if threads == "chosen" else ["--threads", threads])
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=out, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{job} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    said = re.search(r"threads: (\d+) \(([^)]*)\)", done.stdout)
    return (f"{job:<4} {threads:>6}: {seconds:7.1f} s  threads {said.group(1)} ({said.group(2)})  "
            f"load {load:.2f} -> {os.getloadavg()[0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="zoo pretraining steps (full build: 1000)")
    parser.add_argument("--run-steps", type=int, default=20, help="steps per stage of the tiny run")
    parser.add_argument("--eval-items", type=int, default=300, help="eval items of the tiny run")
    parser.add_argument("--only", choices=["zoo", "run"], default=None)
    parser.add_argument("--zoo-proxy", type=int, default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.zoo_proxy is not None:
        zoo_proxy(args.zoo_proxy)
    from ablate.zoo import build, zoo_names
    from ablate.recipe.loading import load_recipe

    home = Path(os.environ.get("ABLATE_HOME") or Path.home() / ".cache" / "ablate")
    for name in zoo_names(load_recipe(REPO / "recipes" / "tiny_easyvqa.yaml").model):
        build(name)  # the run's checkpoints, not timed
    jobs = [args.only] if args.only else ["zoo", "run"]
    print(f"{len(os.sched_getaffinity(0))} CPUs", flush=True)
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(5 if busy else 0)
            print("beside a busy process" if busy else "as the machine is", flush=True)
            for job in jobs:
                for threads in ("2", "chosen"):
                    print("  " + timed_job(job, threads, args, home), flush=True)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()


if __name__ == "__main__":
    main()
