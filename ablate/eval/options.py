"""Log-likelihood scoring of a multiple-choice item's answer options, beside generation.

`eval.option_scoring: true` scores every option of every item and reports the evaluator's metrics
for the best-scoring options under `<metric>_loglik` (e.g. `accuracy_loglik`), next to, never
instead of, the metrics of the generated answers.

- The options are what the evaluator names for an item (`answer_options(meta)`: ScienceQA's
  option letters, or the options' texts for a format that answers with the text).
- An option's score is the summed log-probability of its reply tokens given the prompt and the
  image: the conversation answered with that option, rendered and tokenized by the template as
  in training (the reply's closing stop token included, so an option that begins another does
  not win by being shorter).
- The pick is the highest-scoring option (the first on a tie), judged by the evaluator like a
  generated answer. Records keep `option_logliks`, `loglik_prediction` and `loglik_correct`.
"""

from __future__ import annotations

from typing import Any

from ablate.errors import AblateError

# The record fields an evaluator reads before judging; judging adds the rest.
_UNJUDGED = ("id", "prompt", "answer", "meta")


def answer_options(evaluator, sample: dict[str, Any]) -> list[str] | None:
    """The options `evaluator` names for `sample`, or None when it names none."""
    named = getattr(evaluator, "answer_options", None)
    return named(sample.get("meta") or {}) if named is not None else None


def check_options(evaluator, samples: list[dict[str, Any]], where: str) -> None:
    """AblateError naming the first sample without answer options."""
    for sample in samples:
        if not answer_options(evaluator, sample):
            raise AblateError(
                f"{where}: the evaluator {type(evaluator).__name__} names no answer options for sample "
                f"{sample.get('id')!r}; option scoring is for multiple-choice items (the scienceqa evaluator "
                "on scienceqa data)")


def option_rows(samples, evaluator, template, tokenizer) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """One row per (sample, option): the whole conversation's ids and its reply's token ids."""
    from ablate.components.contracts import IGNORE_INDEX
    from ablate.eval.generation import prompt_turns

    rows, options = [], []
    for sample in samples:
        options.append(answer_options(evaluator, sample) or [])
        for option in options[-1]:
            turns = [*prompt_turns(sample), {"from": "gpt", "value": option}]
            ids, labels = template.encode(turns, tokenizer, sample_id=str(sample["id"]))
            first = next(n for n, label in enumerate(labels) if label != IGNORE_INDEX)
            rows.append({"id": sample["id"], "image": sample.get("image"), "input_ids": ids, "reply": ids[first:]})
    return rows, options


def reply_logliks(vlm, rows: list[dict[str, Any]], collator) -> list[float]:
    """Each row's summed log-probability of its `reply`, the last tokens of its `input_ids`."""
    import torch

    from ablate.eval.generation import on_device

    batch = on_device({k: v for k, v in collator(rows).items() if k != "ids"}, vlm)
    # Left padding puts every reply at the end, so the LLM's head runs on the last positions only.
    embeds, mask, _ = vlm.embed_inputs(batch["input_ids"], batch["attention_mask"], None,
                                       batch.get("pixel_values"), batch.get("image_features"), padding_side="left")
    width = max(len(r["reply"]) for r in rows)
    targets = torch.zeros(len(rows), width, dtype=torch.long, device=embeds.device)
    scored = torch.zeros(len(rows), width, dtype=torch.bool, device=embeds.device)
    for i, row in enumerate(rows):
        targets[i, width - len(row["reply"]):] = torch.tensor(row["reply"])
        scored[i, width - len(row["reply"]):] = True
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)  # as generation numbers them
    logits = vlm.llm(inputs_embeds=embeds, attention_mask=mask, position_ids=positions,
                     **_kept_logits(vlm.llm, width + 1)).logits[:, -(width + 1):-1]
    picked = logits.float().log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    return (picked * scored).sum(-1).tolist()


def _kept_logits(llm, count: int) -> dict[str, int]:
    """`logits_to_keep` for LLMs whose forward takes it (transformers' causal LMs), else nothing."""
    from ablate.model.vlm import forward_accepts

    return {"logits_to_keep": count} if forward_accepts(llm, "logits_to_keep") else {}


def add_option_scores(vlm, samples, records, *, evaluator, template, tokenizer, collator, batch_size: int) -> None:
    """Add `option_logliks`, `loglik_prediction` and `loglik_correct` to each record (in place)."""
    from ablate.eval.generation import batches, length_order, visual_tokens

    rows, options = option_rows(samples, evaluator, template, tokenizer)
    scores = [0.0] * len(rows)
    for chunk in batches(length_order([r["input_ids"] for r in rows], visual_tokens(vlm)), batch_size):
        for i, score in zip(chunk, reply_logliks(vlm, [rows[i] for i in chunk], collator)):
            scores[i] = score
    start = 0
    for record, named in zip(records, options):
        logliks = scores[start : start + len(named)]
        start += len(named)
        pick = named[logliks.index(max(logliks))]
        judged = evaluator.judge({**{k: record.get(k) for k in _UNJUDGED}, "prediction": pick})
        record.update(option_logliks=logliks, loglik_prediction=pick, loglik_correct=judged["correct"])


def loglik_metrics(evaluator, records: list[dict[str, Any]]) -> dict[str, float]:
    """The evaluator's metrics for the picked options, each named `<metric>_loglik`."""
    picked = [{**{k: r.get(k) for k in _UNJUDGED}, "prediction": r["loglik_prediction"],
               "correct": r["loglik_correct"]} for r in records]
    from ablate.eval.contracts import checked_metrics

    return {f"{name}_loglik": value for name, value in checked_metrics(evaluator.score(picked), evaluator).items()}
