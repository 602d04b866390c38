"""Stage reuse is keyed on content: an edited data file, a checkpoint rebuilt at the same path, a
changed tokenizer or another world size retrains the stage, and the run says why; corrupted
stored state is named and never loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import tiny_run

CAPTIONS = ["It is red.", "It is green.", "It is blue.", "It is yellow."]


def _llava_json(root: Path) -> Path:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    records = []
    for i, caption in enumerate(CAPTIONS):
        Image.new("RGB", (64, 64), caption.split()[-1].rstrip(".")).save(root / "images" / f"{i}.png")
        records.append({"id": f"s{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is this?"}, {"from": "gpt", "value": caption}]})
    path = root / "chat.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def _local_llm(root: Path) -> Path:
    """A copy of the zoo's tiny Llama in a folder of its own, as a downloaded checkpoint would be."""
    from ablate.zoo import build

    return Path(shutil.copytree(build("tiny-llama"), root / "llama"))


def _recipe(root: Path, llm: Path | None = None) -> dict:
    chat = root / "data" / "chat.json"
    if not chat.exists():
        _llava_json(root / "data")
    source = {"type": "llava_json", "path": str(chat), "image_root": str(root / "data" / "images")}
    data = tiny_run.recipe(root, [tiny_run.stage("align", source, max_steps=2)], eval=False)
    if llm is not None:
        data["model"]["llm"]["name_or_path"] = str(llm)
    return data


