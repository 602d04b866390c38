"""Evaluation generates in batches of similar length with the LLM's KV cache, stops each row at the
template's stop string, and returns the records in sample order with the predictions of generating
every row in full."""

from __future__ import annotations

import copy

import pytest
import torch
from eval_parts import tiny_eval, tiny_run

from ablate.components.contracts import IMAGE_TOKEN_INDEX as I
from ablate.eval.generation import batches, generate_records, length_order, spliced_length


def test_prompts_are_ordered_by_spliced_length_longest_first():
    prompts = [[1, 2, 3], [1, I, 2], [1, 2], [4, 5, 6]]
    assert [spliced_length(p, 4) for p in prompts] == [3, 6, 2, 3]
    assert length_order(prompts, 4) == [1, 0, 3, 2]  # equal lengths keep their order
    assert batches([1, 0, 3, 2], 3) == [[1, 0, 3], [2]]


class _Template:
    stop = "###"

    def prompt_ids(self, turns, tokenizer):
        return [1] * len(turns[-1]["value"])

    def clean_prediction(self, text):
        return text


class _Evaluator:
    def judge(self, record):
        return {**record, "correct": record["prediction"] == record["answer"]}


class _Tokenizer:
    def batch_decode(self, tokens, skip_special_tokens=True):
        return [str(int(row[0])) for row in tokens]


class _LengthModel(torch.nn.Module):
    """Generates one token per row: the row's prompt length; records each batch's width."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.widths: list[int] = []
        self.stops: list[list[str]] = []

    def generate(self, input_ids, attention_mask, max_new_tokens, stop_strings, tokenizer):
        self.widths.append(input_ids.shape[1])
        self.stops.append(stop_strings)
        return attention_mask.sum(1, keepdim=True)


def test_records_come_back_in_sample_order_from_length_sorted_batches():
    lengths = [2, 7, 4, 9, 1]
    samples = [{"id": str(i), "conversations": [{"from": "human", "value": "x" * n}, {"from": "gpt", "value": str(n)}]}
               for i, n in enumerate(lengths)]
    model = _LengthModel()
    records = generate_records(model, samples, template=_Template(), evaluator=_Evaluator(),
                               collator=lambda rows: _left_padded([r["input_ids"] for r in rows]),
                               tokenizer=_Tokenizer(), batch_size=2, max_new_tokens=3)
    assert [r["id"] for r in records] == ["0", "1", "2", "3", "4"]
    assert [r["prediction"] for r in records] == ["2", "7", "4", "9", "1"]
    assert all(r["correct"] for r in records)
    assert model.widths == [9, 4, 1]  # (9, 7), (4, 2), (1)
    assert model.stops == [["###"]] * 3


def _left_padded(prompts):
    from ablate.data.collate import left_pad

    ids, mask = left_pad(prompts, 0)
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_eval(tmp_path_factory.mktemp("eval"), tiny_run.easy_vqa("qa", images=2, split="test", limit=4))


def _llm_inputs(vlm):
    """The sequence length of every LLM forward, recorded while the context is open."""
    lengths: list[int] = []

    def record(module, args, kwargs):
        fed = kwargs.get("inputs_embeds") if kwargs.get("inputs_embeds") is not None else kwargs["input_ids"]
        lengths.append(fed.shape[1])

    return lengths, vlm.llm.register_forward_pre_hook(record, with_kwargs=True)


def test_rows_stop_at_the_stop_string_and_the_batch_with_them(tiny):
    vlm, plan, collator = tiny
    copies = [{**plan.samples[0], "id": f"copy{i}"} for i in range(3)]  # one batch, the same greedy tokens
    tokens = vlm.generate(**{k: v for k, v in collator(_rows(plan, vlm, copies)).items() if k != "ids"},
                          max_new_tokens=plan.max_new_tokens)[0].tolist()
    texts = [vlm.tokenizer.decode(tokens[:k], skip_special_tokens=True) for k in range(1, len(tokens) + 1)]
    template = copy.copy(plan.template)
    template.stop = texts[1].strip()  # the first two tokens' text: met at the second step
    assert template.stop and template.stop not in texts[0], f"no stop string met at step 2 in {texts}"

    lengths, hook = _llm_inputs(vlm)
    try:
        records = generate_records(vlm, copies, template=template, evaluator=plan.evaluator, collator=collator,
                                   tokenizer=vlm.tokenizer, batch_size=3, max_new_tokens=plan.max_new_tokens)
    finally:
        hook.remove()
    assert len(lengths) == 3 and lengths[2] == 1  # the shared prefix, the rest of the prompt, one step
    assert [r["prediction"] for r in records] == [texts[-1].split(template.stop, 1)[0].strip()] * 3


def test_generation_feeds_the_shared_prefix_once_the_rest_once_then_one_token_a_step(tiny):
    vlm, plan, collator = tiny
    rows = _rows(plan, vlm, plan.samples[:2])
    batch = {k: v for k, v in collator(rows).items() if k != "ids"}
    vlm.llm.generation_config.use_cache = False  # as a checkpoint saved after training may say
    lengths, hook = _llm_inputs(vlm)
    try:
        new = vlm.generate(**batch, max_new_tokens=4, min_new_tokens=4)
    finally:
        hook.remove()
        vlm.llm.generation_config.use_cache = True
    spliced, _, _ = vlm.embed_inputs(batch["input_ids"], batch["attention_mask"], None, batch["pixel_values"],
                                     padding_side="left")
    system_prompt = rows[0]["input_ids"].index(I)  # the tokens before the image: the same in both rows
    assert lengths == [system_prompt, spliced.shape[1] - system_prompt, 1, 1, 1]
    alone = [vlm.generate(**{k: v for k, v in collator([row]).items() if k != "ids"}, max_new_tokens=4,
                          min_new_tokens=4)[0].tolist() for row in rows]
    assert new.tolist() == alone


def _rows(plan, vlm, samples):
    from ablate.eval.generation import prompt_turns

    return [{"id": s["id"], "image": s.get("image"), "input_ids": plan.template.prompt_ids(prompt_turns(s), vlm.tokenizer)}
            for s in samples]
