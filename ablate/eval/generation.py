"""Held-out evaluation: greedy generation, judging and a JSONL of predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EvalResult:
    metrics: dict[str, float]
    records: list[dict[str, Any]]
    predictions_path: Path | None


def reference_answer(sample: dict[str, Any]) -> str:
    meta = sample.get("meta") or {}
    if meta.get("answer") is not None:
        return str(meta["answer"])
    turns = sample["conversations"]
    return turns[-1]["value"] if turns and turns[-1]["from"] == "gpt" else ""


def prompt_turns(sample: dict[str, Any]) -> list[dict[str, str]]:
    turns = list(sample["conversations"])
    return turns[:-1] if turns and turns[-1]["from"] == "gpt" else turns


def evaluate(
    vlm,
    samples: list[dict[str, Any]],
    *,
    template,
    evaluator,
    collator,
    tokenizer,
    batch_size: int,
    max_new_tokens: int,
    out_path: Path | None = None,
    progress=None,
    label: str = "eval",
) -> EvalResult:
    """Generate for every sample, judge, score, and write the predictions (one process)."""
    records = generate_records(vlm, samples, template=template, evaluator=evaluator, collator=collator,
                               tokenizer=tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               progress=progress, label=label)
    return finish(records, evaluator, out_path)


def generate_records(vlm, samples, *, template, evaluator, collator, tokenizer, batch_size: int,
                     max_new_tokens: int, progress=None, label: str = "eval") -> list[dict[str, Any]]:
    """One judged record per sample, in order: greedy generation in batches."""
    import torch

    rows = [
        {"id": s["id"], "image": s.get("image"), "input_ids": template.prompt_ids(prompt_turns(s), tokenizer)}
        for s in samples
    ]
    task = progress.add_task(label, total=len(rows), info="") if progress is not None else None
    was_training = vlm.training
    vlm.eval()
    records: list[dict[str, Any]] = []
    correct = 0.0
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                chunk = samples[start : start + batch_size]
                texts = generated_texts(vlm, rows[start : start + batch_size], collator=collator,
                                        tokenizer=tokenizer, max_new_tokens=max_new_tokens)
                judged = [_judged(evaluator, template, sample, text) for sample, text in zip(chunk, texts)]
                records.extend(judged)
                correct += sum(float(r["correct"]) for r in judged)
                if task is not None:
                    progress.update(task, advance=len(chunk), info=f"acc {correct / len(records):.3f}")
    finally:
        vlm.train(was_training)
    return records


def _judged(evaluator, template, sample: dict[str, Any], text: str) -> dict[str, Any]:
    turns = prompt_turns(sample)
    return evaluator.judge({
        "id": sample["id"],
        "prompt": turns[-1]["value"] if turns else "",
        "prediction": template.clean_prediction(text),
        "answer": reference_answer(sample),
        "meta": sample.get("meta") or {},
    })


def finish(records: list[dict[str, Any]], evaluator, out_path: Path | None) -> EvalResult:
    """Score the judged records and write them as JSONL."""
    metrics = evaluator.score(records)
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with out_path.open("w") as fh:
            for r in records:
                fh.write(json.dumps(r, default=str) + "\n")
    return EvalResult(metrics, records, out_path)


def generated_texts(vlm, rows: list[dict[str, Any]], *, collator, tokenizer, max_new_tokens: int,
                    **generate_kwargs) -> list[str]:
    """One batch of prompt rows ({"id", "image", "input_ids"}) -> each row's decoded new text;
    greedy unless `generate_kwargs` (VisionLanguageModel.generate's) say otherwise."""
    batch = collator(rows)
    batch.pop("ids", None)
    new_tokens = vlm.generate(**on_device(batch, vlm), max_new_tokens=max_new_tokens, **generate_kwargs)
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def on_device(batch: dict[str, Any], model) -> dict[str, Any]:
    """The collator's CPU tensors, moved to where the model's weights are (a GPU after training)."""
    import torch

    device = next(model.parameters()).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
