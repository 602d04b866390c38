"""The issue's check, as a new user runs it on the command line: `ablate data lmms-task` writes a
task from a recipe's eval data, `ablate run RECIPE -s eval.harness=lmms_eval ...` records
lmms_eval/* metrics in MLflow, `ablate export` of that run loads in transformers and generates
ablate's text; and lmms-eval's own console command scores the run folder with the `ablate` model."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import torch

import tiny_run
from llava_equivalence import ablate_batch, hf_batch

TASK = "tiny"  # the recipe's name: the task's default name


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """(root, task folder, recipe path, run folder) after the two commands of the README."""
    root = tmp_path_factory.mktemp("lmms_cli")
    stage = tiny_run.stage("instruct", tiny_run.easy_vqa("qa", images=4), template="vicuna_v1", max_steps=2)
    recipe = tiny_run.write_recipe(root, tiny_run.recipe(root, [stage]))
    tasks = root / "tasks"
    wrote = tiny_run.run_cli("data", "lmms-task", str(recipe), str(tasks))
    assert wrote.returncode == 0, wrote.stderr[-3000:]
    ran = tiny_run.run_cli("run", str(recipe), "-s", "eval.harness=lmms_eval", "-s", f"eval.tasks=[{TASK}]",
                           "-s", f"eval.include_path={tasks}", LMMS_EVAL_DATASETS_CACHE=str(root / "datasets"))
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    (run_dir,) = [p for p in (root / "out").iterdir() if p.name.startswith("tiny-")]
    return root, tasks, recipe, run_dir


def test_the_task_holds_the_recipes_eval_samples(cli_run):
    _, tasks, _, _ = cli_run
    docs = json.loads((tasks / TASK / f"{TASK}.json").read_text())
    assert len(docs) == 4  # the recipe's eval.limit
    assert docs[0]["question"] == "what is the red shape?\nAnswer the question using a single word or phrase."
    assert docs[0]["answer"] == "triangle"
    assert (tasks / TASK / f"{TASK}.yaml").is_file()


def test_ablate_run_records_lmms_eval_metrics_in_mlflow(cli_run):
    root, _, _, run_dir = cli_run
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = dict(db.execute("SELECT key, value FROM latest_metrics WHERE key LIKE 'lmms_eval/%'").fetchall())
    categories = {doc["category"] for doc in json.loads((cli_run[1] / TASK / f"{TASK}.json").read_text())}
    assert set(rows) == {f"lmms_eval/{TASK}/accuracy"} | {f"lmms_eval/{TASK}/accuracy/{c}" for c in categories}
    samples = [json.loads(line) for line in (run_dir / "lmms_eval" / f"samples_{TASK}.jsonl").read_text().splitlines()]
    correct = [s["accuracy"]["record"]["correct"] for s in samples]
    assert rows[f"lmms_eval/{TASK}/accuracy"] == sum(correct) / len(correct)


def test_its_export_loads_in_transformers_and_generates_ablates_text(cli_run, tmp_path):
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from ablate.cli import main
    from ablate.run.evaluation import eval_template
    from ablate.run.trained import load_trained

    _, _, _, run_dir = cli_run
    assert main(["export", str(run_dir), str(tmp_path / "llava"), "--format", "hf-llava"]) == 0
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "llava").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "llava")
    trained = load_trained(run_dir)
    conversations = [[{"from": "human", "value": "<image>\nWhat shape is in the image?"}]]
    images = [Image.new("RGB", (64, 64), (200, 30, 40))]
    ours = ablate_batch(trained.vlm, eval_template(trained.recipe), conversations, images, "square")
    theirs = hf_batch(processor, conversations, images)
    with torch.no_grad():
        ablate_tokens = trained.vlm.generate(ours["input_ids"], ours["attention_mask"],
                                             pixel_values=ours["pixel_values"], max_new_tokens=6, min_new_tokens=6)
        hf_tokens = model.generate(**theirs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    hf_tokens = hf_tokens[:, theirs["input_ids"].shape[1]:]
    text = trained.vlm.tokenizer.batch_decode(ablate_tokens, skip_special_tokens=True)
    assert processor.batch_decode(hf_tokens, skip_special_tokens=True) == text
    assert hf_tokens.tolist() == ablate_tokens.tolist()  # six tokens each (min_new_tokens): never vacuous


def test_lmms_evals_own_command_scores_the_run_folder(cli_run):
    """`python -m lmms_eval` (what the `lmms-eval` script runs) finds the `ablate` model through its
    entry point; the model's filelock-4 workaround runs before lmms-eval's filelock patch."""
    root, tasks, _, run_dir = cli_run
    out = root / "lmms_console"
    command = [sys.executable, "-m", "lmms_eval", "--model", "ablate", "--model_args", f"pretrained={run_dir},device=cpu",
               "--tasks", TASK, "--include_path", str(tasks), "--limit", "2", "--output_path", str(out)]
    proc = subprocess.run(command, cwd=tiny_run.REPO, env=tiny_run.cli_env(LMMS_EVAL_DATASETS_CACHE=str(root / "datasets")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (results_file,) = out.rglob("*_results.json")
    results = json.loads(results_file.read_text())["results"][TASK]
    first_two = [json.loads(line)["accuracy"]["record"]["correct"]
                 for line in (run_dir / "lmms_eval" / f"samples_{TASK}.jsonl").read_text().splitlines()[:2]]
    assert results["accuracy,none"] == sum(first_two) / 2  # the in-run evaluation's first two documents


def test_lmms_evals_own_command_scores_a_multiple_choice_task_with_force_simple(cli_run):
    """lmms-eval builds log-likelihood requests for simple models only (`--force_simple`), and its
    multiple_choice scoring picks the option of the lowest returned value: each document's pick is
    the option of the lowest mean loss in the samples it logs."""
    import lmms_parts

    root, _, _, run_dir = cli_run
    docs = lmms_parts.write_seed_task(root / "mc_tasks", lmms_parts.items())
    out = root / "lmms_console_mc"
    command = [sys.executable, "-m", "lmms_eval", "--model", "ablate", "--force_simple", "--model_args",
               f"pretrained={run_dir},device=cpu", "--tasks", "seed_local", "--include_path", str(root / "mc_tasks"),
               "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(command, cwd=tiny_run.REPO, env=tiny_run.cli_env(LMMS_EVAL_DATASETS_CACHE=str(root / "datasets")),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (results_file,) = out.rglob("*_results.json")
    (samples_file,) = out.rglob("*_samples_seed_local.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert len(samples) == len(docs)
    right = [min(range(4), key=lambda k: s["filtered_resps"][k][0]) == "ABCD".index(docs[s["doc_id"]]["answer"])
             for s in samples]
    assert json.loads(results_file.read_text())["results"]["seed_local"]["acc,none"] == sum(right) / len(right)
