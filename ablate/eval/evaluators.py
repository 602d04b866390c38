"""Generic evaluators. (ScienceQA's own evaluator lives in `ablate.scienceqa.evaluator`.)

`exact_match`: the prediction equals the reference after VQA-style normalisation
(`normalize_answer`: lowercase; apostrophes dropped; other punctuation, except a decimal
point or thousands comma inside a number, becomes a space; number words zero..ten become
digits; the articles a/an/the go; whitespace collapses). The reference (`record["answer"]`)
may be a string or a list of accepted strings. `score` gives `accuracy` as a fraction (0-1)
and `accuracy/<category>` per category, the category being the record meta's `category`
(e.g. the easy-VQA question type) or else its `data_type`.

With `sentence_credit`, a reference of several sentences (a detailed description) scores the
fraction of its sentences that the prediction states, each compared in normal form, so `correct`
is then a number in [0, 1]: all-or-nothing matching of a paragraph would score a description
with one wrong detail the same as no description at all.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import Field, field_validator

from ablate.eval.contracts import AnswerFormat, EvaluatorBase
from ablate.registry import ComponentConfig

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten".split())}
_ARTICLES = {"a", "an", "the"}


def normalize_answer(text: str) -> str:
    """VQA-style normal form of a short answer: "The Red." -> "red", "Two" -> "2"."""
    text = str(text).lower().replace("'", "").replace("\u2019", "")
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep 2.5, drop sentence periods
    text = re.sub(r"[^\w\s.]|_", " ", text)
    words = [_NUMBER_WORDS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(words)


class ExactMatchConfig(ComponentConfig):
    normalize: bool = Field(True, description="compare VQA-normalised text; false: compare stripped text")
    answer_pattern: str | None = Field(
        None, description="regex whose last match (group 1) is the answer inside a longer prediction, "
        "e.g. 'answer is (.+?)\\.?$' for reasoning-then-answer outputs; no match: the whole prediction",
    )

    @field_validator("answer_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                if re.compile(value).groups < 1:
                    raise ValueError("needs one capturing group for the answer")
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    sentence_credit: bool = Field(
        False, description="a reference of several sentences scores the fraction of its sentences the "
        "prediction states (normalised); one-sentence references still need an exact match",
    )


def sentences(text: str) -> list[str]:
    """Split after ., ! or ? followed by whitespace: "A b. C d." -> ["A b.", "C d."]."""
    return [part for part in re.split(r"(?<=[.!?])\s+", str(text).strip()) if part]


class ExactMatchEvaluator(EvaluatorBase):
    """VQA-normalised exact match; accuracy (0-1) overall and per category."""

    def __init__(self, config: ExactMatchConfig | None = None):
        self.config = config or ExactMatchConfig(type="exact_match")

    def check_answer_format(self, answer_format: AnswerFormat) -> str | None:
        if answer_format.bare_answer or self.config.answer_pattern:
            return None
        return (f"answer format {answer_format.key} trains answers with more than the answer in them "
                "(reasoning, 'The answer is X.'), which never equal the bare reference answer; set "
                "answer_pattern (e.g. 'answer is (.+?)\\.?$') or use the benchmark's evaluator")

    def _norm(self, text: Any) -> str:
        return normalize_answer(text) if self.config.normalize else str(text).strip()

    def judge(self, record: dict[str, Any]) -> dict[str, Any]:
        """A copy of the record with `normalized` (the prediction's normal form) and `correct`."""
        answers = record.get("answer")
        answers = answers if isinstance(answers, (list, tuple)) else [answers]
        accepted = {self._norm(a) for a in answers if a is not None}
        prediction = self._norm(self._extract(record.get("prediction") or ""))
        correct: float | bool = prediction in accepted
        if self.config.sentence_credit and any(len(sentences(a)) > 1 for a in answers if a is not None):
            correct = max(self._sentence_recall(record.get("prediction") or "", a) for a in answers if a is not None)
        return {**record, "normalized": prediction, "correct": correct}

    def _sentence_recall(self, prediction: str, reference: str) -> float:
        stated = {self._norm(p) for p in sentences(prediction)}
        wanted = [self._norm(r) for r in sentences(reference)]
        return sum(w in stated for w in wanted) / len(wanted)

    def _extract(self, prediction: str) -> str:
        if not self.config.answer_pattern:
            return prediction
        matches = list(re.finditer(self.config.answer_pattern, prediction, flags=re.IGNORECASE | re.MULTILINE))
        return matches[-1].group(1) if matches else prediction

    def score(self, records: Iterable[dict[str, Any]]) -> dict[str, float]:
        judged = self.judged(records, "exact_match")
        groups: dict[str, list[float]] = {}
        for record in judged:
            groups.setdefault("accuracy", []).append(float(record["correct"]))
            category = record_category(record)
            if category is not None:
                groups.setdefault(f"accuracy/{category}", []).append(float(record["correct"]))
        head = {"accuracy": sum(groups.pop("accuracy")) / len(judged)}
        return head | {k: sum(v) / len(v) for k, v in sorted(groups.items())}


def record_category(record: dict[str, Any]) -> str | None:
    meta = record.get("meta") or {}
    category = meta.get("category") or meta.get("data_type") or record.get("data_type")
    return str(category) if category else None

