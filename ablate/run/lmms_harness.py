"""`eval.harness: lmms_eval`: lmms-eval's tasks on the run's trained model, in the run's process.

`lmms_plan` runs before training: lmms-eval must be installed and know every task (lmms-eval's
own, or under eval.include_path, whose tasks win over lmms-eval's of the same name), and a task
known to call a GPT judge needs eval.judge. After training, `run_lmms_eval` hands the live model
to `simple_evaluate` (`AblateChat.around`: no second copy; tasks with log-likelihood requests,
such as multiple_choice ones, go to `AblateSimple.around` in a second call, as `lmms_task_kinds`
says), with the judge pinned and cached
(`ablate.eval.judge_proxy`) while it runs, and records:
- every numeric metric as `lmms_eval/<task>/<metric>` in MLflow (names: `ablate.eval.lmms_results`),
  and as `<task>/<metric>` in the run summary's eval section;
- `lmms_eval/results.json` (lmms-eval's results, configs and versions) and one
  `lmms_eval/samples_<task>.jsonl` per task (lmms-eval's per-sample logs), in the run folder
  and as artifacts.
Under torchrun every rank evaluates its share (lmms-eval splits the documents); rank 0 records.
"""

from __future__ import annotations

import functools
import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, did_you_mean

ARTIFACTS = "lmms_eval"
METRIC_PREFIX = "lmms_eval/"
# lmms-eval tasks that score answers with a GPT judge (and so need eval.judge): their code calls
# it through lmms_eval.llm_judge or the OpenAI API.
JUDGED_TASKS = ("mmvet", "llava_in_the_wild", "mmbench_en_dev", "mmbench_en_test", "mmbench_cn_dev", "mmbench_cn_test")


@dataclass
class LmmsPlan:
    tasks: list[str]
    limit: int | None
    batch_size: int
    max_new_tokens: int
    judge: Any  # the recipe's JudgeSection, or None
    task_manager: Any  # lmms_eval.tasks.TaskManager indexing the tasks
    simple_tasks: list[str] = field(default_factory=list)  # those with log-likelihood requests (lmms_task_kinds)
    notes: list[str] = field(default_factory=list)  # said before training, kept with the run


    @property
    def chat_tasks(self) -> list[str]:
        return [name for name in self.tasks if name not in self.simple_tasks]


def lmms_plan(recipe) -> LmmsPlan:
    """What the evaluation will run, checked before anything trains."""
    ev = recipe.eval
    manager = task_manager(ev.tasks, ev.include_path or [])
    unknown = [name for name in ev.tasks if name not in manager.all_tasks]
    if unknown:
        where = f" or under eval.include_path ({', '.join(ev.include_path)})" if ev.include_path else ""
        raise AblateError(f"eval.tasks: lmms-eval has no task {unknown[0]!r}{where}."
                          f"{did_you_mean(unknown[0], manager.all_tasks)}")
    judged = [name for name in ev.tasks if name in JUDGED_TASKS]
    if judged and ev.judge is None:
        raise AblateError(f"eval.tasks: {', '.join(judged)} {'is' if len(judged) == 1 else 'are'} scored by a GPT "
                          "judge; pin it in the recipe with "
                          "eval.judge: {model: gpt-4-0613, endpoint: https://api.openai.com/v1}")
    from ablate.run.lmms_task_kinds import needs_simple_model

    simple = [name for name in ev.tasks if needs_simple_model(manager, name)]
    notes = [f"eval.tasks: {name} is the task in {path}, which replaces lmms-eval's own {name}; lmms-eval's own "
             "command would run its own (name the local task differently to keep both)"
             for name, path in shadowed_tasks(manager, ev.tasks, ev.include_path or [])]
    return LmmsPlan(list(ev.tasks), ev.limit, ev.batch_size, ev.max_new_tokens, ev.judge, manager, simple, notes)


def shadowed_tasks(manager, tasks: list[str], include_path: list[str]) -> list[tuple[str, str]]:
    """(name, task file) of each named task that a file under `include_path` defines and lmms-eval
    also has a task, group or tag of that name: the local one runs here, lmms-eval's in its own command."""
    folders = [Path(folder).resolve() for folder in include_path]
    local = {}
    for name in tasks:
        path = (manager.task_index.get(name) or {}).get("yaml_path")
        if isinstance(path, str) and path != "-1" and any(Path(path).resolve().is_relative_to(f) for f in folders):
            local[name] = path
    own = lmms_eval_own_names() if local else set()
    return [(name, path) for name, path in local.items() if name in own]


@functools.lru_cache(maxsize=1)  # the installed lmms-eval does not change within a process (a study's cells)
def lmms_eval_own_names() -> frozenset[str]:
    """The task, group and tag names lmms-eval's own task files declare. Read from the YAML text (a
    quarter of a second) rather than by indexing them all with a TaskManager (seconds), which
    `task_manager` skips when the include_path holds every task named."""
    import re

    import lmms_eval

    one = re.compile(r"^(?:task|group|tag)[ \t]*:[ \t]*[\"']?([^\"'\s#\[\]]+)", re.M)
    inline = re.compile(r"^tag[ \t]*:[ \t]*\[([^\]]*)\]", re.M)  # tag: [a, b]
    listed = re.compile(r"^tag[ \t]*:[ \t]*\n((?:[ \t]*-[ \t]*\S.*(?:\n|$))+)", re.M)  # tag: then "- a" lines
    names: set[str] = set()
    for path in (Path(lmms_eval.__file__).parent / "tasks").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8", errors="replace")
        names.update(one.findall(text))
        items = [item for block in inline.findall(text) for item in block.split(",")]
        items += [line.split("-", 1)[1] for block in listed.findall(text) for line in block.splitlines() if "-" in line]
        names.update(name for item in items if (name := item.split("#")[0].strip().strip("\"'")))
    return frozenset(names)


