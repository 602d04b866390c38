"""Run tests: one torch thread and a ready MLflow store template for tiny_run.recipe."""

from __future__ import annotations

import pytest

import tiny_run


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    yield from tiny_run.session_setup(tmp_path_factory)


@pytest.fixture(scope="session")
def lmms_run(tmp_path_factory):
    """A finished tiny run whose own eval is ablate's harness on lmms_parts' gqa items, and the
    folder of the local lmms-eval tasks: (root, tasks folder, recipe dict, RunResult)."""
    import lmms_parts

    root = tmp_path_factory.mktemp("lmms")
    tasks = lmms_parts.write_data(root, lmms_parts.items())
    data = lmms_parts.recipe(root, "gqa.json", "exact_match")
    return root, tasks, data, tiny_run.run_in_process(data)


@pytest.fixture
def lmms_datasets(lmms_run, monkeypatch):
    """lmms-eval's datasets cache inside the test's folder, not ~/.cache."""
    monkeypatch.setenv("LMMS_EVAL_DATASETS_CACHE", str(lmms_run[0] / "datasets"))


@pytest.fixture(scope="session")
def lmms_ablate_task(lmms_run, tmp_path_factory):
    """lmms_run's eval data (the gqa items, exact_match) as a task scored by ablate
    (`ablate data lmms-task`'s writer): (its include_path folder, the EvalTask)."""
    from ablate.eval.lmms_eval_task import write_eval_task

    recipe = tiny_run.load(lmms_run[2])
    folder = tmp_path_factory.mktemp("ablate_tasks")
    return folder, write_eval_task(folder, "gqa_items", recipe.eval, answer_format=recipe.answer_format)
