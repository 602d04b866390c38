"""Held-out evaluation: greedy generation, judging and a JSONL of predictions (and, optionally,
the log-likelihood of each answer option: `ablate.eval.options`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.paths import write_text_whole


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
    option_scoring: bool = False,
) -> EvalResult:
    """Generate for every sample, judge, score, and write the predictions (one process)."""
    records = generate_records(vlm, samples, template=template, evaluator=evaluator, collator=collator,
                               tokenizer=tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens,
                               progress=progress, label=label, option_scoring=option_scoring)
    return finish(records, evaluator, out_path)


def generate_records(vlm, samples, *, template, evaluator, collator, tokenizer, batch_size: int,
                     max_new_tokens: int, progress=None, label: str = "eval",
                     option_scoring: bool = False) -> list[dict[str, Any]]:
    """One judged record per sample, in sample order: greedy generation in batches of similar length.

    Batches are cut from the prompts sorted by length with their visual tokens, longest first
    (the most memory a batch needs shows at once), so little of a batch is padding; each row
    stops at EOS or at the template's stop string, and a batch ends when all its rows have.
    What follows the stop never reaches the prediction (`clean_prediction` cuts there), so the
    predictions are those of generating every row to `max_new_tokens`.
    """
    import torch

    rows = [{"id": s["id"], "image": s.get("image"), "input_ids": template.prompt_ids(prompt_turns(s), tokenizer)}
            for s in samples]
    task = progress.add_task(label, total=len(rows), info="") if progress is not None else None
    records: list[dict[str, Any]] = [{} for _ in samples]
    correct, done = 0.0, 0
    was_training = vlm.training
    vlm.eval()
    try:
        with torch.inference_mode():
            for chunk in batches(length_order([r["input_ids"] for r in rows], visual_tokens(vlm)), batch_size):
                texts = generated_texts(vlm, [rows[i] for i in chunk], collator=collator, tokenizer=tokenizer,
                                        max_new_tokens=max_new_tokens, stop=getattr(template, "stop", None))
                for i, text in zip(chunk, texts):
                    records[i] = _judged(evaluator, template, samples[i], text)
                    correct += float(records[i]["correct"])
                done += len(chunk)
                if task is not None:
                    progress.update(task, advance=len(chunk), info=f"acc {correct / done:.3f}")
            if option_scoring:
                from ablate.eval.options import add_option_scores

                add_option_scores(vlm, samples, records, evaluator=evaluator, template=template, tokenizer=tokenizer,
                                  collator=collator, batch_size=batch_size)
    finally:
        vlm.train(was_training)
    return records


def visual_tokens(vlm) -> int:
    """How many LLM positions one image placeholder becomes."""
    return int(getattr(getattr(vlm, "connector", None), "num_output_tokens", 1))


def spliced_length(input_ids: list[int], per_image: int) -> int:
    """A prompt's length once each image placeholder is its `per_image` visual tokens."""
    from ablate.components.contracts import IMAGE_TOKEN_INDEX

    return len(input_ids) + (per_image - 1) * sum(1 for t in input_ids if t == IMAGE_TOKEN_INDEX)


def length_order(prompts: list[list[int]], per_image: int) -> list[int]:
    """Indices of `prompts`, longest spliced prompt first; equal lengths keep their order."""
    lengths = [spliced_length(p, per_image) for p in prompts]
    return sorted(range(len(prompts)), key=lambda i: -lengths[i])


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[start : start + size] for start in range(0, len(order), size)]


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
    """Score the judged records (and their options' picks, `<metric>_loglik`) and write them as JSONL."""
    from ablate.eval.contracts import checked_metrics
    from ablate.eval.options import loglik_metrics

    metrics = checked_metrics(evaluator.score(records), evaluator)
    if records and "option_logliks" in records[0]:
        metrics.update(loglik_metrics(evaluator, records))
    if out_path is not None:  # whole or not at all: reports and the epoch-eval reuse read it
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_whole(out_path, "".join(json.dumps(r, default=str) + "\n" for r in records))
    return EvalResult(metrics, records, out_path)


def generated_texts(vlm, rows: list[dict[str, Any]], *, collator, tokenizer, max_new_tokens: int,
                    stop: str | None = None, **generate_kwargs) -> list[str]:
    """One batch of prompt rows ({"id", "image", "input_ids"}) -> each row's decoded new text;
    greedy unless `generate_kwargs` (VisionLanguageModel.generate's) say otherwise. With `stop`,
    each row stops at that string, and the batch when all its rows have."""
    batch = collator(rows)
    batch.pop("ids", None)
    if stop:
        generate_kwargs.update(stop_strings=[stop], tokenizer=tokenizer)
    new_tokens = vlm.generate(**on_device(batch, vlm), max_new_tokens=max_new_tokens, **generate_kwargs)
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def on_device(batch: dict[str, Any], model) -> dict[str, Any]:
    """The collator's CPU tensors, moved to where the model's weights are (a GPU after training)."""
    import torch

    device = next(model.parameters()).device
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
