"""The `scienceqa` evaluator: LLaVA's answer extraction and ScienceQA's category scores.

Extraction follows LLaVA's `llava/eval/eval_science_qa.py`, in order, on the stripped
prediction (LLaVA's generation script strips the decoded text):
  1. the prediction is exactly one of the option letters A-E               -> that letter
  2. it is at least 3 characters, starts with an option letter and ". "    -> that letter
  3. the pattern `The answer is ([A-Z]).` (the "." matches any character)
     has exactly one match                                                   -> that letter
  4. otherwise                                                               -> "FAILED"
A letter is correct when it is within the problem's choices and is the gold letter; "FAILED"
and letters past the last choice are wrong. (`match_choice_text: true` adds two rules that
LLaVA lacks, for answers given as an option's text, between rules 2 and 3: a prediction
equal, after normalisation, to exactly one option's text picks that option (llava15_short);
else every "The answer is <option text>." in it (the `-text` formats, e.g. QCM-LEA-text),
each read as the longest option that fits (case aside; followed by ".", a line break or
the end), picks that option when they all name the same one. They come before rule 3, whose
"." matches any character and would read "The answer is Bears." as B.)

Scores are percentages (0-100), like the ScienceQA and LLaVA papers, unrounded:
  accuracy           all records
  NAT / SOC / LAN    by subject
  TXT / IMG / NO     by context: TXT = non-empty hint, IMG = has an image (they overlap),
                     NO = neither (ScienceQA's `tools/evaluate_acc.py`)
  G1-6 / G7-12       by grade band
A column with no records is left out (ScienceQA's script prints -1 there).
Records are `{"id", "prompt", "prediction", "answer", "meta"}` with the meta the `scienceqa`
data source writes (`answer_letter`, `num_choices`, `subject`, `grade`, `has_hint`, `has_image`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from pydantic import Field

from ablate.errors import DataError
from ablate.eval.contracts import AnswerFormat, EvaluatorBase
from ablate.registry import ComponentConfig
from ablate.scienceqa import problems as sqa
from ablate.scienceqa.formats import OPTION_LETTERS

FAILED = "FAILED"
PAPER_COLUMN_ORDER = ("NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "accuracy")
_LETTERS = tuple(OPTION_LETTERS)  # a tuple: membership must be exact, not substring
_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
ANSWER_IS_PREFIX = "The answer is "


def extract_answer(prediction: str, choices: list[str] | None = None) -> str:
    """LLaVA's parsed answer: a letter, or "FAILED". `choices` enables the choice-text rules."""
    text = prediction.strip()
    if text in _LETTERS:
        return text
    if len(text) >= 3 and text[0] in OPTION_LETTERS and text[1:3] == ". ":
        return text[0]
    if choices:
        picked = _whole_option(text, choices)
        picked = picked if picked is not None else _stated_option(text, choices)
        if picked is not None and picked < len(OPTION_LETTERS):
            return OPTION_LETTERS[picked]
    found = _ANSWER_IS.findall(text)
    if len(found) == 1:
        return found[0]
    return FAILED


def _whole_option(text: str, choices: list[str]) -> int | None:
    """The one option whose text the whole prediction is (VQA normalisation)."""
    from ablate.eval.evaluators import normalize_answer

    wanted = normalize_answer(text)
    hits = [i for i, c in enumerate(choices) if normalize_answer(c) == wanted]
    return hits[0] if len(hits) == 1 else None


def _stated_option(text: str, choices: list[str]) -> int | None:
    """The option every "The answer is <option text>." of the prediction names, if one."""
    named = set()
    for found in re.finditer(re.escape(ANSWER_IS_PREFIX), text):
        rest = text[found.end():].lower()
        fits = [i for i, c in enumerate(choices) if _starts_with_option(rest, c.lower())]
        if fits:  # "1" and "1.5" both fit "1.5.": the longer is the one meant
            named.add(max(fits, key=lambda i: len(choices[i])))
    return named.pop() if len(named) == 1 else None


def _starts_with_option(rest: str, option: str) -> bool:
    if not option or not rest.startswith(option):
        return False
    tail = rest[len(option):]
    return option.endswith(".") or tail == "" or tail[0] in ".\n"


def is_correct(letter: str, gold_letter: str, num_choices: int) -> bool:
    """LLaVA maps a letter past the last choice to -1, which never equals the gold index."""
    return letter in _LETTERS[:num_choices] and letter == gold_letter


