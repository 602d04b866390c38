"""Which of the `ablate` lmms-eval models a task needs: the chat model or the simple one.

lmms-eval 0.7 builds a chat model's requests from messages for generation only (its
`ConfigurableMessagesTask` asserts so), and log-likelihood requests (`output_type:
multiple_choice` or `loglikelihood`) only for simple models. A run's evaluation therefore hands
each task it names to the model that can answer every request of it: read from the task's YAML
(includes resolved, `!function` tags left unimported) and, for a group or a tag, from its
subtasks'. lmms-eval's own CLI leaves this to the user (`--force_simple`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.errors import AblateError

LOGLIKELIHOOD = frozenset({"multiple_choice", "loglikelihood", "loglikelihood_rolling"})
MULTI_ROUND = "generate_until_multi_round"
DEFAULT_OUTPUT_TYPE = "generate_until"  # lmms-eval's TaskConfig default
UNKNOWN = "python class"  # a task defined by a Python class: its output type is known once built


def needs_simple_model(manager, name: str) -> bool:
    """Whether task, group or tag `name` holds log-likelihood tasks (so only the simple model can
    run it); AblateError, before anything trains, if it also holds multi-round tasks, which only
    the chat model can."""
    types = output_types(manager, name)
    if not types & LOGLIKELIHOOD:
        return False
    if MULTI_ROUND in types:
        raise AblateError(f"eval.tasks: {name!r} holds both log-likelihood tasks ({', '.join(sorted(types & LOGLIKELIHOOD))}) "
                          f"and multi-round ones ({MULTI_ROUND}); lmms-eval runs them with different models, so "
                          "name its tasks in eval.tasks apart")
    return True


def output_types(manager, name: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The output types of every task under `name` in lmms-eval's TaskManager index."""
    if name in seen:  # a group that names itself: lmms-eval would recurse; count it once
        return set()
    entry = manager.task_index.get(name)
    if entry is None:
        return set()  # lmms_plan names unknown tasks; a group's unknown subtask fails in lmms-eval
    seen = seen | {name}
    if entry["type"] == "tag":
        return set().union(*(output_types(manager, task, seen) for task in entry["task"]))
    if entry["type"] == "python_task":
        return {UNKNOWN}
    config = _yaml(entry["yaml_path"])
    if entry["type"] == "group":
        return _group_types(manager, config, Path(entry["yaml_path"]), seen)
    return {_output_type(config)}


def _group_types(manager, config: dict[str, Any], group_file: Path, seen: frozenset[str]) -> set[str]:
    tasks = config.get("task", [])
    types: set[str] = set()
    for task in tasks if isinstance(tasks, list) else [tasks]:
        if isinstance(task, str):
            types |= output_types(manager, task, seen)
        elif isinstance(task, dict) and "group" in task:
            types |= _group_types(manager, task, group_file, seen)
        elif isinstance(task, dict):
            types |= _inline_task_types(manager, task, group_file, seen)
    return types


def _inline_task_types(manager, task: dict[str, Any], group_file: Path, seen: frozenset[str]) -> set[str]:
    """A task written inside a group's YAML: its own keys over its includes, or over the indexed
    task of its name (lmms-eval's update of a named task)."""
    if "output_type" in task:
        return {str(task["output_type"])}
    if "include" in task:
        return {_output_type(_yaml(group_file, inline=task))}
    name = task.get("task")
    if isinstance(name, str) and name in manager.task_index:
        return output_types(manager, name, seen)
    return {DEFAULT_OUTPUT_TYPE}


def _output_type(config: dict[str, Any]) -> str:
    return str(config.get("output_type") or DEFAULT_OUTPUT_TYPE)


def _yaml(path: str | Path, inline: dict[str, Any] | None = None) -> dict[str, Any]:
    """The task file at `path` (or the `inline` task written in a group file beside it), its
    includes resolved; AblateError naming the file when it cannot be read."""
    from lmms_eval.utils import load_yaml_config

    try:
        if inline is not None:
            config = load_yaml_config(yaml_config=dict(inline), yaml_dir=str(Path(path).parent), mode="simple")
        else:
            config = load_yaml_config(yaml_path=str(path), mode="simple")
    except Exception as err:  # yaml's and lmms-eval's errors alike (a missing include, bad YAML): name the file
        where = f"lmms-eval task file {path}" + (f" (its task {inline.get('task')!r})" if inline is not None else "")
        raise AblateError(f"{where}: cannot be read ({type(err).__name__}: {err})") from None
    if not isinstance(config, dict):
        raise AblateError(f"lmms-eval task file {path}: not a mapping of task settings")
    return config
