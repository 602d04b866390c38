"""Tiny recipes for run/train tests: zoo models, a few easy-VQA images, a handful of steps.

Every recipe writes to its own `output_dir` and its own sqlite MLflow store under `root`, so
tests never share state. `write_recipe` returns the YAML path (for the CLI and subprocesses).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml

REPO = Path(__file__).resolve().parents[2]

MODEL = {
    "encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip", "feature_layer": -2, "select": "patch"},
    "connector": {"type": "mlp", "depth": 2, "activation": "gelu"},
    "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"},
}


def easy_vqa(style: str = "caption", images: int = 8, split: str = "train", **extra: Any) -> dict[str, Any]:
    return {"type": "easy_vqa", "split": split, "style": style, "images_limit": images, **extra}


def stage(name: str, source: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "data": {"type": "inline", "sources": [{"source": source or easy_vqa()}]},
        "template": "plain",
        "trainable": {"encoder": "frozen", "connector": "full", "llm": "frozen"},
        "lr": 1.0e-3,
        "max_steps": 3,
        "batch_size": 2,
        "logging_steps": 1,
        "max_length": 128,
        "scheduler": "linear",
    }
    base.update(fields)
    return base


def recipe(root: Path, stages: list[dict[str, Any]] | None = None, *, eval: bool | dict = True, **top: Any) -> dict[str, Any]:
    """A recipe dict writing to `root/out` and tracking in `root/mlflow.db` (made ready now)."""
    prepare_store(root)
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 42,
        "output_dir": str(root / "out"),
        "model": copy.deepcopy(MODEL),
        "stages": stages if stages is not None else [stage("align")],
        "tracking": {"tracking_uri": tracking_uri(root), "experiment": "tests"},
    }
    if eval:
        data["eval"] = eval if isinstance(eval, dict) else {
            "data": easy_vqa("qa", images=2, split="test", limit=4),
            "evaluator": "exact_match", "max_new_tokens": 3, "batch_size": 4,
        }
    data.update(top)
    return data


# An MLflow sqlite store with its tables made (the conftest sets it once per session): a fresh
# store spends seconds on its schema migrations.
MLFLOW_TEMPLATE: Path | None = None


def prepare_store(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    db = root / "mlflow.db"
    if MLFLOW_TEMPLATE is not None and not db.exists():
        shutil.copyfile(MLFLOW_TEMPLATE, db)


def session_setup(tmp_path_factory) -> Iterator[None]:
    """Body of the run/train conftests' session fixture: one torch thread (the machine is
    shared; more threads only contend) and the MLflow store template."""
    import torch

    torch.set_num_threads(1)
    global MLFLOW_TEMPLATE
    MLFLOW_TEMPLATE = make_store_template(tmp_path_factory.mktemp("mlflow-template"))
    yield
    MLFLOW_TEMPLATE = None


def make_store_template(folder: Path) -> Path:
    import mlflow

    path = folder / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def tracking_uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow.db'}"


def write_recipe(root: Path, data: dict[str, Any], name: str = "recipe.yaml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(data: dict[str, Any]):
    from ablate.recipe.loading import recipe_from_dict

    return recipe_from_dict(data)


def run_in_process(data: dict[str, Any], **kwargs: Any):
    from ablate.run.runner import run_recipe

    return run_recipe(load(data), **kwargs)


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for `python -m ablate.cli` subprocesses: offline, one thread, same ABLATE_HOME."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def ablate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ablate.cli", *args]


def run_cli(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(ablate_cmd(*args), cwd=REPO, env=cli_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def stage_weights(output_dir: Path, key: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(output_dir / "stages" / key / "weights.safetensors"))


def stage_keys(data: dict[str, Any], world_size: int = 1) -> list[str]:
    """The recipe's content stage keys, its zoo checkpoints built first (keys cover their files)."""
    from ablate.run.plan import current_stage_keys
    from ablate.zoo import build, zoo_names

    recipe = load(data)
    for name in zoo_names(recipe.model):
        build(name)
    return current_stage_keys(recipe, world_size=world_size)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(root: Path, data: dict[str, Any], nproc: int = 2, **env: str):
    """`torchrun --nproc_per_node=N -m ablate.cli run RECIPE`; returns (MLflow client, the one run)."""
    from mlflow import MlflowClient

    path = write_recipe(root, data)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}",
           "-m", "ablate.cli", "run", str(path)]
    proc = subprocess.run(cmd, cwd=REPO, env=cli_env(DS_BUILD_OPS="0", **env), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    client = MlflowClient(tracking_uri(root))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, "only rank 0 logs"
    assert runs[0].info.status == "FINISHED"
    return client, runs[0]
