"""An ablate eval section (a registered data source and its evaluator) as an lmms-eval task.

    task = write_eval_task(Path("tasks"), "tiny_easyvqa", recipe.eval, answer_format=recipe.answer_format)

`ablate data lmms-task` writes one so: `tasks/<name>/<name>.json` holds one document per
held-out sample the source yields (the first `limit`):

    id         the sample's id
    question   its question: the human turn's text without "<image>", stripped (ablate's
               templates put the image first, then a newline, as LLaVA does; so does lmms-eval)
    image      the image file's absolute path, a `data:` URI holding the file's bytes in base64
               (`embed_images`: a folder that can move), or null
    answer     the reference answer ablate's evaluation scores against
    category   the sample's category (its meta's category, else its data_type), or null
    meta       the sample's meta as JSON text (what evaluators read: ScienceQA's answer letter, ...)
    evaluator  the eval's evaluator config as JSON text

and `tasks/<name>/<name>.yaml` asks each question greedily (`generation_kwargs`: the eval's
max_new_tokens, no stop strings but the model's own) and scores the answers with
`ablate.eval.lmms_docs`: metrics are what the evaluator reports on these documents (exact_match:
`accuracy` and `accuracy/<category>`; scienceqa: LLaVA's letter rules, `accuracy` and the paper's
columns, in %), each exactly as ablate's own evaluation computes it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ablate.components.contracts import IMAGE_TOKEN
from ablate.errors import AblateError, DataError, ProblemsError

DOCS = "ablate.eval.lmms_docs"
# Evaluators that ask a judge model for every answer: lmms-eval's GPT-judged tasks
# (llava_in_the_wild, mmvet) call theirs, pinned by eval.judge, instead.
JUDGED_EVALUATORS = ("gpt4_relative_score",)
RECIPE_KEYS = {"model", "stages"}  # a file with neither is an eval section
TASK_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # it names the task's folder and files


class EvalSource(NamedTuple):
    section: Any  # the EvalSection
    answer_format: Any  # the recipe's, or None
    name: str  # the default task name: the recipe's name, else the file's
    is_recipe: bool


@dataclass
class EvalTask:
    name: str
    yaml_path: Path
    docs: list[dict[str, Any]]
    metrics: list[str]

    @property
    def data_path(self) -> Path:
        return self.yaml_path.with_suffix(".json")

    def categories(self) -> Counter:
        return Counter(doc["category"] or "(none)" for doc in self.docs)


def load_eval_source(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalSource:
    """The eval section of a recipe, or of a YAML file holding one alone (data, evaluator, ...)."""
    from ablate.recipe.loading import validate_sourced
    from ablate.recipe.yaml_source import apply_overrides, load_with_bases

    src = apply_overrides(load_with_bases(path), overrides)
    if RECIPE_KEYS.isdisjoint(src.data):
        return EvalSource(_eval_section(src), None, Path(path).stem, False)
    recipe = validate_sourced(src)
    if recipe.eval is None or recipe.eval.data is None:
        raise AblateError(f"{path}: the recipe has no eval.data, whose held-out samples the task would hold; "
                          "add e.g. eval: {data: {type: easy_vqa, split: test, style: qa}, evaluator: exact_match}")
    return EvalSource(recipe.eval, recipe.answer_format, recipe.name, True)


def _eval_section(src):
    from pydantic import ValidationError

    from ablate.recipe.loading import pydantic_problems
    from ablate.recipe.schema import EvalSection
    from ablate.registry import registries

    registries()  # built-ins and plugins, before the components are looked up
    try:
        return EvalSection.model_validate(src.data)
    except ValidationError as exc:
        raise ProblemsError(src.source, pydantic_problems(exc.errors(), src, root=EvalSection)) from None


def write_eval_task(folder: Path, name: str, section, *, answer_format=None, limit: int | None = None,
                    embed_images: bool = False) -> EvalTask:
    """Task `name` in `folder/name/`: the documents of the eval section's data source (the first
    `limit`, default eval.limit), scored by its evaluator."""
    from ablate.data.sources.base import check_unique_ids
    from ablate.eval.lmms_docs import evaluator_of
    from ablate.eval.lmms_tasks import write_task
    from ablate.registry import registries

    if not TASK_NAME.match(name):
        raise AblateError(f"task name {name!r} cannot name a folder: use letters, digits, '_', '.' and '-'")
    if section.evaluator.type in JUDGED_EVALUATORS:
        raise AblateError(f"eval.evaluator {section.evaluator.type} asks a judge model for every answer; write tasks "
                          "for evaluators that score answers themselves (exact_match, scienceqa), and score "
                          "judged benchmarks with lmms-eval's own tasks (llava_in_the_wild, mmvet) and eval.judge")
    evaluator_json = json.dumps(section.evaluator.model_dump(mode="json"), sort_keys=True)
    _make_folder(folder / name)
    source = registries().data_source.get(section.data.type).build(section.data, answer_format=answer_format)
    samples = source.samples()[: limit or section.limit or None]
    if not samples:
        raise DataError(f"eval.data ({section.data.type}) yields no samples to write")
    check_unique_ids(samples, source, f"eval.data {section.data.type}")
    docs = [task_doc(sample, evaluator_json, embed_images) for sample in samples]
    metrics = reported_metrics(evaluator_of(evaluator_json), docs)
    try:
        path = write_task(folder, name, task_config(metrics, section, evaluator_json), docs)
    except OSError as exc:
        raise AblateError(f"cannot write task {name!r} under {folder}: {exc.strerror or exc}") from None
    return EvalTask(name, path, docs, metrics)


def _make_folder(path: Path) -> None:
    """The task's folder, made before any sample is read, so that an unusable OUT fails first."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AblateError(f"cannot write the task to {path}: {exc.strerror or exc}") from None


