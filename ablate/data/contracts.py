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

from ablate.errors import DataError


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
    plugin: str = ""  # the distribution of a plugin's source (set when it is built), for its errors

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # Checked as they come out, so a source (a plugin's) that yields a malformed sample is
        # named here, not by a KeyError in whatever reads the sample first.
        for number, sample in enumerate(self.iter_samples()):
            if problem := sample_problem(sample):
                origin = f" (plugin {self.plugin})" if self.plugin else ""
                raise DataError(f"data source {self.name!r}{origin}: sample #{number} {_sample_label(sample)}"
                                f"{problem}; see ablate.data.contracts for what a sample holds")
            yield sample

    def samples(self) -> list[dict[str, Any]]:
        return list(self)


def sample_problem(sample: Any) -> str | None:
    """Why `sample` is not a Sample (see the module docstring), or None. Cheap: it runs on
    every sample each time a source is read."""
    if not isinstance(sample, dict):
        return f"is a {type(sample).__name__}, not a dict"
    if not isinstance(sample.get("id"), (str, int)) or isinstance(sample.get("id"), bool):
        return "has no 'id' (a str)"
    image, meta, data_type = sample.get("image"), sample.get("meta"), sample.get("data_type")
    if image is not None and not isinstance(image, str):
        return f"has an 'image' that is a {type(image).__name__}, not a path (str) or None"
    if meta is not None and not isinstance(meta, dict):
        return f"has a 'meta' that is a {type(meta).__name__}, not a dict"
    if data_type is not None and not isinstance(data_type, str):
        return f"has a 'data_type' that is a {type(data_type).__name__}, not a str or None"
    turns = sample.get("conversations")
    if not isinstance(turns, list) or not turns:
        return "has no 'conversations' (a non-empty list of {'from', 'value'} turns)"
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
            return f"has a turn {turn!r:.80} that is not {{'from': 'human' | 'gpt', 'value': str}}"
    return None


def _sample_label(sample: Any) -> str:
    sample_id = sample.get("id") if isinstance(sample, dict) else None
    return f"(id {sample_id!r}) " if sample_id is not None else ""


TEMPLATE_MEMBERS = ("render", "render_prompt", "encode", "prompt_ids", "clean_prediction", "stop")


def source_problem(built: Any, entry: Any = None) -> str | None:
    """Why what a data source or mixture builder returned is not a DataSource, or None. A good
    one is labelled with the entry's plugin, which its sample errors then name."""
    if not isinstance(built, DataSource):
        return "it must return an ablate.data.contracts.DataSource (ablate.data.sources.base.make_source makes one)"
    if entry is not None and not built.plugin:
        built.plugin = entry.plugin
    return None


def encoded_problem(encoded: Any) -> str | None:
    """Why a template's `encode` result is not (input_ids, labels) of equal length, or None."""
    if not (isinstance(encoded, (tuple, list)) and len(encoded) == 2):
        return f"must return (input_ids, labels), got a {type(encoded).__name__}"
    ids, labels = encoded
    if not (isinstance(ids, list) and isinstance(labels, list)):
        return f"must return two lists of ints, got {type(ids).__name__} and {type(labels).__name__}"
    if len(ids) != len(labels):
        return f"returned {len(ids)} input_ids but {len(labels)} labels; they must be equally long"
    return None


def template_problem(built: Any, entry: Any = None) -> str | None:
    """Why what a template builder returned is not a ConversationTemplate, or None."""
    missing = [m for m in TEMPLATE_MEMBERS if not hasattr(built, m)]
    if missing:
        return (f"it lacks {', '.join(missing)}; a template subclasses "
                "ablate.templates.ConversationTemplate (ablate.data.contracts)")
    return None
