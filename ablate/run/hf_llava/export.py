"""Write a run's model as a transformers Llava checkpoint folder, checked before it is handed over."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ablate.components.contracts import IMAGE_TOKEN, IMAGE_TOKEN_INDEX
from ablate.errors import AblateError
from ablate.paths import file_in_the_way
from ablate.run.hf_llava.processor import llava_processor
from ablate.run.hf_llava.support import check_recipe, llava_layout
from ablate.run.hf_llava.weights import generation_config, save_model

DTYPES = ("float32", "bfloat16", "float16")
# Conversations the written processor must tokenize exactly as ablate's template does.
PROBE = [{"from": "human", "value": f"{IMAGE_TOKEN}\nWhat is in the image?"},
         {"from": "gpt", "value": "A red circle."}]


def export_run(run_dir: str | Path, out: str | Path, *, dtype: str | None = None) -> Path:
    """Load a finished run folder (ablate.run.trained) and export it to `out`."""
    from ablate.run.trained import load_trained, read_run

    _checked_out(Path(out))
    recipe = read_run(run_dir)[0]
    check_recipe(recipe)  # refuse before loading any weights
    _checked_dtype(dtype, recipe)
    trained = load_trained(run_dir)
    return export_llava(trained.vlm, trained.recipe, out, dtype=dtype)


def export_llava(vlm: Any, recipe: Any, out: str | Path, *, dtype: str | None = None) -> Path:
    """Write `vlm` (built from `recipe`) as a LlavaForConditionalGeneration checkpoint in `out`.

    The folder is written next to `out` first and moved there once complete and checked, so a
    failed export leaves nothing behind. `dtype` defaults to the LLM's recipe dtype.
    """
    import torch

    out = _checked_out(Path(out))
    layout = llava_layout(recipe, vlm)
    dtype = _checked_dtype(dtype, recipe, vlm)
    processor = llava_processor(vlm, layout)
    image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    vocab_size = max(len(processor.tokenizer), vlm.llm.get_input_embeddings().num_embeddings)
    staging = out.parent / f".{out.name}.incomplete"
    shutil.rmtree(staging, ignore_errors=True)  # left by an export that was killed
    staging.mkdir(parents=True)
    try:
        save_model(vlm, layout, staging, image_token_id=image_token_id, vocab_size=vocab_size,
                   dtype=getattr(torch, dtype))
        generation_config(vlm, processor.tokenizer, image_token_id).save_pretrained(staging)
        processor.save_pretrained(staging)
        check_tokens(staging, vlm.tokenizer, layout)
        if out.exists():
            out.rmdir()  # empty, as _checked_out made sure
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def check_tokens(folder: Path, tokenizer: Any, layout) -> None:
    """The written processor, loaded as any client loads it, must give ablate's input_ids for the
    probe conversation (prompt and full text), each image placeholder expanded to its visual tokens."""
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    image_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    template = layout.template
    messages = [{"role": "user" if turn["from"] == "human" else "assistant", "content": turn["value"]}
                for turn in PROBE]
    image = Image.new("RGB", (32, 24))
    for prompt, ablate_ids in ((True, template.prompt_ids(PROBE, tokenizer)),
                               (False, template.encode(PROBE, tokenizer)[0])):
        text = processor.apply_chat_template(messages[:1] if prompt else messages, tokenize=False,
                                             add_generation_prompt=prompt)
        exported = list(processor(text=text, images=[image])["input_ids"][0])
        expected = [i for token in ablate_ids
                    for i in ([image_id] * layout.visual_tokens if token == IMAGE_TOKEN_INDEX else [token])]
        if exported != expected:
            at = next((k for k, (a, b) in enumerate(zip(exported, expected)) if a != b),
                      min(len(exported), len(expected)))
            raise AblateError(
                f"cannot export to hf-llava: the exported tokenizer ({type(processor.tokenizer).__name__}) does not "
                f"tokenize template {template.name!r} as ablate does (first difference at token {at} of "
                f"{text!r}: {exported[at:at + 3]} instead of {expected[at:at + 3]})"
            )


def cast_parts(recipe: Any, dtype: str) -> list[str]:
    """The parts of the run's model ("encoder (float32)", ...) that the export writes in another dtype.

    A Llava checkpoint holds one dtype, while a run keeps each part in its own: the encoder and the
    LLM in their recipe dtypes, the connector in float32 (ablate.model.build makes it so). Where
    one is cast, the export's logits agree with ablate's to that dtype's precision, not exactly.
    """
    run = {"encoder": part_dtype(recipe.model.encoder), "connector": "float32", "llm": part_dtype(recipe.model.llm)}
    return [f"{part} ({was})" for part, was in run.items() if was != dtype]


def part_dtype(block: Any) -> str:
    """A model block's dtype; a plugin's block may have no dtype field, and then loads as float32."""
    return getattr(block, "dtype", None) or "float32"


def _checked_dtype(dtype: str | None, recipe: Any, vlm: Any = None) -> str:
    # A plugin's LLM block may have no dtype field: then the weights' own dtype (float32 before loading).
    held = str(vlm.llm.dtype).removeprefix("torch.") if vlm is not None else "float32"
    dtype = dtype or getattr(recipe.model.llm, "dtype", None) or held
    if dtype not in DTYPES:
        raise AblateError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return dtype


def _checked_out(out: Path) -> Path:
    blocker = file_in_the_way(out)
    if blocker is not None:
        raise AblateError(f"{out}: cannot be made a folder, {blocker} is a file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AblateError(f"{out}: already exists and is not an empty folder; export into a new folder")
    return out