def task_doc(sample: dict[str, Any], evaluator_json: str, embed_images: bool = False) -> dict[str, Any]:
    """One sample as a document (the fields in the module docstring)."""
    from ablate.eval.evaluators import record_category
    from ablate.eval.generation import prompt_turns, reference_answer

    turns = prompt_turns(sample)
    if len(turns) != 1 or turns[0]["from"] != "human":
        raise DataError(f"sample {sample['id']!r}: its prompt has {len(turns)} turns; an lmms-eval task asks one "
                        "question per document")
    meta = sample.get("meta") or {}
    image = sample.get("image")
    return {"id": str(sample["id"]), "question": turns[0]["value"].replace(IMAGE_TOKEN, "").strip(),
            "image": (_embedded(image, sample["id"]) if embed_images else str(Path(image).absolute())) if image else None,
            "answer": reference_answer(sample),
            "category": record_category({"meta": meta, "data_type": sample.get("data_type")}),
            "meta": json.dumps(meta, sort_keys=True, default=str), "evaluator": evaluator_json}


def _embedded(path: str, sample_id: str) -> str:
    import base64
    import mimetypes

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: sample {sample_id!r}: cannot read the image ({exc.strerror or exc})") from None
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def reported_metrics(evaluator, docs: list[dict[str, Any]]) -> list[str]:
    """Every metric the evaluator reports for some document (judged on its own), in first-seen order."""
    from ablate.eval.lmms_docs import ablate_record

    names: dict[str, None] = {}
    for doc in docs:
        names.update(dict.fromkeys(evaluator.score([evaluator.judge(ablate_record(doc, ""))])))
    return list(names)


def task_config(metrics: list[str], section, evaluator_json: str) -> dict[str, Any]:
    """The task YAML's keys after those that read the documents (`lmms_tasks.write_task`)."""
    from ablate.eval.lmms_tasks import Function

    return {
        "output_type": "generate_until",
        "doc_to_visual": Function(f"{DOCS}.doc_to_visual"),
        "doc_to_text": Function(f"{DOCS}.doc_to_text"),
        "doc_to_target": "answer",
        # greedy, as ablate evaluates; no stop strings (lmms-eval's default is "\n\n")
        "generation_kwargs": {"max_new_tokens": section.max_new_tokens, "until": [], "do_sample": False,
                              "temperature": 0.0, "num_beams": 1},
        "process_results": Function(f"{DOCS}.process_results"),
        "metric_list": [{"metric": name, "aggregation": Function(f"{DOCS}.aggregate"), "higher_is_better": True}
                        for name in metrics],
        "metadata": {"version": 1, "written_by": "ablate data lmms-task",
                     "data": section.data.model_dump(mode="json"), "evaluator": json.loads(evaluator_json)},
    }
