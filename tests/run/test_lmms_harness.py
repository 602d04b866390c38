"""The lmms-eval harness end to end on a tiny trained model: local tasks that include lmms-eval's
own gqa and scienceqa_img YAMLs, on documents the tests write, score as ablate's evaluators do on
the same items; the `ablate` model is found through lmms-eval's entry point; `ablate run` with
`-s eval.harness=lmms_eval` records lmms_eval/* metrics in MLflow."""

from __future__ import annotations

import json

import pytest
import torch

import lmms_parts
import tiny_run


class Spy:
    """Records what VisionLanguageModel.generate is fed, batch by batch."""

    def __init__(self, vlm):
        self.calls, self.vlm, self.real = [], vlm, vlm.generate

    def __enter__(self):
        def generate(**batch):
            self.calls.append({k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)})
            return self.real(**batch)

        self.vlm.generate = generate
        return self

    def __exit__(self, *exc):
        del self.vlm.generate


@pytest.fixture(scope="module")
def both_harnesses(lmms_run):
    """ablate's evaluation and lmms-eval's (one simple_evaluate, both tasks) of one loaded model."""
    from lmms_eval.evaluator import simple_evaluate

    from ablate.run.evaluation import eval_plan, evaluate
    from ablate.run.lmms_chat import AblateChat
    from ablate.run.lmms_harness import task_manager
    from ablate.run.trained import load_trained

    root, tasks, data, result = lmms_run
    loaded = load_trained(result.run_dir)
    ours = {}
    with pytest.MonkeyPatch.context() as patch, Spy(loaded.vlm) as spy:
        patch.setenv("LMMS_EVAL_DATASETS_CACHE", str(root / "datasets"))  # a module fixture: no monkeypatch
        for name, file, evaluator in (("gqa", "gqa.json", "exact_match"), ("sqa", "sqa.json", "scienceqa")):
            ours[name] = evaluate(loaded.vlm, eval_plan(tiny_run.load(lmms_parts.recipe(root, file, evaluator))),
                                  progress=None, out=None)
        ablate_inputs = list(spy.calls)
        spy.calls.clear()
        model = AblateChat.around(loaded.vlm, loaded.recipe, batch_size=lmms_parts.BATCH)
        theirs = simple_evaluate(model=model, tasks=["gqa_local", "sqa_local"],
                                 task_manager=task_manager(["gqa_local", "sqa_local"], [str(tasks)]),
                                 log_samples=True, distributed_executor_backend="torchrun")
    return ours, theirs, ablate_inputs, spy.calls, loaded


def _responses(results, task):
    return [s["filtered_resps"][0] for s in sorted(results["samples"][task], key=lambda s: s["doc_id"])]


def _rows(calls: list[dict]) -> dict[str, torch.Tensor]:
    """Each prompt row the model was fed, without its batch's padding: ids -> its pixels."""
    rows = {}
    for call in calls:
        assert set(call) == {"input_ids", "attention_mask", "pixel_values"}
        for ids, mask, pixels in zip(call["input_ids"], call["attention_mask"], call["pixel_values"]):
            rows[repr(ids[mask.bool()].tolist())] = pixels
    return rows


def test_the_model_is_fed_what_ablates_evaluation_feeds(both_harnesses):
    """The same prompt rows, ids and pixels (ablate batches its eval by length, lmms-eval in its
    own order, so the rows meet in other batches and are compared without their padding)."""
    _, _, ablate_inputs, lmms_inputs, _ = both_harnesses
    ours, theirs = _rows(ablate_inputs), _rows(lmms_inputs)
    assert len(ours) == len(theirs) == 8 + 5  # gqa: 8 items, sqa: the 5 yes/no ones
    assert ours.keys() == theirs.keys()
    for ids, pixels in ours.items():
        assert torch.equal(pixels, theirs[ids])


def test_gqa_style_exact_match_equals_ablates(both_harnesses):
    ours, theirs, _, _, _ = both_harnesses
    predictions = [r["prediction"] for r in ours["gqa"].records]
    assert _responses(theirs, "gqa_local") == predictions
    assert len(set(predictions)) >= 1 and all(predictions)  # words, not empty answers
    accuracy = ours["gqa"].metrics["accuracy"]
    assert 0 < accuracy < 1  # some answers right, some wrong: the scores can tell scorers apart
    assert theirs["results"]["gqa_local"]["exact_match,none"] == pytest.approx(accuracy, abs=1e-12)


def test_scienceqa_img_style_letter_rules_equal_ablates(both_harnesses):
    ours, theirs, _, _, _ = both_harnesses
    assert _responses(theirs, "sqa_local") == [r["prediction"] for r in ours["sqa"].records]
    assert theirs["results"]["sqa_local"]["accuracy,none"] == ours["sqa"].metrics["accuracy"]


