"""Stage plumbing without training: checkpoint choice, loss bookkeeping, DeepSpeed configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.errors import AblateError
from ablate.train.callbacks import stage_losses
from ablate.train.stage import deepspeed_config, last_complete_checkpoint

import tiny_run


def _checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"")
    if complete:
        (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 10}))
    return path


def test_last_complete_checkpoint_skips_one_cut_off_while_written(tmp_path):
    assert last_complete_checkpoint(tmp_path / "absent") is None
    _checkpoint(tmp_path, 2)
    ten = _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 4)  # numeric order, not name order: 10 > 4
    _checkpoint(tmp_path, 12, complete=False)  # killed before trainer_state.json was written
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == ten


def test_stage_losses_cover_every_step_across_a_resume():
    history = [
        {"loss": 4.0, "step": 1}, {"loss": 3.0, "step": 3},  # steps 2-3 averaged 3.0
        {"loss": 2.0, "step": 4},  # checkpoint at step 4
        {"loss": 2.0, "step": 4},  # a resumed run does not log step 4 again, but must not count it twice
        {"loss": 1.0, "step": 6},
        {"train_loss": 9.9, "step": 6},  # Trainer's own, covering only the resumed part: ignored
    ]
    got = stage_losses(history)
    assert got["final_loss"] == 1.0
    assert got["mean_loss"] == pytest.approx((4.0 + 3.0 * 2 + 2.0 + 1.0 * 2) / 6)
    assert stage_losses([{"train_runtime": 1.0}]) == {}


def _stage(**fields):
    recipe = tiny_run.load(tiny_run.recipe(Path("/tmp/unused"), [tiny_run.stage("s", **fields)], eval=False))
    return recipe.stages[0]


def test_deepspeed_config_resolves_shipped_names_paths_and_dicts(tmp_path):
    shipped = Path(deepspeed_config(_stage(deepspeed="zero2.json"), None))
    assert shipped.name == "zero2.json" and json.loads(shipped.read_text())["zero_optimization"]["stage"] == 2
    assert json.loads(Path(deepspeed_config(_stage(deepspeed="zero3.json"), None)).read_text())["zero_optimization"]["stage"] == 3
    # a file next to the recipe wins over the shipped one of the same name
    (tmp_path / "zero2.json").write_text("{}")
    assert deepspeed_config(_stage(deepspeed="zero2.json"), tmp_path) == str(tmp_path / "zero2.json")
    inline = {"zero_optimization": {"stage": 2}}
    assert deepspeed_config(_stage(deepspeed=inline), None) == inline
    assert deepspeed_config(_stage(), None) is None
    with pytest.raises(AblateError, match=r"stages\.s\.deepspeed: config file 'zero9.json' not found"):
        deepspeed_config(_stage(deepspeed="zero9.json"), tmp_path)