def _plan(data: dict, world_size: int = 1):
    from ablate.run.plan import plan_stages
    from ablate.run.stage_store import StageStore

    recipe = tiny_run.load(data)
    return plan_stages(recipe, store=StageStore(Path(recipe.output_dir) / "stages"), world_size=world_size)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run that the read-only tests below plan against (they restore what they break)."""
    root = tmp_path_factory.mktemp("trained")
    data = _recipe(root)
    return root, data, tiny_run.run_in_process(data)


def test_an_edited_caption_retrains_the_stage_and_the_summary_names_the_file(tmp_path):
    data = _recipe(tmp_path)
    first = tiny_run.run_in_process(data)
    assert first.stages[0].reused_from is None and first.stages[0].why == "not trained before"
    assert type(_plan(data).stages[0].action).__name__ == "Reuse"

    chat = tmp_path / "data" / "chat.json"
    chat.write_text(chat.read_text().replace("It is green.", "It is lime."))  # same path, edited in place
    second = tiny_run.run_in_process(data)

    stage = second.stages[0]
    assert stage.reused_from is None and stage.key != first.stages[0].key
    assert stage.why == f"data changed: {chat}"
    assert tiny_run.summary(second.run_dir)["stages"][0]["why"] == f"data changed: {chat}"


def test_a_checkpoint_rebuilt_at_the_same_path_or_a_new_tokenizer_retrains(tmp_path):
    from safetensors.torch import load_file, save_file

    llm = _local_llm(tmp_path)
    data = _recipe(tmp_path, llm)
    first = tiny_run.run_in_process(data)
    assert type(_plan(data).stages[0].action).__name__ == "Reuse"

    # Other weights, same folder, same file names and sizes (a rebuilt or re-downloaded checkpoint).
    weights = llm / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v + 0.01 for k, v in state.items()}, str(weights), metadata={"format": "pt"})
    second = tiny_run.run_in_process(data)
    assert second.stages[0].reused_from is None and second.stages[0].key != first.stages[0].key
    assert second.stages[0].why == "checkpoint changed: llm"

    config = json.loads((llm / "tokenizer_config.json").read_text())
    (llm / "tokenizer_config.json").write_text(json.dumps({**config, "clean_up_tokenization_spaces": True}))
    assert _plan(data).stages[0].action.why == "tokenizer changed"


def test_another_world_size_changes_the_global_batch_and_the_key(trained):
    _, data, _ = trained
    entry = _plan(data, world_size=2).stages[0]
    assert type(entry.action).__name__ == "Train"
    assert entry.action.why == "global batch changed: 2 -> 4 (world size 1 -> 2)"
    assert entry.inputs.global_batch == 4


def test_image_preparation_clipping_and_tf32_change_the_key_dataloader_workers_do_not(trained):
    import copy

    _, data, _ = trained
    stored = _plan(data).stages[0]
    assert type(stored.action).__name__ == "Reuse"
    for field, value in [("image_aspect_ratio", "pad"), ("max_grad_norm", None), ("tf32", True),
                         ("dataloader_workers", 4)]:
        changed = copy.deepcopy(data)
        changed["stages"][0][field] = value
        entry = _plan(changed).stages[0]
        assert (entry.key == stored.key) == (field == "dataloader_workers"), field
        assert type(entry.action).__name__ == ("Reuse" if field == "dataloader_workers" else "Train"), field


def test_validate_plan_prints_the_plan_without_training(tmp_path, trained):
    fresh = tiny_run.write_recipe(tmp_path, _recipe(tmp_path))
    before = tiny_run.run_cli("validate", "--plan", str(fresh), COLUMNS="250")
    assert before.returncode == 0, before.stderr
    assert "Train" in before.stdout and "not trained before" in before.stdout
    assert not (tmp_path / "out" / "stages").exists()  # planning stores nothing
    root, data, _ = trained
    after = tiny_run.run_cli("validate", "--plan", str(tiny_run.write_recipe(root, data)), COLUMNS="250")
    assert "Reuse" in after.stdout and "identical stage trained by run" in after.stdout


DAMAGES = ["truncate weights", "flip weight bytes", "garble meta", "meta not an object", "meta without fingerprint"]


def _damage(folder: Path, damage: str) -> Path:
    weights, meta = folder / "weights.safetensors", folder / "meta.json"
    if damage == "truncate weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "flip weight bytes":
        raw = bytearray(weights.read_bytes())
        raw[-8:] = bytes(b ^ 0xFF for b in raw[-8:])
        weights.write_bytes(bytes(raw))
    elif damage == "garble meta":
        meta.write_bytes(b"\xff\xfe{ not json")
    elif damage == "meta not an object":
        meta.write_text("[1, 2]")
    else:
        meta.write_text(json.dumps({k: v for k, v in json.loads(meta.read_text()).items() if k != "weights_fingerprint"}))
    return meta if damage in ("garble meta", "meta not an object") else weights


def test_corrupted_stored_stage_is_named_and_never_loaded(tmp_path, trained):
    from ablate.run.stage_store import StoredStateError

    root, data, result = trained
    folder = root / "out" / "stages" / result.stages[0].key
    pristine = Path(shutil.copytree(folder, tmp_path / "pristine"))
    try:
        for damage in DAMAGES:
            named = _damage(folder, damage)
            with pytest.raises(StoredStateError, match=str(named)):
                _plan(data)
            _restore(pristine, folder)
        # Through the CLI: one message naming the file, exit 2, nothing trained over it.
        _damage(folder, "truncate weights")
        proc = tiny_run.run_cli("run", str(tiny_run.write_recipe(root, data)))
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and str(folder) in proc.stderr.replace("\n", "")
    finally:
        _restore(pristine, folder)


def _restore(pristine: Path, folder: Path) -> None:
    shutil.rmtree(folder)
    shutil.copytree(pristine, folder)


def test_corrupted_resume_state_is_named(trained):
    root, data, result = trained
    state = result.run_dir / "state.json"
    kept = state.read_text()
    try:
        state.write_text('{"mlflow_run_id": ')
        proc = tiny_run.run_cli("run", "--resume", str(tiny_run.write_recipe(root, data)))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "--resume state file" in proc.stderr and "state.json" in proc.stderr
    finally:
        state.write_text(kept)


def test_a_run_that_reuses_its_stage_reports_the_trainable_counts_of_the_run_that_trained_it(trained):
    root, data, first = trained
    again = tiny_run.run_in_process(data)
    assert again.stages[0].reused_from == first.run_id
    assert again.parameter_counts == first.parameter_counts
    assert first.parameter_counts["llm"]["trainable"] == 0  # the stage kept the LLM frozen