def test_a_run_folder_through_lmms_evals_entry_point_scores_the_same(lmms_run, both_harnesses, lmms_datasets):
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.models import get_model

    from ablate.run.lmms_harness import task_manager

    _, tasks, _, result = lmms_run
    _, live, _, _, _ = both_harnesses
    model = get_model("ablate").create_from_arg_string(f"pretrained={result.run_dir},batch_size={lmms_parts.BATCH},device=cpu")
    loaded = simple_evaluate(model=model, tasks=["gqa_local"], task_manager=task_manager(["gqa_local"], [str(tasks)]),
                             log_samples=True)
    assert _responses(loaded, "gqa_local") == _responses(live, "gqa_local")
    assert loaded["results"]["gqa_local"]["exact_match,none"] == live["results"]["gqa_local"]["exact_match,none"]


def test_ablate_run_with_the_lmms_harness_records_metrics_in_mlflow(lmms_run, lmms_datasets, capsys):
    import sqlite3

    from ablate.cli import main

    root, tasks, data, result = lmms_run
    recipe = tiny_run.write_recipe(root, data)
    code = main(["run", str(recipe), "-s", "eval.harness=lmms_eval", "-s", "eval.tasks=[gqa_local]",
                 "-s", f"eval.include_path={tasks}"])
    assert code == 0, capsys.readouterr().err[-3000:]
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = dict(db.execute("SELECT key, value FROM latest_metrics WHERE key LIKE 'lmms_eval/%'").fetchall())
    assert set(rows) >= {"lmms_eval/gqa_local/exact_match", "lmms_eval/gqa_local/exact_match_stderr"}
    run_dir = next(p for p in (root / "out").iterdir() if p.name.startswith("tiny-") and p != result.run_dir)
    summary = tiny_run.summary(run_dir)
    assert summary["eval"]["gqa_local/exact_match"] == rows["lmms_eval/gqa_local/exact_match"]
    assert summary["stages"][0]["reused_from"] is not None  # the harness is not a stage input
    samples = (run_dir / "lmms_eval" / "samples_gqa_local.jsonl").read_text().splitlines()
    assert len(samples) == 8 and json.loads(samples[0])["doc_id"] == 0



def test_unknown_tasks_and_unpinned_judges_are_named_before_training(lmms_run, tmp_path):
    from ablate.errors import AblateError
    from ablate.eval.lmms_tasks import write_local_task
    from ablate.run.lmms_harness import lmms_plan

    _, tasks, data, _ = lmms_run

    def plan(**ev):
        return lmms_plan(tiny_run.load({**data, "eval": {"harness": "lmms_eval", **ev}}))

    local = plan(tasks=["gqa_local"], include_path=[str(tasks)])
    assert local.task_manager.all_tasks == ["gqa_local", "sqa_local"]  # lmms-eval's own ~2,000 not indexed
    with pytest.raises(AblateError, match=r"lmms-eval has no task 'gqa_locl' or under eval.include_path \(.*\)\. "
                                          r"Did you mean 'gqa_local'\?"):
        plan(tasks=["gqa_locl"], include_path=[str(tasks)])
    write_local_task(tmp_path, "mmvet", "mmvet/mmvet.yaml", [])
    with pytest.raises(AblateError, match="eval.tasks: mmvet is scored by a GPT judge; pin it in the recipe with"):
        plan(tasks=["mmvet"], include_path=[str(tmp_path)])
    pinned = plan(tasks=["mmvet"], include_path=[str(tmp_path)], judge={"model": "m", "endpoint": "http://127.0.0.1:9/v1"})
    assert pinned.judge.model == "m"
    # the local mmvet replaces lmms-eval's own, which lmms-eval's command would run: said before training
    assert local.notes == [] and pinned.notes == [
        f"eval.tasks: mmvet is the task in {tmp_path / 'mmvet' / 'mmvet.yaml'}, which replaces lmms-eval's own mmvet; "
        "lmms-eval's own command would run its own (name the local task differently to keep both)"]


def test_lmms_evals_own_names_are_read_from_its_task_files():
    from ablate.run.lmms_harness import lmms_eval_own_names

    names = lmms_eval_own_names()
    # a task (gqa), a task in quotes (seedbench_ppl), a group (mmbench), a tag listed under `tag:`
    assert {"gqa", "mme", "mmvet", "seedbench_ppl", "mmbench", "public_eval_qwen3_5_family"} <= names
    assert not {"-", "", "gqa_local"} & names


