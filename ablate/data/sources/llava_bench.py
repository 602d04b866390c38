"""`llava_bench`: LLaVA-Bench read from the user's copy of its released files.

Two layouts, both with one question per line (`question_id`, `image`, `text`, `category` of
conv / detail / complex) and GPT-4's reference answers (`question_id`, `text`):

- **coco** (LLaVA-Bench (COCO), 90 questions on 30 COCO val2014 images): from LLaVA's repository,
  `playground/data/coco2014_val_qa_eval/qa90_questions.jsonl` and `qa90_gpt4_answer.jsonl`, and
  `llava/eval/table/caps_boxes_coco2014_val_80.jsonl` (per image: `image`, `captions`,
  `instances` of `{category, bbox}`). Images are COCO val2014's; a question's `image` names
  `000000441147.jpg` where COCO's folder holds `COCO_val2014_000000441147.jpg`, and both are found.
- **wild** (LLaVA-Bench (In-the-Wild), the `liuhaotian/llava-bench-in-the-wild` data set):
  `questions.jsonl`, `answers_gpt4.jsonl`, `context.jsonl` (per image: `image`, `caption`), `images/`.

The judge's per-category rules come from LLaVA's `llava/eval/table/rule.json` (category ->
`{role, prompt}`; COCO uses the keys `conv`/`detail`/`complex`, in-the-wild `llava_bench_conv`...).
ablate does not ship it: the user's copy is read (`rules`, default `<path>/rule.json`).

Each sample is the question after "<image>\\n" (as LLaVA's model_vqa prompts it) and GPT-4's
answer as the gpt turn; its meta carries what `gpt4_relative_score` builds LLaVA's judge
request from: `question`, `context` (captions, then the boxes, as LLaVA's review script joins
them), `category` and `judge_rule`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field

from ablate.components.contracts import IMAGE_TOKEN
from ablate.data.contracts import DataSource
from ablate.data.sources.base import fingerprint, make_source
from ablate.errors import DataError
from ablate.fingerprint import file_fingerprint
from ablate.paths import write_text_whole
from ablate.registry import ComponentConfig

RULES_FILE = "rule.json"
RULES_HOME = "llava/eval/table/rule.json in LLaVA's repository (github.com/haotian-liu/LLaVA)"


@dataclass(frozen=True)
class Layout:
    questions: str
    answers: str
    context: str
    where: str  # where LLaVA publishes the three files, for the missing-file message
    rule_prefix: str  # rule.json key = prefix + category (LLaVA's review scripts)
    image_prefixes: tuple[str, ...]


LAYOUTS = {
    "coco": Layout(
        "qa90_questions.jsonl", "qa90_gpt4_answer.jsonl", "caps_boxes_coco2014_val_80.jsonl",
        "LLaVA's repository: playground/data/coco2014_val_qa_eval/ (questions, answers) and "
        "llava/eval/table/ (captions and boxes)", "", ("", "COCO_val2014_"),
    ),
    "wild": Layout(
        "questions.jsonl", "answers_gpt4.jsonl", "context.jsonl",
        "the Hugging Face data set liuhaotian/llava-bench-in-the-wild", "llava_bench_", ("",),
    ),
}


class LlavaBenchConfig(ComponentConfig):
    path: str = Field(description="folder holding the released LLaVA-Bench files: the questions, GPT-4 answers and context JSONL")
    layout: Literal["coco", "wild"] = Field("coco", description="coco: LLaVA-Bench (COCO); wild: In-the-Wild")
    rules: str | None = Field(
        None, description=f"the judge's rules file (default: <path>/{RULES_FILE}; it is {RULES_HOME})",
    )
    image_root: str | None = Field(
        None, description="image folder (default: <path>/images if present, else <path>); for COCO, val2014",
    )
    limit: int | None = Field(None, gt=0, description="keep only the first N questions")


@dataclass
class Bench:
    """The files of one LLaVA-Bench copy, resolved and checked to exist."""

    layout: Layout
    questions: Path
    answers: Path
    context: Path
    rules: Path
    image_root: Path

    def files(self) -> list[Path]:
        return [self.questions, self.answers, self.context, self.rules]


def locate(config: LlavaBenchConfig) -> Bench:
    """The copy's files; a DataError naming the first missing one and where LLaVA keeps it."""
    folder = Path(config.path).expanduser()
    if not folder.is_dir():
        raise DataError(f"llava_bench: {str(folder)!r} is not a folder; point `path` at your LLaVA-Bench copy")
    layout = LAYOUTS[config.layout]
    for name in (layout.questions, layout.answers, layout.context):
        if not (folder / name).is_file():
            raise DataError(
                f"llava_bench ({config.layout}): {folder / name} not found; copy {name} from {layout.where}")
    rules = Path(config.rules).expanduser() if config.rules else folder / RULES_FILE
    if not rules.is_file():
        raise DataError(
            f"llava_bench: the judge's rules file {rules} not found. ablate does not ship it: copy {RULES_HOME} "
            f"into {folder} (or set `rules` / --rules to your copy)"
        )
    default_root = folder / "images" if (folder / "images").is_dir() else folder
    root = Path(config.image_root).expanduser() if config.image_root else default_root
    if not root.is_dir():
        raise DataError(f"llava_bench: image_root {str(root)!r} is not a folder")
    return Bench(layout, folder / layout.questions, folder / layout.answers, folder / layout.context, rules, root)


