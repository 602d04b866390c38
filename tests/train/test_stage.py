"""Stage plumbing without training: checkpoint choice, loss bookkeeping, DeepSpeed configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.errors import AblateError, RecipeError
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


def _filled_clipping(stage, base_dir=None):
    """gradient_clipping as transformers hands it to DeepSpeed for this stage."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from ablate.train.stage import deepspeed_settings, training_arguments

    try:
        args = training_arguments(stage, 1, Path("/tmp/unused-ds"), deepspeed_settings(stage, base_dir))
        return args.hf_deepspeed_config.config["gradient_clipping"]
    finally:
        unset_hf_deepspeed_config()  # the global "DeepSpeed is on" flag must not reach other tests


def test_max_grad_norm_alone_decides_deepspeed_clipping(tmp_path):
    from deepspeed.runtime.config import get_gradient_clipping

    from ablate.train.stage import deepspeed_settings

    for name in ("zero2.json", "zero3.json"):
        assert deepspeed_settings(_stage(deepspeed=name), None)["gradient_clipping"] == "auto"
        assert _filled_clipping(_stage(deepspeed=name)) == 1.0  # the default, as the tiny recipes measured
        assert _filled_clipping(_stage(deepspeed=name, max_grad_norm=None)) == 0.0
    # LLaVA's configs have no gradient_clipping: no clipping to the DeepSpeed LLaVA used, 1.0 to
    # this one. It is filled from max_grad_norm all the same, so the stage decides.
    llava = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}
    assert get_gradient_clipping(llava) == 1.0
    filled = _filled_clipping(_stage(deepspeed=llava, max_grad_norm=None))
    assert filled == 0.0 and get_gradient_clipping({**llava, "gradient_clipping": filled}) == 0.0
    assert _filled_clipping(_stage(deepspeed={**llava, "gradient_clipping": 0.5}, max_grad_norm=0.5)) == 0.5


def test_deepspeed_clipping_that_contradicts_max_grad_norm_is_refused(tmp_path):
    from ablate.recipe.loading import recipe_from_dict
    from ablate.train.stage import deepspeed_settings

    (tmp_path / "clip.json").write_text(json.dumps({"gradient_clipping": 1.0, "zero_optimization": {"stage": 2}}))
    with pytest.raises(AblateError, match=r"stages\.s\.deepspeed \(.*clip\.json\): gradient_clipping 1\.0 contradicts "
                                          r"the stage's max_grad_norm \(None\); set it to \"auto\" or leave it out"):
        deepspeed_settings(_stage(deepspeed="clip.json", max_grad_norm=None), tmp_path)
    assert deepspeed_settings(_stage(deepspeed="clip.json"), tmp_path)["gradient_clipping"] == "auto"  # 1.0 = 1.0
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(AblateError, match=r"stages\.s\.deepspeed \(.*broken\.json\): not a readable JSON file"):
        deepspeed_settings(_stage(deepspeed="broken.json"), tmp_path)
    inline = tiny_run.recipe(tmp_path, [tiny_run.stage("s", deepspeed={"gradient_clipping": 2.0}, max_grad_norm=0)])
    with pytest.raises(RecipeError, match=r"stages\.0: deepspeed: gradient_clipping 2\.0 contradicts the stage's "
                                          r"max_grad_norm \(None\)"):
        recipe_from_dict(inline)  # an inline config is checked with the recipe