def test_a_multiple_choice_task_is_scored_by_loglikelihood_beside_a_generation_task(lmms_run, lmms_datasets, capsys):
    """seedbench_ppl's requests are log-likelihoods, which lmms-eval builds for simple models only:
    the run hands it to the simple model and gqa_local to the chat model, in one evaluation."""
    import sqlite3

    from ablate.cli import main

    root, tasks, data, result = lmms_run
    docs = lmms_parts.write_seed_task(root / "mc_tasks", lmms_parts.items())
    recipe = tiny_run.write_recipe(root, data)
    code = main(["run", str(recipe), "-s", "eval.harness=lmms_eval", "-s", "eval.tasks=[gqa_local,seed_local]",
                 "-s", f"eval.include_path=[{tasks},{root / 'mc_tasks'}]"])
    assert code == 0, capsys.readouterr().err[-3000:]
    run_dir = max((p for p in (root / "out").iterdir() if p.name.startswith("tiny-") and p != result.run_dir),
                  key=lambda p: p.stat().st_mtime)
    samples = [json.loads(line) for line in (run_dir / "lmms_eval" / "samples_seed_local.jsonl").read_text().splitlines()]
    assert len(samples) == len(docs) > 0
    # each document: one (mean loss, greedy) per option; right when the target option's loss is the lowest
    assert all(len(s["filtered_resps"]) == 4 and s["filtered_resps"][0][0] > 0 for s in samples)
    picks = [min(range(4), key=lambda k: s["filtered_resps"][k][0]) for s in samples]
    right = [pick == "ABCD".index(docs[s["doc_id"]]["answer"]) for pick, s in zip(picks, samples)]
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = dict(db.execute("SELECT key, value FROM latest_metrics WHERE key LIKE 'lmms_eval/%'").fetchall())
    assert rows["lmms_eval/seed_local/acc"] == pytest.approx(sum(right) / len(right))
    assert "lmms_eval/gqa_local/exact_match" in rows
    summary = tiny_run.summary(run_dir)
    assert summary["eval"]["seed_local/acc"] == rows["lmms_eval/seed_local/acc"]
    results = json.loads((run_dir / "lmms_eval" / "results.json").read_text())
    assert set(results["results"]) == {"gqa_local", "seed_local"}
    assert results["configs"]["seed_local"]["output_type"] == "multiple_choice"


def test_tasks_go_to_the_model_their_requests_need(lmms_run, tmp_path):
    """Log-likelihood tasks (alone, in a group or under a tag) to the simple model; a group that
    mixes them with multi-round tasks, which only the chat model runs, is refused before training."""
    import yaml

    from ablate.errors import AblateError
    from ablate.eval.lmms_tasks import write_task
    from ablate.run.lmms_harness import lmms_plan

    _, tasks, data, _ = lmms_run
    lmms_parts.write_seed_task(tmp_path, lmms_parts.items())
    write_task(tmp_path, "rounds_local", {"output_type": "generate_until_multi_round", "tag": "chatty"}, [])
    write_task(tmp_path, "tagged_mc", {"output_type": "multiple_choice", "tag": "mc_tag"}, [])
    for name, members in (("mc_group", ["seed_local", "gqa_local"]), ("mixed_group", ["seed_local", "rounds_local"]),
                          ("nested_group", [{"group": "inner", "task": ["gqa_local"]}])):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"group": name, "task": members}))

    def plan(*names):
        return lmms_plan(tiny_run.load({**data, "eval": {"harness": "lmms_eval", "tasks": list(names),
                                                         "include_path": [str(tasks), str(tmp_path)]}}))

    split = plan("gqa_local", "seed_local", "mc_group", "mc_tag", "nested_group", "chatty")
    assert split.simple_tasks == ["seed_local", "mc_group", "mc_tag"]
    assert split.chat_tasks == ["gqa_local", "nested_group", "chatty"]
    with pytest.raises(AblateError, match=r"eval.tasks: 'mixed_group' holds both log-likelihood tasks "
                                          r"\(multiple_choice\) and multi-round ones"):
        plan("mixed_group")


def test_results_of_two_evaluations_merge_per_task():
    from ablate.run.lmms_harness import merged_results

    chat = {"results": {"a": {"x": 1}}, "configs": {"a": {}}, "config": {"model": "chat"}, "date": 1}
    simple = {"results": {"b": {"y": 2}}, "configs": {"b": {}}, "config": {"model": "simple"}, "date": 2,
              "samples": {"b": []}}
    assert merged_results([chat, simple]) == {"results": {"a": {"x": 1}, "b": {"y": 2}}, "configs": {"a": {}, "b": {}},
                                              "config": {"model": "chat"}, "date": 1, "samples": {"b": []}}
    assert merged_results([chat, None]) is None  # not rank 0


def test_task_files_that_cannot_be_read_are_named_before_training(tmp_path):
    import yaml

    from ablate.errors import AblateError
    from ablate.run.lmms_harness import task_manager
    from ablate.run.lmms_task_kinds import needs_simple_model

    (tmp_path / "g.yaml").write_text(yaml.safe_dump({"group": "g", "task": [{"task": "t1", "include": "gone.yaml"}]}))
    manager = task_manager(["g"], [str(tmp_path)])
    with pytest.raises(AblateError, match=r"lmms-eval task file .*g\.yaml \(its task 't1'\): cannot be read "
                                          r"\(FileNotFoundError: .*gone\.yaml"):
        needs_simple_model(manager, "g")
    (tmp_path / "bad.yaml").write_text("task: bad\ninclude: nowhere.yaml\n")  # lmms-eval reads it as it indexes
    with pytest.raises(AblateError, match=r"lmms-eval cannot index the task files under eval.include_path "
                                          r"\(.*\): FileNotFoundError: .*nowhere\.yaml"):
        task_manager(["g"], [str(tmp_path)])