def read_jsonl(file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; DataError naming the file and line otherwise."""
    with file.open("rb") as handle:  # bytes, so a line that is not UTF-8 is named by its number
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{file}:{number}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
            except json.JSONDecodeError as exc:
                raise DataError(f"{file}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{file}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def need(record: dict[str, Any], name: str, kinds: type | tuple[type, ...], where: str) -> Any:
    value = record.get(name)
    if not isinstance(value, kinds) or isinstance(value, bool):
        got = "it is missing" if name not in record else f"got {value!r}"
        kind = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        raise DataError(f"{where}: field {name!r} must be a {kind} ({got})")
    return value


def read_rules(file: Path) -> dict[str, dict[str, str]]:
    from ablate.data.sources.base import read_json_file

    rules = read_json_file(file)
    if not isinstance(rules, dict):
        raise DataError(
            f"{file}: expected LLaVA's rules object (category -> {{role, prompt}}), got {type(rules).__name__}")
    return rules


def rule_for(rules: dict[str, Any], key: str, file: Path) -> dict[str, str]:
    rule = rules.get(key)
    if not isinstance(rule, dict):
        raise DataError(f"{file}: no rule for category {key!r} (has {', '.join(map(repr, rules)) or 'none'})")
    where = f"{file}: rule {key!r}"
    return {"key": key, "role": need(rule, "role", str, where), "prompt": need(rule, "prompt", str, where)}


def read_answers(file: Path) -> dict[str, str]:
    answers: dict[str, str] = {}
    for number, record in read_jsonl(file):
        where = f"{file}:{number}"
        qid = str(need(record, "question_id", (int, str), where))
        answers[qid] = need(record, "text", str, where)
    return answers


def read_contexts(file: Path, layout: Layout) -> dict[str, str]:
    """image name -> the judge's context text, joined as LLaVA's review scripts join it."""
    contexts: dict[str, str] = {}
    for number, record in read_jsonl(file):
        where = f"{file}:{number}"
        image = need(record, "image", str, where)
        if layout is LAYOUTS["coco"]:
            captions = need(record, "captions", list, where)
            instances = need(record, "instances", list, where)
            boxes = [_box(instance, f"{where}: instance {n}") for n, instance in enumerate(instances)]
            contexts[image] = "\n".join(map(str, captions)) + "\n\n" + "\n".join(boxes)
        else:
            caption = need(record, "caption", (str, list), where)
            contexts[image] = caption if isinstance(caption, str) else "\n".join(map(str, caption))
    return contexts


def _box(instance: Any, where: str) -> str:
    if not isinstance(instance, dict):
        raise DataError(f"{where}: expected a {{category, bbox}} object, got {type(instance).__name__}")
    # str() of the list, as LLaVA's f-string writes it: "[0.37, 0.584, 0.504, 0.709]"
    return f"{need(instance, 'category', str, where)}: {need(instance, 'bbox', list, where)}"


def find_image(root: Path, name: str, layout: Layout, where: str) -> str:
    """The image's name inside root: as the question names it, or with COCO's file prefix."""
    for candidate in (prefix + name for prefix in layout.image_prefixes):
        if (root / candidate).is_file():
            return candidate
    tried = " or ".join(str(root / (p + name)) for p in layout.image_prefixes)
    raise DataError(f"{where}: image not found: {tried} (set image_root / --images to the image folder)")


def bench_records(bench: Bench, limit: int | None = None) -> list[dict[str, Any]]:
    """The copy as LLaVA-conversation records (image relative to the image root), checked."""
    rules = read_rules(bench.rules)
    answers = read_answers(bench.answers)
    contexts = read_contexts(bench.context, bench.layout)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, question in read_jsonl(bench.questions):
        where = f"{bench.questions}:{number}"
        qid = str(need(question, "question_id", (int, str), where))
        if qid in seen:
            raise DataError(f"{where}: question_id {qid} appears twice")
        seen.add(qid)
        image, text = need(question, "image", str, where), need(question, "text", str, where)
        category = need(question, "category", str, where)
        if qid not in answers:
            raise DataError(f"{where}: question_id {qid} has no answer in {bench.answers}")
        if image not in contexts:
            raise DataError(f"{where}: image {image!r} has no captions in {bench.context}")
        records.append({
            "id": qid, "image": find_image(bench.image_root, image, bench.layout, where),
            "conversations": [{"from": "human", "value": f"{IMAGE_TOKEN}\n{text}"},
                              {"from": "gpt", "value": answers[qid]}],
            "category": category, "question_id": question["question_id"], "question": text,
            "context": contexts[image], "judge_rule": rule_for(rules, bench.layout.rule_prefix + category, bench.rules),
        })
        if limit is not None and len(records) >= limit:
            break
    if not records:
        raise DataError(f"{bench.questions}: has no questions")
    return records


def as_sample(record: dict[str, Any], root: Path) -> dict[str, Any]:
    meta = {k: v for k, v in record.items() if k not in ("id", "image", "conversations")}
    return {"id": record["id"], "image": str(root / record["image"]), "conversations": record["conversations"],
            "data_type": record["category"], "meta": meta}


def build_llava_bench(
    config: LlavaBenchConfig, *, answer_format: Any = None, on_bad_sample: str = "error"
) -> DataSource:
    """LLaVA-Bench (COCO or in-the-wild) from the released files and the user's rule.json.

    `on_bad_sample: skip` does not apply: a benchmark with questions left out is another
    benchmark, so any bad line is a DataError.
    """
    bench = locate(config)
    files = {str(f): file_fingerprint(f) for f in bench.files()}
    fp = fingerprint("llava_bench", config.model_dump(mode="json"), files, str(bench.image_root))

    def produce() -> Iterator[dict[str, Any]]:  # every file is checked whole: a bad line is a DataError
        for record in bench_records(bench, config.limit):
            yield as_sample(record, bench.image_root)

    return make_source(f"llava_bench_{config.layout}", fp, produce, where=str(bench.questions),
                       on_bad_sample="error", files=files)


def write_prepared(
    config: LlavaBenchConfig, out: Path, *, overwrite: bool = False
) -> tuple[list[dict[str, Any]], Path]:
    """Check the copy whole and write it as `llava_json` records (a .json list, else JSONL).

    Returns the records and the image root their `image` names are relative to. Nothing is
    written unless every file checks out; the file appears whole (written aside, then renamed).
    """
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists; pass --overwrite to replace it")
    bench = locate(config)
    records = bench_records(bench, config.limit)
    if out.suffix == ".json":
        text = json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_whole(out, text)
    return records, bench.image_root