class ScienceQAEvaluatorConfig(ComponentConfig):
    match_choice_text: bool = Field(
        False, description="also accept a prediction equal to one option's text (not in LLaVA's rules)")


class ScienceQAEvaluator(EvaluatorBase):
    benchmark_prefix = "scienceqa"  # the run logs scienceqa/NAT, ... beside eval/NAT, ...

    def __init__(self, config: ScienceQAEvaluatorConfig | None = None):
        self.config = config or ScienceQAEvaluatorConfig(type="scienceqa")

    def check_answer_format(self, answer_format: AnswerFormat) -> str | None:
        # LLaVA's extraction only reads letters: option-text answers would all score FAILED.
        if answer_format.target == "text" and not self.config.match_choice_text:
            return (f"answer format {answer_format.key} answers with the option's text, which LLaVA's "
                    "letter extraction scores as FAILED; use {type: scienceqa, match_choice_text: true}")
        return None

    def answer_options(self, meta: dict[str, Any]) -> list[str] | None:
        """The option letters, or the options' texts when the item's format answers with the text."""
        from ablate.scienceqa.formats import resolve_answer_format

        choices, key = meta.get("choices"), meta.get("answer_format")
        if not choices or not key:
            return None
        if resolve_answer_format(key).target == "text":
            return [str(choice) for choice in choices]
        return list(OPTION_LETTERS[: len(choices)])

    def judge(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of the record with `extracted` (letter or "FAILED") and `correct`."""
        meta = record.get("meta") or {}
        gold = meta.get("answer_letter") or record.get("answer")
        num_choices = meta.get("num_choices")
        if gold not in _LETTERS or not isinstance(num_choices, int):
            raise DataError(
                f"scienceqa evaluator: record {record.get('id')!r} lacks meta.answer_letter/num_choices; "
                f"evaluate samples from the scienceqa data source"
            )
        choices = meta.get("choices") if self.config.match_choice_text else None
        letter = extract_answer(str(record.get("prediction") or ""), choices)
        return {**record, "extracted": letter, "correct": is_correct(letter, gold, num_choices)}

    def score(self, records: Iterable[dict[str, Any]]) -> dict[str, float]:
        judged = self.judged(records, "scienceqa")
        totals: dict[str, list[int]] = {}
        for record in judged:
            for column in ("accuracy", *record_columns(record.get("meta") or {})):
                hit_total = totals.setdefault(column, [0, 0])
                hit_total[0] += bool(record["correct"])
                hit_total[1] += 1
        return {c: 100.0 * totals[c][0] / totals[c][1] for c in PAPER_COLUMN_ORDER if c in totals}


def record_columns(meta: dict[str, Any]) -> list[str]:
    """The paper columns (besides accuracy) a record counts toward."""
    columns = [sqa.subject_code(meta.get("subject") or ""), sqa.grade_band(meta.get("grade") or "")]
    columns += sqa.context_codes(bool(meta.get("has_hint")), bool(meta.get("has_image")))
    return [c for c in columns if c]


def llava_answer_records(root: str | Path, split: str, answers_file: str | Path) -> list[dict[str, Any]]:
    """Records for every problem of `split` from a LLaVA answers JSONL ({"question_id", "text"}).

    Problems without an answer get the prediction "FAILED", as in LLaVA's script; feed the
    records to `ScienceQAEvaluator().score` to score a LLaVA (or ablate) answers file.
    """
    root = Path(root)
    problems = sqa.load_problems(root)
    answers: dict[str, dict[str, Any]] = {}
    with Path(answers_file).open() as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    answers[str(row["question_id"])] = row
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(f"{answers_file}:{n}: not a LLaVA answer line ({exc})") from None
    records = []
    for pid in sqa.load_split(root, split):
        problem = problems.get(pid)
        reason = sqa.problem_error(problem) if problem is not None else "not in problems.json"
        if reason:
            raise DataError(f"ScienceQA {root / sqa.PROBLEMS_FILE}: pid {pid}: {reason}")
        row = answers.get(pid, {})
        meta = sqa.category_meta(pid, problem)
        records.append({"id": pid, "prompt": row.get("prompt", ""), "prediction": row.get("text", FAILED),
                        "answer": meta["answer_letter"], "meta": meta})
    return records


def build_scienceqa_evaluator(config: ScienceQAEvaluatorConfig) -> ScienceQAEvaluator:
    """LLaVA's ScienceQA answer extraction; accuracy and NAT/SOC/LAN/TXT/IMG/NO/G1-6/G7-12 in %."""
    return ScienceQAEvaluator(config)
