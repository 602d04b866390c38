"""An ablate model and its hf-llava export, run side by side on the same conversation and image.

ablate's inputs come from its own template and EvalCollator; the export's from its processor and
chat template, as a transformers user (or lmms-eval's llava_hf) builds them.
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.components.contracts import IMAGE_TOKEN, IMAGE_TOKEN_INDEX


def messages(conversation: list[dict[str, str]], style: str) -> list[dict[str, Any]]:
    """Chat messages: "string" content with "<image>" inline (lmms-eval's llava_hf) or "parts"
    (an image part, then the text: transformers' processor chat format)."""
    out = []
    for turn in conversation:
        role = "user" if turn["from"] == "human" else "assistant"
        text = turn["value"]
        if style == "parts":
            parts = [{"type": "image"}] if IMAGE_TOKEN in text else []
            content: Any = parts + [{"type": "text", "text": text.replace(IMAGE_TOKEN, "")}]
        else:
            content = text
        out.append({"role": role, "content": content})
    return out


def ablate_batch(vlm, template, conversations, images, aspect_ratio: str) -> dict[str, Any]:
    from ablate.data.collate import EvalCollator

    collator = EvalCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor,
                            image_aspect_ratio=aspect_ratio)
    rows = [{"input_ids": template.prompt_ids(conv, vlm.tokenizer), "image": image, "id": str(k)}
            for k, (conv, image) in enumerate(zip(conversations, images))]
    return collator(rows)


def hf_batch(processor, conversations, images, style: str = "string") -> dict[str, Any]:
    texts = [processor.apply_chat_template(messages(conv, style), tokenize=False, add_generation_prompt=True)
             for conv in conversations]
    return processor(text=texts, images=list(images), return_tensors="pt", padding=True)


def expanded(ids: list[int], image_token_id: int, visual_tokens: int) -> list[int]:
    """ablate's input_ids with its image placeholder as the processor writes it: one token per visual token."""
    return [i for token in ids for i in ([image_token_id] * visual_tokens if token == IMAGE_TOKEN_INDEX else [token])]


def assert_same_forward(vlm, template, hf_model, processor, conversation, image, aspect_ratio: str,
                        style: str = "string", atol: float = 1e-4) -> None:
    """Same input_ids (placeholder expanded), same pixels, logits within `atol` on ablate's vocabulary."""
    ours = ablate_batch(vlm, template, [conversation], [image], aspect_ratio)
    theirs = hf_batch(processor, [conversation], [image], style)
    image_id = hf_model.config.image_token_index
    visual_tokens = hf_model.config.image_seq_length
    assert theirs["input_ids"][0].tolist() == expanded(ours["input_ids"][0].tolist(), image_id, visual_tokens)
    assert torch.equal(theirs["pixel_values"], ours["pixel_values"])
    with torch.no_grad():
        ablate_logits = vlm(ours["input_ids"], ours["attention_mask"], pixel_values=ours["pixel_values"]).logits
        hf_logits = hf_model(**theirs).logits
    vocab = ablate_logits.shape[-1]
    assert hf_logits.shape[:-1] == ablate_logits.shape[:-1]
    torch.testing.assert_close(hf_logits[..., :vocab], ablate_logits, atol=atol, rtol=0)
