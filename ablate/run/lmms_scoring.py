"""Log-likelihood of a continuation, for lmms-eval's loglikelihood requests.

The template renders the prompt as for generation; the continuation's text is appended to it
verbatim (lmms-eval puts the separating space in the continuation: " A"), and the whole text is
tokenized once, as the template tokenizes training text. The continuation's tokens are those
whose characters lie inside it (`labels_from_spans`; a token straddling the boundary is a
DataError, as in training). Each token's log-probability is given everything before it (image
tokens included); "greedy" means each is the argmax there. `ContinuationScore.mean_loss` is the
mean of their negatives: what lmms-eval's own LLaVA models return for a loglikelihood request
(ablate.run.lmms_chat says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.components.contracts import IGNORE_INDEX


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # the continuation's tokens' log-probabilities, summed
    tokens: int
    greedy: bool

    @property
    def mean_loss(self) -> float:
        """The tokens' mean negative log-likelihood: a causal LM's loss on the continuation alone."""
        return -self.logprob / self.tokens


def continuation_row(template, tokenizer, prompt, continuation: str, at: str) -> dict[str, Any]:
    """The collator row {"id", "image", "input_ids", "labels"}: labels mark the continuation's tokens."""
    from ablate.templates.base import labels_from_spans, tokenize_with_image

    prompt_text = template.render_prompt(prompt.turns, sample_id=at)
    text = prompt_text + continuation
    tokens = tokenize_with_image(text, tokenizer, at)
    labels = labels_from_spans(tokens, [(len(prompt_text), len(text))], at)
    return {"id": at, "image": prompt.image, "input_ids": tokens.ids, "labels": labels}


def continuation_scores(vlm, items: list[tuple[Any, str, str]], *, template, batch_size: int,
                        image_aspect_ratio: str) -> list[ContinuationScore]:
    """The score of each (Prompt, continuation, id), in batches."""
    import torch

    from ablate.data.collate import VLMCollator
    from ablate.eval.generation import on_device

    rows = [continuation_row(template, vlm.tokenizer, prompt, text, at) for prompt, text, at in items]
    collator = VLMCollator(vlm.tokenizer, vlm.image_processor, image_aspect_ratio=image_aspect_ratio)
    was_training = vlm.training
    vlm.eval()
    scores: list[ContinuationScore] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                scores += _scored(vlm, on_device(collator(rows[start : start + batch_size]), vlm))
    finally:
        vlm.train(was_training)
    return scores


def _scored(vlm, batch: dict[str, Any]) -> list[ContinuationScore]:
    import torch

    embeds, mask, labels = vlm.embed_inputs(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                            batch.get("pixel_values"), batch.get("image_features"))
    logits = vlm.llm(inputs_embeds=embeds, attention_mask=mask).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t + 1
    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    greedy = logprobs.argmax(-1) == targets
    return [ContinuationScore(float(picked[row][scored[row]].sum()), int(scored[row].sum()),
                              bool(greedy[row][scored[row]].all())) for row in range(targets.shape[0])]
