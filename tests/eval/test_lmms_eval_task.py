"""`ablate data lmms-task`: a recipe's eval data as an lmms-eval task (ablate.eval.lmms_eval_task)
whose documents are scored by ablate's evaluator through ablate.eval.lmms_docs, exactly as
ablate's own evaluation scores the same answers. (tests/run/test_lmms_*.py run the tasks.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ablate.cli import main
from ablate.eval import lmms_docs
from ablate.registry import registries

REPO = Path(__file__).resolve().parents[2]
EASYVQA = REPO / "recipes" / "tiny_easyvqa.yaml"
SCIENCEQA = REPO / "recipes" / "tiny_scienceqa.yaml"


def _write(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["data", "lmms-task", *map(str, args)])
    out, err = capsys.readouterr()
    return code, re.sub(r"\s+", " ", out), re.sub(r"\s+", " ", err)


def _task(folder: Path, name: str) -> tuple[list[dict], dict]:
    docs = json.loads((folder / name / f"{name}.json").read_text())
    with (folder / name / f"{name}.yaml").open() as fh:
        config = yaml.load(fh, Loader=_FunctionLoader)
    return docs, config


class _FunctionLoader(yaml.SafeLoader):
    """Reads `!function x` as "!function x" (lmms-eval's loader imports it)."""


_FunctionLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def _scores_through_the_task(docs: list[dict], predictions: list[str]) -> dict[str, float]:
    """process_results per document, then aggregate per metric: what lmms-eval does with them."""
    per_metric: dict[str, list] = {}
    for doc, prediction in zip(docs, predictions):
        for name, value in lmms_docs.process_results(doc, [prediction]).items():
            per_metric.setdefault(name, []).append(value)
    return {name: lmms_docs.aggregate(values) for name, values in per_metric.items()}


def _ablate_scores(docs: list[dict], predictions: list[str], evaluator) -> dict[str, float]:
    records = [lmms_docs.ablate_record(doc, p) for doc, p in zip(docs, predictions)]
    return evaluator.score([evaluator.judge(r) for r in records])


def test_a_recipes_easy_vqa_eval_becomes_a_task_and_the_command_says_how_to_run_it(tmp_path, capsys):
    code, out, _ = _write(capsys, EASYVQA, tmp_path / "tasks", "--limit", 6)
    assert code == 0
    docs, config = _task(tmp_path / "tasks", "tiny_easyvqa")
    assert docs[0] == {
        "id": "easy_vqa/test/0/q0", "question": "what is the red shape?", "answer": "triangle", "category": "shape",
        "image": str(Path(docs[0]["image"]).absolute()),
        "meta": json.dumps({"answer": "triangle", "category": "shape", "image_id": 0,
                            "question": "what is the red shape?", "question_type": "shape"}, sort_keys=True),
        "evaluator": json.dumps({"answer_pattern": None, "normalize": True, "sentence_credit": False,
                                 "type": "exact_match"}, sort_keys=True)}
    assert Path(docs[0]["image"]).name == "0.png" and len(docs) == 6
    assert config["generation_kwargs"] == {"max_new_tokens": 8, "until": [], "do_sample": False, "temperature": 0.0,
                                           "num_beams": 1}  # the recipe's eval.max_new_tokens, greedy
    assert config["doc_to_visual"] == "!function ablate.eval.lmms_docs.doc_to_visual"
    assert config["process_results"] == "!function ablate.eval.lmms_docs.process_results"
    metrics = [m["metric"] for m in config["metric_list"]]
    assert metrics == ["accuracy"] + [f"accuracy/{c}" for c in dict.fromkeys(d["category"] for d in docs)]
    assert {m["aggregation"] for m in config["metric_list"]} == {"!function ablate.eval.lmms_docs.aggregate"}
    assert (f"ablate run {EASYVQA} -s eval.harness=lmms_eval -s 'eval.tasks=[tiny_easyvqa]' "
            f"-s eval.include_path={tmp_path / 'tasks'}") in out
    assert (f"lmms-eval --model ablate --model_args pretrained=RUN_DIR --tasks tiny_easyvqa "
            f"--include_path {tmp_path / 'tasks'}") in out


def test_exact_match_through_the_task_equals_ablates_scores(tmp_path, capsys):
    assert _write(capsys, EASYVQA, tmp_path, "--limit", 6, "--name", "vqa")[0] == 0
    docs, _ = _task(tmp_path, "vqa")
    predictions = ["The Triangle.", "blue", "Red", "no", "Yes.", "maybe"]  # normalisation decides several
    evaluator = registries().evaluator.get("exact_match").build({})
    ours = _ablate_scores(docs, predictions, evaluator)
    assert _scores_through_the_task(docs, predictions) == ours
    assert 0 < ours["accuracy"] < 1 and len(ours) > 2  # right and wrong answers; per-category columns


def test_scienceqa_letter_rules_through_the_task_equal_ablates_scorer(tmp_path, capsys):
    assert _write(capsys, SCIENCEQA, tmp_path, "--limit", 12)[0] == 0
    docs, config = _task(tmp_path, "tiny_scienceqa")
    letters = [json.loads(doc["meta"])["answer_letter"] for doc in docs]
    # right letter, an option's text (match_choice_text), "The answer is X.", a lower-case letter, nonsense
    choices = [json.loads(doc["meta"])["choices"] for doc in docs]
    predictions = [[letters[n], choices[n][0], f"The answer is {letters[n]}.", letters[n].lower(), "?"][n % 5]
                   for n in range(len(docs))]
    evaluator = registries().evaluator.get("scienceqa").build({"match_choice_text": True})
    ours = _ablate_scores(docs, predictions, evaluator)
    assert _scores_through_the_task(docs, predictions) == ours
    assert set(ours) == {m["metric"] for m in config["metric_list"]} >= {"accuracy", "NAT", "SOC", "LAN"}
    assert 0 < ours["accuracy"] < 100


def test_embedded_images_are_the_files_pixels(tmp_path, capsys):
    assert _write(capsys, EASYVQA, tmp_path / "paths", "--limit", 2, "--name", "t")[0] == 0
    assert _write(capsys, EASYVQA, tmp_path / "embedded", "--limit", 2, "--name", "t", "--embed-images")[0] == 0
    by_path, _ = _task(tmp_path / "paths", "t")
    embedded, _ = _task(tmp_path / "embedded", "t")
    assert embedded[0]["image"].startswith("data:image/png;base64,")
    (ours,), (theirs,) = lmms_docs.doc_to_visual(by_path[0]), lmms_docs.doc_to_visual(embedded[0])
    assert ours.mode == theirs.mode == "RGB" and ours.tobytes() == theirs.tobytes()
    assert lmms_docs.doc_to_visual({**by_path[0], "image": None}) == []


def test_an_eval_section_file_is_a_source_too(tmp_path, capsys):
    path = tmp_path / "my_eval.yaml"
    path.write_text("data: {type: easy_vqa, split: test, style: qa, limit: 3}\nevaluator: exact_match\n")
    code, out, _ = _write(capsys, path, tmp_path / "tasks")
    assert code == 0
    assert len(_task(tmp_path / "tasks", "my_eval")[0]) == 3
    assert "ablate run RECIPE -s eval.harness=lmms_eval -s 'eval.tasks=[my_eval]'" in out
    path.write_text("data: {type: easy_vqa, split: test}\nevaluatr: exact_match\n")
    code, _, err = _write(capsys, path, tmp_path / "tasks")
    assert code == 2
    assert f"{path}: 1 problem in file - evaluatr ({path}:2): unknown key 'evaluatr'. Did you mean 'evaluator'?" in err


def test_a_recipe_without_eval_data_exits_2_saying_what_is_missing(tmp_path, capsys):
    recipe = yaml.safe_load(EASYVQA.read_text())
    del recipe["eval"]
    path = tmp_path / "no_eval.yaml"
    path.write_text(yaml.safe_dump(recipe))
    code, _, err = _write(capsys, path, tmp_path / "tasks")
    assert code == 2
    assert f"error: {path}: the recipe has no eval.data, whose held-out samples the task would hold" in err
    assert "Traceback" not in err and not (tmp_path / "tasks").exists()


def test_an_unwritable_out_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    code, _, err = _write(capsys, EASYVQA, tmp_path / "a_file" / "tasks", "--limit", 2)
    assert code == 2
    squashed = err.replace(" ", "")  # the console folds a long path anywhere
    assert f"error:cannotwritethetaskto{tmp_path / 'a_file' / 'tasks' / 'tiny_easyvqa'}:Notadirectory" in squashed
    assert "Traceback" not in err


@pytest.mark.parametrize("overrides, message", [
    (["--name", "../up"], "task name '../up' cannot name a folder"),
    (["-s", "eval.evaluator={type: gpt4_relative_score}"],
     "eval.evaluator gpt4_relative_score asks a judge model for every answer"),
    (["-s", "eval.data.style=conversation"], "sample 'easy_vqa/test/0/conversation': its prompt has 21 turns; an "
                                             "lmms-eval task asks one question per document"),
])
def test_what_a_task_cannot_hold_exits_2(tmp_path, capsys, overrides, message):
    code, _, err = _write(capsys, EASYVQA, tmp_path, "--limit", 2, *overrides)
    assert code == 2
    assert message in err
