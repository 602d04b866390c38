"""Multi-node cell jobs without a scheduler: node 0 claims, the other nodes follow.

    node 0:    ablate study NAME --nproc-per-node 8 --nnodes 4 --rdzv-endpoint node0:29500
    node 1-3:  ablate study NAME --nproc-per-node 8 --nnodes 4 --rdzv-endpoint node0:29500 --node-rank K

Node 0 runs the study's worker: it claims each cell, writes the cell's files into the study
folder (on the shared filesystem) and posts the job in `<study folder>/cells/job.json` before
it starts its own torchrun. The other nodes never touch the queue: they watch that file and
start torchrun with the same cell command and rendezvous id, and c10d's rendezvous joins the
nodes into one job. When the job ends node 0 marks it ended, and when the queue is empty it
posts `done`, and the other nodes stop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ablate.paths import write_text_whole
from ablate.study.launch import LaunchOptions, TorchrunLauncher, wait_for

JOB_FILE = "job.json"


def _job_file(folder: Path) -> Path:
    return folder / "cells" / JOB_FILE


def _post(folder: Path, data: dict[str, Any]) -> None:
    path = _job_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_whole(path, json.dumps({**data, "posted": time.time()}, indent=2))


def post_job(folder: Path, name: str, argv: list[str], log_dir: Path) -> None:
    _post(folder, {"state": "running", "name": name, "argv": argv, "log_dir": str(log_dir)})


def post_ended(folder: Path, name: str) -> None:
    _post(folder, {"state": "ended", "name": name})


def post_done(folder: Path) -> None:
    _post(folder, {"state": "done"})


def _read(folder: Path) -> dict[str, Any]:
    try:
        return json.loads(_job_file(folder).read_text())
    except (OSError, ValueError):
        return {}


def follow(folder: Path, options: LaunchOptions, node_rank: int, *, poll_s: float = 1.0, say=print) -> int:
    """Join node 0's cell jobs until it posts `done` (after this node started); returns how many."""
    started, joined, seen = time.time(), 0, set()
    say(f"node {node_rank}: following the cell jobs node 0 posts in {_job_file(folder)}")
    while True:
        post = _read(folder)
        if post.get("state") == "done" and post.get("posted", 0) > started:
            say(f"node {node_rank}: node 0's queue is empty; joined {joined} cell job(s)")
            return joined
        if post.get("state") == "running" and post["name"] not in seen:
            seen.add(post["name"])
            launcher = TorchrunLauncher(options.nproc_per_node or 1, nnodes=options.nnodes,
                                        rdzv_endpoint=options.rdzv_endpoint, rdzv_id=post["name"])
            log = Path(post["log_dir"]) / f"job-node{node_rank}.log"
            say(f"node {node_rank}: joining {post['name']} (log {log})")
            job = launcher.launch(post["argv"], env={**os.environ, "PYTHONUNBUFFERED": "1"}, log_path=log,
                                  name=post["name"])
            code = wait_for(job, poll_s)  # node 0 records the cell; this node only takes part
            say(f"node {node_rank}: {post['name']} exited with {code}")
            joined += 1
            continue
        time.sleep(poll_s)
