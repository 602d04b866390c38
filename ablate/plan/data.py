"""A stage's records and how long they are in LLM positions (text tokens + visual tokens).

With the data files on the machine: every record is counted (the stage's mixture under the
recipe's `data.on_bad_sample`: with "skip" bad samples are left out and counted, with "error" the
first one stops the plan as it would stop the run, naming it), and a seeded sample of SAMPLE_SIZE records is rendered
with the stage's template and tokenized with the LLM's tokenizer, cut at `max_length` as training
cuts it (without the tokenizer, words x TOKENS_PER_WORD). Without them: the documented size and
shape of each paper data set the stage names (`ablate.data.paper_data`), one typical record per
part, its length estimated from words.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from ablate.components.contracts import IMAGE_TOKEN, IMAGE_TOKEN_INDEX
from ablate.errors import DataError

SAMPLE_SIZE = 1000
TOKENS_PER_WORD = 1.3  # English text in Llama's SentencePiece vocabulary, about


@dataclass
class StageData:
    records: int | None  # None: neither the files nor a documented size
    lengths: list[tuple[int, bool, float]]  # (LLM positions, has an image, weight) per sampled record or part
    how: str  # where the figures come from, one line
    distribution: dict[str, int] | None = None  # min / median / p95 / max positions, when measured

    @property
    def mean_positions(self) -> float:
        total = sum(weight for _, _, weight in self.lengths)
        return sum(length * weight for length, _, weight in self.lengths) / total


@dataclass(frozen=True)
class Measure:
    """How to turn a record into LLM positions for one stage."""

    template: Any
    visual_tokens: int
    max_length: int
    tokenizer: Any = None  # None: estimate from words

    def positions(self, conversations, sample_id: str | None, image: bool) -> int:
        if self.tokenizer is None:
            text = _rendered_or_joined(self.template, conversations, sample_id)
            return self.from_words(len(text.replace(IMAGE_TOKEN, " ").split()), image)
        ids, _ = self.template.encode(conversations, self.tokenizer, sample_id=sample_id, max_length=self.max_length)
        images = ids.count(IMAGE_TOKEN_INDEX)
        return min(len(ids) - images + images * self.visual_tokens, self.max_length)

    def from_words(self, words: int, image: bool) -> int:
        tokens = 1 + math.ceil(TOKENS_PER_WORD * words)  # + BOS
        return min(tokens + (self.visual_tokens if image else 0), self.max_length)


def stage_data(recipe, stage, measure: Measure, tokenizer: Callable[[], tuple[Any, str]]) -> StageData:
    """The stage's records and lengths; `tokenizer()` gives (tokenizer or None, what it is) when needed."""
    from ablate.registry import registries

    mixture = registries().mixture.get(stage.data.type)
    try:
        source = mixture.build(stage.data, answer_format=recipe.answer_format, on_bad_sample=recipe.data.on_bad_sample)
    except DataError as error:
        return documented_stage_data(stage.data.model_dump(mode="json"), measure, str(error).splitlines()[0])
    found, note = tokenizer()
    measure = Measure(measure.template, measure.visual_tokens, measure.max_length, found)
    return measured_stage_data(source, measure, note)


def measured_stage_data(source, measure: Measure, tokenizer_note: str, sample_size: int = SAMPLE_SIZE,
                        seed: int = 0) -> StageData:
    """Count every record; measure a seeded reservoir sample of them."""
    rng, sample, records = random.Random(seed), [], 0
    for records, record in enumerate(source, 1):
        if len(sample) < sample_size:
            sample.append(record)
        elif (slot := rng.randrange(records)) < sample_size:
            sample[slot] = record
    lengths, failed = [], 0
    for record in sample:
        image = record.get("image") is not None
        try:
            lengths.append((measure.positions(record["conversations"], record.get("id"), image), image, 1.0))
        except DataError:  # the template cannot encode it: training would skip it too
            failed += 1
    positions = sorted(length for length, _, _ in lengths)
    bad = f"; {len(source.skipped):,} bad records left out" if source.skipped else ""
    unencodable = f"; {failed} sampled records the template cannot encode left out" if failed else ""
    how = (f"{records:,} records in the data files{bad}; lengths of {len(sample):,} sampled records "
           f"{tokenizer_note}{unencodable}")
    return StageData(records, lengths, how, _distribution(positions) if positions else None)


def documented_stage_data(block: dict, measure: Measure, why: str) -> StageData:
    """The documented sizes of the paper data sets the data block names, a typical record per part."""
    found = documented_parts(block)
    if not found:
        return StageData(None, [], f"data files not present ({why}); no documented size for what they name")
    lengths = [(typical_positions(part, measure), part.image, kept * share)
               for data, kept in found for part, share in data.shares()]
    names = ", ".join(f"{data.name} {kept:,.0f} of {data.records:,} ({data.source})" for data, kept in found)
    how = (f"data files not present: documented sizes, {names}; lengths of a typical record per part, "
           f"words x {TOKENS_PER_WORD}")
    return StageData(round(sum(kept for _, kept in found)), lengths, how)


def documented_parts(block: dict) -> list[tuple[Any, float]]:
    """(documented data set, records of it the block keeps) for each paper file or folder it names."""
    from ablate.data.paper_data import documented
    from ablate.study.named_files import named_paths

    found = []
    for path, value, _ in named_paths(block, ()):
        owner = _at(block, path[:-1])
        data = documented(value, owner.get("split") if isinstance(owner, dict) else None)
        if data is not None and (kept := _kept(block, path, data.records)):
            found.append((data, kept))
    return found


def typical_positions(part, measure: Measure) -> int:
    """LLM positions of a record with the part's mean pairs and words, rendered by the stage's template."""
    question = max(1, round(part.mean_question_words))
    answer = max(1, round(part.mean_answer_words))
    turns = []
    for pair in range(max(1, round(part.mean_pairs))):
        image = f"{IMAGE_TOKEN}\n" if part.image and pair == 0 else ""
        turns += [{"from": "human", "value": image + " ".join(["word"] * question)},
                  {"from": "gpt", "value": " ".join(["word"] * answer)}]
    text = _rendered_or_joined(measure.template, turns, None)
    return measure.from_words(len(text.replace(IMAGE_TOKEN, " ").split()), part.image)


def _rendered_or_joined(template, conversations, sample_id) -> str:
    """The template's text, or the turns' own words where the template cannot render them."""
    try:
        return template.render(conversations, sample_id=sample_id)
    except DataError:
        return " ".join(turn["value"] for turn in conversations)


def _kept(block: dict, path: tuple, records: int) -> float:
    """How many of a named file's `records` the data block keeps."""
    from ablate.registry import registries

    config = registries().mixture.get(block["type"]).config if block.get("type") in registries().mixture else None
    arm = dict(getattr(config, "arm", ()) or ())  # LLaVA-Instruct arms: a share of each file
    if arm:
        return records * arm.get(path[0], 0.0)
    if path[0] == "sources" and len(path) > 2:  # an inline mixture's item
        item = block["sources"][path[1]]
        if item.get("count"):
            return min(item["count"], records)
        return records * (item.get("fraction") or 1.0) * (item.get("weight") or 1.0)
    return records


def _at(block: Any, path: tuple) -> Any:
    for key in path:
        block = block[key]
    return block


def _distribution(positions: list[int]) -> dict[str, int]:
    p95 = positions[max(0, math.ceil(0.95 * len(positions)) - 1)]
    return {"min": positions[0], "median": round(statistics.median(positions)), "p95": p95, "max": positions[-1]}
