"""A deliberately tiny study for the launcher tests: one arm, one seed, one 3-step stage on
zoo models, eval on 4 questions; written into a temp folder with its own MLflow store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "run"))

import tiny_run  # noqa: E402


def write_study(root: Path, *, batch_size: int, stage_fields: dict[str, Any] | None = None) -> Path:
    """studies/tiny_cell.yaml over recipes/base.yaml under `root`: a study of one cell."""
    stage = tiny_run.stage("align", tiny_run.easy_vqa(images=8), batch_size=batch_size, max_steps=3,
                           **(stage_fields or {}))
    base = tiny_run.recipe(root, [stage], name="tiny_cell")
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "studies").mkdir(exist_ok=True)
    (root / "recipes" / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    study = {
        "description": "One cell, for the launcher tests.",
        "scales": {"tiny": {"base": "../recipes/base.yaml", "seeds": 1}},
        "direction": "maximize",
        "axes": [{"name": "depth", "path": "model.connector.depth", "arms": [{"label": "d2", "value": 2}]}],
        "baseline": "d2",
    }
    path = root / "studies" / "tiny_cell.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def study_cmd(path: Path, *args: str) -> list[str]:
    return tiny_run.ablate_cmd("study", str(path), "--scale", "tiny", "--seeds", "1", *args)


def env(**extra: str) -> dict[str, str]:
    return tiny_run.cli_env(DS_BUILD_OPS="0", **extra)


def ranked_fake_run(recipe, *, tags=None, **kwargs):
    """study_fakes.fake_run on rank 0 of a job whose ranks first sum a tensor together (so the
    job really is one process group); the run is tagged with the world size and that sum."""
    import torch
    import torch.distributed as dist

    from ablate.ranks import ranks
    from study_fakes import fake_run

    state = ranks()
    total = torch.ones(1)
    dist.all_reduce(total)
    tags = {**(tags or {}), "ablate.world_size": str(state.num_processes), "test.rank_sum": str(int(total.item()))}
    return fake_run(recipe, tags=tags, **kwargs) if state.is_main_process else None
