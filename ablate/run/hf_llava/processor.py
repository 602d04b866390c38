"""The LlavaProcessor of an export: ablate's tokenizer with an "<image>" token, an image
processor that prepares images as the run did, and the chat template."""

from __future__ import annotations

import copy
from typing import Any

from ablate.components.contracts import IMAGE_TOKEN
from ablate.run.hf_llava.chat_template import chat_template
from ablate.run.hf_llava.support import LlavaLayout

# Settings CLIP and SigLIP image processors share with Llava's (the rest are Llava's own).
_IMAGE_SETTINGS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
                   "do_normalize", "image_mean", "image_std", "do_convert_rgb")


def tokenizer_with_image_token(tokenizer: Any) -> Any:
    """A copy of ablate's tokenizer holding "<image>" as a special token (reused if present),
    left padded: ablate re-pads prompts on the left to generate, as batched Llava generation needs."""
    from tokenizers import AddedToken

    tokenizer = copy.deepcopy(tokenizer)
    for how_it_was_loaded in ("local_files_only", "is_local"):  # not settings of the tokenizer
        tokenizer.init_kwargs.pop(how_it_was_loaded, None)
    tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    tokenizer.padding_side = "left"
    return tokenizer


def image_separator(tokenizer: Any) -> str:
    """Text to put after "<image>" so the text after it gets ablate's tokens.

    ablate tokenizes the text after the image on its own, so SentencePiece-style tokenizers start
    it with a word-start "▁". Tokenizing the whole text, a Metaspace(prepend_scheme="first")
    tokenizer adds that "▁" only at the very start, not after the "<image>" token: a space gives
    it back. Tokenizers that prepend after every special token (a "legacy" Llama's normalizer,
    prepend_scheme "always") or not at all (byte-level BPE) need nothing.
    """
    pre = getattr(tokenizer.backend_tokenizer, "pre_tokenizer", None)
    return " " if type(pre).__name__ == "Metaspace" and pre.prepend_scheme == "first" else ""


def llava_image_processor(image_processor: Any, image_aspect_ratio: str) -> Any:
    """Llava's image processor with the encoder processor's settings, preparing images as the
    run's `image_aspect_ratio` did (ablate.data.aspect_ratio)."""
    from transformers.image_processing_backends import PilBackend

    from ablate.data.aspect_ratio import input_size

    # The encoder processor's backend (PIL where torchvision is absent): the same resize code.
    if isinstance(image_processor, PilBackend):
        from transformers import LlavaImageProcessorPil as LlavaImageProcessor
    else:
        from transformers import LlavaImageProcessor

    saved = image_processor.to_dict()
    settings = {key: saved[key] for key in _IMAGE_SETTINGS if saved.get(key) is not None}
    settings.setdefault("do_center_crop", False)  # SigLIP resizes to its square input, no crop
    if image_aspect_ratio == "pad":  # centred on a square of the (truncated) mean colour, as LLaVA-1.5
        settings["do_pad"] = True
    elif image_aspect_ratio == "resize":
        height, width = input_size(image_processor)
        settings.update(size={"height": height, "width": width}, do_center_crop=False)
    return LlavaImageProcessor(**settings)


def llava_processor(vlm: Any, layout: LlavaLayout) -> Any:
    """The export's LlavaProcessor; its tokenizer carries the same chat template, since
    `tokenizer.apply_chat_template` is what some clients (lmms-eval's llava_hf) call."""
    from transformers import LlavaProcessor

    tokenizer = tokenizer_with_image_token(vlm.tokenizer)
    template = chat_template(layout.template, image_separator(tokenizer))
    tokenizer.chat_template = template
    return LlavaProcessor(
        image_processor=llava_image_processor(vlm.image_processor, layout.image_aspect_ratio),
        tokenizer=tokenizer,
        patch_size=int(vlm.encoder.model.config.patch_size),
        vision_feature_select_strategy=layout.vision_feature_select_strategy,
        num_additional_image_tokens=layout.num_additional_image_tokens,
        chat_template=template,
    )
