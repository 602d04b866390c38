"""Stored state whose JSON parses but says nonsense: a stage's meta.json with fields of the wrong
type (the weights' fingerprint does not cover them), a neighbouring stage's damaged meta, and a
run summary whose stages are not the recipe's. Each is named, never loaded or exported."""

from __future__ import annotations

import json
import shutil

import pytest

from bad_input_helpers import assert_rejected, cli, good_recipe, tiny_run, write


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One tiny finished run (a few seconds); each test damages its own copy of the output_dir."""
    root = tmp_path_factory.mktemp("stored")
    tiny_run.prepare_store(root)
    result = tiny_run.run_in_process(good_recipe(root))
    return root, result.run_dir.name, result.stages[0].key


@pytest.fixture
def copy(tmp_path, finished):
    """(recipe whose output_dir is a copy of the finished one, run folder, stage folder)."""
    root, run_name, key = finished
    shutil.copytree(root / "out", tmp_path / "out")
    tiny_run.prepare_store(tmp_path)
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    return recipe, tmp_path / "out" / run_name, tmp_path / "out" / "stages" / key


def edit_json(path, **fields):
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


@pytest.mark.parametrize("field, value", [
    ("metrics", "x"),
    ("metrics", {"final_loss": "low"}),
    ("turn_edges", [1]),
    ("steps", "many"),
    ("steps", True),
    ("inputs", "x"),
    ("run_id", 5),
    ("epoch_eval", {"key": [1]}),
])
def test_stage_meta_with_a_field_of_the_wrong_type(copy, capsys, field, value):
    recipe, _, stage = copy
    edit_json(stage / "meta.json", **{field: value})
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, stage / "meta.json", "delete", stage)


def test_neighbouring_stage_meta_with_inputs_that_are_not_an_object(copy, capsys):
    """A changed stage looks among its neighbours for the one it replaces: a damaged neighbour is
    passed over there (and named when its own key is asked for), not a crash."""
    recipe, _, stage = copy
    edit_json(stage / "meta.json", inputs="x")
    code, out = cli(capsys, "validate", recipe, "--plan", "-s", "stages.0.lr=0.002")
    assert code == 0 and "Traceback" not in out, out
    assert "Train" in out


@pytest.mark.parametrize("stages, words", [
    ([], ["lists the stages []", "['align']"]),
    ([{"name": "other", "key": "0123456789abcdef"}], ["['other']", "['align']"]),
    ([{"name": "align", "key": "../../elsewhere"}], ["no list of stages with keys"]),
    ([{"name": "align", "key": ""}], ["no list of stages with keys"]),
])
def test_run_summary_whose_stages_are_not_the_recipes(copy, capsys, tmp_path, stages, words):
    """An export would otherwise build the model and load no trained weights (or weights from
    outside the store): an untrained connector written out as the run's."""
    _, run_dir, _ = copy
    edit_json(run_dir / "summary.json", stages=stages)
    code, out = cli(capsys, "export", run_dir, tmp_path / "exported")
    assert_rejected(code, out, run_dir / "summary.json", *words)
    assert not (tmp_path / "exported").exists()


@pytest.mark.parametrize("harm", ["stage-is-a-file", "stages-is-a-file", "lock-is-a-folder"])
def test_stage_folder_of_the_wrong_kind(copy, capsys, harm):
    """A stages/ entry that is a file (or a lock that is a folder) is named, not an OSError."""
    recipe, _, stage = copy
    if harm == "lock-is-a-folder":
        (stage / ".lock").unlink(missing_ok=True)
        (stage / ".lock").mkdir()
        blocker = stage / ".lock"
    else:
        blocker = stage if harm == "stage-is-a-file" else stage.parent
        shutil.rmtree(blocker)
        blocker.write_text("not a folder")
    assert_rejected(*cli(capsys, "run", recipe), f"stored stage {stage} cannot be used", f"delete {blocker}")


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("harm, name", [
    ("truncated", "model.safetensors"), ("missing", "model.safetensors"), ("flipped", "model.safetensors"),
    ("flipped", "optimizer.pt"), ("flipped", "trainer_state.json"),
])
def test_resume_from_a_checkpoint_whose_files_are_damaged(copy, capsys, harm, name):
    """--resume names the damaged checkpoint when it plans, before anything trains or loads: the
    manifest its save wrote catches even one flipped bit in weights or optimizer state."""
    recipe, _, stage = copy
    (stage / "meta.json").unlink()
    (stage / "weights.safetensors").unlink()
    checkpoint = max((stage / "checkpoints").glob("checkpoint-*"))
    target = checkpoint / name
    {"truncated": lambda: target.write_bytes(target.read_bytes()[:100]), "missing": target.unlink,
     "flipped": lambda: _flip_a_byte(target)}[harm]()
    code, out = cli(capsys, "run", recipe, "--resume")
    assert_rejected(code, out, f"checkpoint {checkpoint} is damaged: {name}", "delete it to resume from")


def test_a_checkpoint_saved_without_a_manifest_still_has_its_weights_checked(copy, capsys):
    """A checkpoint an older ablate saved has no manifest: it gets one, and weights that do not
    open as safetensors are still named."""
    recipe, _, stage = copy
    (stage / "meta.json").unlink()
    (stage / "weights.safetensors").unlink()
    checkpoint = max((stage / "checkpoints").glob("checkpoint-*"))
    (checkpoint / "manifest.json").unlink()
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, out = cli(capsys, "run", recipe, "--resume")
    assert_rejected(code, out, f"checkpoint {weights} cannot be read", f"delete {checkpoint}")
    assert (checkpoint / "manifest.json").is_file()


@pytest.mark.parametrize("content", [b"hello, not a database" * 50, "truncated"])
def test_damaged_mlflow_store(copy, capsys, tmp_path, content):
    """A sqlite store MLflow cannot read is named before the run writes its folder."""
    recipe, run_dir, _ = copy
    db = tmp_path / "mlflow.db"
    db.write_bytes(content if isinstance(content, bytes) else db.read_bytes()[:1000])
    shutil.rmtree(run_dir)
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, f"MLflow store {db}", "not a sound sqlite database")
    assert not run_dir.exists()
