"""eval.option_scoring: each ScienceQA option scored by the summed log-probability of its reply,
reported as <metric>_loglik beside the generated answers' metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from sqa_helpers import problem, write_scienceqa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from eval_parts import tiny_eval, tiny_run  # noqa: E402

from ablate.components.contracts import IGNORE_INDEX  # noqa: E402
from ablate.errors import AblateError  # noqa: E402
from ablate.eval.generation import finish, generate_records, prompt_turns  # noqa: E402
from ablate.scienceqa.evaluator import ScienceQAEvaluator  # noqa: E402


def test_the_options_are_the_replies_the_format_trains():
    evaluator = ScienceQAEvaluator()
    meta = {"choices": ["red", "blue", "green"], "answer_format": "llava15_short"}
    assert evaluator.answer_options(meta) == ["red", "blue", "green"]
    assert evaluator.answer_options({**meta, "answer_format": "QCM-LEA"}) == ["A", "B", "C"]
    assert evaluator.answer_options({"answer_format": "QCM-A"}) is None


@pytest.fixture(scope="module")
def sqa(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqa")
    problems = {
        "1": problem("What color is the shape?", ["red", "blue"], 1, image="image.png", split="test"),
        "2": problem("Which word names a shape?", ["dog", "circle", "soup"], 1, split="test"),
    }
    data = write_scienceqa(root / "data", problems, {"train": [], "test": ["1", "2"]})
    return tiny_eval(root, {"type": "scienceqa", "root": str(data), "split": "test"}, answer_format="llava15_short",
                     evaluator={"type": "scienceqa", "match_choice_text": True}, option_scoring=True)


def _manual_loglik(vlm, plan, collator, sample, option: str) -> float:
    """One unpadded forward of the conversation answered with `option`: its reply's summed log-probs."""
    turns = [*prompt_turns(sample), {"from": "gpt", "value": option}]
    ids, labels = plan.template.encode(turns, vlm.tokenizer)
    pixels = collator([{"id": sample["id"], "image": sample["image"], "input_ids": ids}]).get("pixel_values")
    with torch.no_grad():
        embeds, _, spliced = vlm.embed_inputs(torch.tensor([ids]), None, torch.tensor([labels]), pixels)
        logp = vlm.llm(inputs_embeds=embeds).logits[0, :-1].log_softmax(-1)
    targets = spliced[0, 1:]
    scored = targets != IGNORE_INDEX
    return float(logp[scored].gather(-1, targets[scored][:, None]).sum())


def test_option_logliks_equal_a_manual_forward_and_add_loglik_metrics(sqa):
    vlm, plan, collator = sqa
    kwargs = dict(template=plan.template, evaluator=plan.evaluator, collator=collator, tokenizer=vlm.tokenizer,
                  batch_size=2, max_new_tokens=plan.max_new_tokens)
    records = generate_records(vlm, plan.samples, option_scoring=True, **kwargs)
    for sample, record in zip(plan.samples, records):
        manual = [_manual_loglik(vlm, plan, collator, sample, o) for o in sample["meta"]["choices"]]
        assert record["option_logliks"] == pytest.approx(manual, abs=1e-4)
        assert record["loglik_prediction"] == sample["meta"]["choices"][manual.index(max(manual))]
    metrics = finish(records, plan.evaluator, None).metrics
    plain = finish(generate_records(vlm, plan.samples, **kwargs), plan.evaluator, None).metrics
    assert {k: v for k, v in metrics.items() if not k.endswith("_loglik")} == plain  # generation's, unchanged
    assert metrics["accuracy_loglik"] == 100.0 * sum(r["loglik_correct"] for r in records) / 2


def test_option_scoring_needs_items_with_options(tmp_path):
    with pytest.raises(AblateError, match=r"eval.option_scoring \(data easy_vqa\).*'easy_vqa/test/0/q0'"):
        tiny_eval(tmp_path, tiny_run.easy_vqa("qa", images=1, split="test", limit=2), evaluator="exact_match",
                  option_scoring=True)
