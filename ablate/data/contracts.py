"""Contracts between data sources, mixtures, templates, answer formats and evaluators.

Sample (a plain dict, JSON-serialisable; what every data source yields):
    id: str                       unique within its source
    image: str | None             absolute path of the image, None for text-only samples
    conversations: list[{"from": "human"|"gpt", "value": str}]
                                  LLaVA format; "<image>" appears once in a human turn
                                  when `image` is set
    data_type: str | None         e.g. "conversation", "detail", "reasoning", "caption", "vqa"
    meta: dict                    free-form, JSON-serialisable: categories (ScienceQA subject,
                                  grade, context...), the short answer, the answer letter, ...

Data source builder: `build(config, *, answer_format=None, on_bad_sample="error") -> DataSource`
Mixture builder:     `build(config, *, answer_format=None, on_bad_sample="error") -> DataSource`
    (a mixture builds its sources through the `data_source` registry and samples from them)
    Every source gets the recipe's answer format; one that reads it (renders questions and
    answers by it, like `scienceqa`) declares an `answer_format` field in its config, and a
    recipe whose answer format no source reads is rejected (ablate.recipe.compatibility).

Template builder: `build(config) -> ConversationTemplate`
    encode(conversations, tokenizer) -> (input_ids: list[int], labels: list[int])
        "<image>" becomes IMAGE_TOKEN_INDEX in input_ids; labels are IGNORE_INDEX except the
        supervised targets.
    prompt_ids(conversations, tokenizer) -> list[int]
        the generation prompt: every turn before the final assistant turn, then the assistant
        role prefix (the final gpt turn, if present, is left out).
    clean_prediction(text) -> str   strips separators/role markers from generated text

Answer format builder: `build(config) -> AnswerFormat` (the protocol: ablate.eval.contracts;
    ScienceQA's formats: ablate.scienceqa.formats)

Evaluator builder: `build(config) -> Evaluator` (the protocol: ablate.eval.contracts)
    judge(record) -> record       adds "correct" (bool) and any extracted fields
    score(records) -> dict[str, float]   metric name -> value; "accuracy" is the headline
    metric_prefix, benchmark_prefix, check_answer_format(answer_format) -> str | None
    A record is {"id", "prompt", "prediction", "answer", "meta"}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


@dataclass
class DataSource:
    """A reproducible stream of samples.

    `fingerprint` changes whenever the samples would (config, the files' fingerprints), so the
    tokenized HF dataset built from it can be cached by fingerprint.
    """

    name: str
    fingerprint: str
    iter_samples: Callable[[], Iterator[dict[str, Any]]]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (sample id, reason)
    # The data files it reads -> their fingerprints (ablate.fingerprint), so a run that retrains
    # because the data changed can name the file. Sources without files leave it empty.
    files: dict[str, str] = field(default_factory=dict)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_samples()

    def samples(self) -> list[dict[str, Any]]:
        return list(self.iter_samples())
