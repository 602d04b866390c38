"""evaluate() hands the model its batch on the model's device (CUDA after training on a GPU)."""

from __future__ import annotations

import torch

from ablate.eval.generation import evaluate


class _Template:
    def prompt_ids(self, turns, tokenizer):
        return [1, 5, 6]

    def clean_prediction(self, text):
        return text.strip()


class _Evaluator:
    def judge(self, record):
        return {**record, "correct": record["prediction"] == record["answer"]}

    def score(self, records):
        return {"accuracy": sum(r["correct"] for r in records) / len(records)}


class _Tokenizer:
    def batch_decode(self, tokens, skip_special_tokens=True):
        return ["red" for _ in tokens]


class _Model(torch.nn.Module):
    """Weights on the meta device, standing in for a GPU: generate() records where its inputs are."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(2, device="meta"))
        self.seen: list[dict[str, torch.device]] = []

    def generate(self, max_new_tokens, **batch):
        self.seen.append({k: v.device for k, v in batch.items()})
        return torch.zeros(batch["input_ids"].shape[0], 1, dtype=torch.long)


def test_batch_tensors_follow_the_model_device():
    def collator(rows):
        n = len(rows)
        return {"input_ids": torch.ones(n, 3, dtype=torch.long), "attention_mask": torch.ones(n, 3, dtype=torch.long),
                "pixel_values": torch.zeros(n, 3, 4, 4), "ids": [r["id"] for r in rows]}

    samples = [{"id": str(i), "image": None, "conversations": [
        {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "red"}]} for i in range(3)]
    model = _Model()
    result = evaluate(model, samples, template=_Template(), evaluator=_Evaluator(), collator=collator,
                      tokenizer=_Tokenizer(), batch_size=2, max_new_tokens=1)
    assert result.metrics == {"accuracy": 1.0}
    assert len(model.seen) == 2
    assert all(device == torch.device("meta") for batch in model.seen for device in batch.values())