def task_manager(tasks: list[str], include_path: list[str]):
    """lmms-eval's TaskManager over `include_path` first, then lmms-eval's own tasks, unless the
    folders hold every task named (indexing lmms-eval's ~2,000 YAMLs takes seconds)."""
    try:
        from lmms_eval.tasks import TaskManager
    except ImportError:
        raise AblateError("eval.harness lmms_eval needs lmms-eval: pip install 'ablate[lmms]'") from None

    class LocalFirst(TaskManager):
        """lmms-eval indexes its own tasks first and keeps them on a name clash; here the
        include_path's win, so a local stand-in of a task replaces it."""

        def initialize_tasks(self, include_path=None, include_defaults=True):
            own = super().initialize_tasks(None, include_defaults) if include_defaults else {}
            return {**own, **(super().initialize_tasks(include_path, include_defaults=False) if include_path else {})}

    local = _indexed(LocalFirst, include_path, include_defaults=False) if include_path else None
    if local is not None and all(name in local.all_tasks for name in tasks):
        return local
    return _indexed(LocalFirst, include_path or None)


def _indexed(manager_class, include_path: list[str] | None, **kwargs):
    """The TaskManager; AblateError when a task file it reads cannot be (a bad YAML, a missing
    include), which lmms-eval raises as it indexes every file under the folders."""
    try:
        return manager_class(include_path=include_path, **kwargs)
    except Exception as err:
        where = f"under eval.include_path ({', '.join(include_path)})" if include_path else "of lmms-eval"
        raise AblateError(f"lmms-eval cannot index the task files {where}: {type(err).__name__}: {err}") from None


def run_lmms_eval(vlm, recipe, plan: LmmsPlan, run_dir: Path, tracker) -> tuple[dict[str, float], Path | None]:
    """Evaluate, record (rank 0), and return ({"<task>/<metric>": value}, the artifacts folder)."""
    results = evaluate(vlm, recipe, plan)
    if results is None:  # another rank's share went to rank 0
        return {}, None
    from ablate.eval.lmms_results import flat_metrics

    metrics = flat_metrics(results["results"])
    folder = write_results(results, run_dir / ARTIFACTS)
    tracker.log_metrics({METRIC_PREFIX + name: value for name, value in metrics.items()})
    for path in sorted(folder.iterdir()):
        tracker.log_artifact(path, ARTIFACTS)
    return metrics, folder


def evaluate(vlm, recipe, plan: LmmsPlan) -> dict[str, Any] | None:
    """simple_evaluate on the live model, the chat model's tasks and then the simple model's
    (lmms_task_kinds); their results merged on rank 0, None on the others."""
    from ablate.run.lmms_chat import AblateChat, AblateSimple

    parts = []
    with judge_pinned(plan.judge):
        for model_class, tasks in ((AblateChat, plan.chat_tasks), (AblateSimple, plan.simple_tasks)):
            if tasks:
                model = model_class.around(vlm, recipe, batch_size=plan.batch_size, max_new_tokens=plan.max_new_tokens)
                parts.append(_simple_evaluate(model, tasks, plan))
    return merged_results(parts)


def _simple_evaluate(model, tasks: list[str], plan: LmmsPlan) -> dict[str, Any] | None:
    from lmms_eval.evaluator import simple_evaluate

    # "torchrun": lmms-eval gathers through torch.distributed (which ablate's ranks set up), not
    # through an Accelerator of its own
    return simple_evaluate(model=model, tasks=tasks, task_manager=plan.task_manager, limit=plan.limit,
                           batch_size=plan.batch_size, log_samples=True, distributed_executor_backend="torchrun")


def merged_results(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One lmms-eval results dict from several simple_evaluate calls on disjoint tasks: the per-task
    sections (results, configs, samples, ...) joined, the rest (config, dates, versions of the
    code) from the first; None where this rank got none (not rank 0)."""
    if not parts or any(part is None for part in parts):
        return None
    merged = dict(parts[0])
    for part in parts[1:]:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "config":
                merged[key] = {**merged[key], **value}
            else:
                merged.setdefault(key, value)
    return merged


def judge_pinned(judge):
    if judge is None:
        return nullcontext()
    from ablate.eval.judge_proxy import pinned_judge

    return pinned_judge(judge.model, judge.endpoint, api_key_env=judge.api_key_env, cache_dir=judge.cache_dir)


def write_results(results: dict[str, Any], folder: Path) -> Path:
    """results.json (all but the samples) and samples_<task>.jsonl, as lmms-eval serialises them."""
    from lmms_eval.utils import handle_non_serializable

    folder.mkdir(parents=True, exist_ok=True)
    samples = results.get("samples") or {}
    summary = {k: v for k, v in results.items() if k != "samples"}
    (folder / "results.json").write_text(json.dumps(summary, indent=2, default=handle_non_serializable))
    for task, rows in samples.items():
        lines = [json.dumps(row, default=handle_non_serializable) + "\n" for row in rows]
        (folder / f"samples_{task}.jsonl").write_text("".join(lines))
    return folder
