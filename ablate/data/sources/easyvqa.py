"""`easy_vqa`: the easy-VQA data set shipped by the `easy-vqa` package.

4,000 train and 1,000 test images of one coloured shape, with about 48k questions. Styles:
  qa            one single-turn sample per package question (data_type "vqa");
                meta: answer, question_type and category (shape / color / yes/no), question, image_id
  conversation  one multi-turn conversation per image with all its questions, seeded order
  caption       a short caption per image ("A blue circle."), for stage-1 alignment
  detail        "Describe the image in detail." -> shape, colour, background, size, position
  reasoning     a question needing one reasoning step (corners, straight sides), answered
                with the explanation; meta["answer"] is the short answer
Together conversation/detail/reasoning make LLaVA's Table-4 data-type ablation expressible.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Iterator, Literal

from pydantic import Field

from ablate.data.contracts import DataSource
from ablate.data.sources.base import BadSample, OnBadSample, check_on_bad_sample, fingerprint, make_source
from ablate.registry import ComponentConfig

Style = Literal["qa", "conversation", "caption", "detail", "reasoning"]
DATA_TYPES = {"qa": "vqa", "conversation": "conversation", "caption": "caption", "detail": "detail",
              "reasoning": "reasoning"}


class EasyVQAConfig(ComponentConfig):
    split: Literal["train", "test"] = "train"
    style: Style = "qa"
    limit: int | None = Field(None, gt=0, description="keep only the first N samples")
    images_limit: int | None = Field(None, gt=0, description="use only the N lowest-numbered images")
    seed: int = Field(0, description="question order (conversation) and prompt wording")
    instruction: str | None = Field(
        "Answer the question using a single word or phrase.",
        description="appended to each question in style qa (LLaVA-1.5's short-answer prompt)",
    )


def build_easy_vqa(
    config: EasyVQAConfig, *, answer_format: Any = None, on_bad_sample: OnBadSample = "error"
) -> DataSource:
    """The easy-VQA questions and images as LLaVA conversations."""
    from importlib.metadata import version

    check_on_bad_sample(on_bad_sample)
    fp = fingerprint("easy_vqa", config.model_dump(mode="json"), version("easy-vqa"), on_bad_sample)
    name = f"easy_vqa_{config.split}_{config.style}"
    return make_source(name, fp, lambda: _produce(config), where=f"easy-VQA {config.split}",
                       on_bad_sample=on_bad_sample)


def load_split(split: str) -> tuple[dict[int, list[tuple[int, str, str]]], dict[int, str]]:
    """({image id: [(question index, question, answer)]}, {image id: image path})."""
    import easy_vqa

    texts, answers, image_ids = getattr(easy_vqa, f"get_{split}_questions")()
    paths = getattr(easy_vqa, f"get_{split}_image_paths")()
    by_image: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for index, (text, answer, image_id) in enumerate(zip(texts, answers, image_ids)):
        by_image[image_id].append((index, text, answer))
    return dict(by_image), paths


def _produce(config: EasyVQAConfig) -> Iterator[Any]:
    by_image, paths = load_split(config.split)
    images = sorted(by_image)[: config.images_limit]
    count = 0
    for image_id in images:
        for item in _samples_for(config, image_id, by_image[image_id], paths[image_id]):
            if config.limit is not None and count >= config.limit:
                return
            count += not isinstance(item, BadSample)
            yield item


def _samples_for(config: EasyVQAConfig, image_id: int, qas: list[tuple[int, str, str]], path: str) -> Iterator[Any]:
    from ablate.data.sources import easyvqa_text as text
    from ablate.data.sources.easyvqa_facts import look, question_type, shape_and_color

    split, style = config.split, config.style
    base = f"easy_vqa/{split}/{image_id}"
    rng = random.Random(f"{config.seed}/{split}/{image_id}/{style}")
    data_type = DATA_TYPES[style]

    def sample(suffix: str, turns: list[tuple[str, str]], **meta: Any) -> dict[str, Any]:
        conversations = []
        for i, (question, answer) in enumerate(turns):
            human = f"<image>\n{question}" if i == 0 else question
            conversations += [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]
        return {"id": f"{base}/{suffix}", "image": path, "conversations": conversations,
                "data_type": data_type, "meta": {"image_id": image_id, **meta}}

    if style == "qa":
        for index, question, answer in qas:
            prompt = f"{question}\n{config.instruction}" if config.instruction else question
            kind = question_type(answer)
            # `category` makes evaluators report accuracy per question type (shape / color / yes/no)
            yield sample(f"q{index}", [(prompt, answer)], answer=answer,
                         question_type=kind, category=kind, question=question)
        return
    if style == "conversation":
        order = list(qas)
        rng.shuffle(order)
        yield sample("conversation", [(q, a) for _, q, a in order], question_indices=[i for i, _, _ in order])
        return

    try:
        shape, color = shape_and_color([(q, a) for _, q, a in qas], path)
    except ValueError as exc:
        yield BadSample(base, str(exc))
        return
    if style == "caption":
        answer = text.caption(shape, color)
        yield sample("caption", [(rng.choice(text.CAPTION_PROMPTS), answer)], answer=answer, shape=shape, color=color)
        return
    if shape is None or color is None:
        yield BadSample(base, f"cannot tell the shape and colour of image {path}")
        return
    if style == "detail":
        answer = text.detail(shape, color, look(path))
        yield sample("detail", [(rng.choice(text.DETAIL_PROMPTS), answer)], answer=answer, shape=shape, color=color)
        return
    question, explained, short = text.reasoning(shape, color, rng)
    yield sample("reasoning", [(question, explained)], answer=short, shape=shape, color=color)
