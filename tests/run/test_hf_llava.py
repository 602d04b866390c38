"""`ablate export RUN OUT --format hf-llava` on a trained 2-stage run (LoRA merged): plain
transformers loads the folder and computes ablate's logits and greedy generations."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
import yaml

import tiny_run
from llava_equivalence import assert_same_forward, hf_batch, ablate_batch, expanded
from ablate.cli import main
from ablate.errors import AblateError
from ablate.run.hf_llava import export_run

ASPECT = "pad"  # LLaVA-1.5's: non-square images must be padded the same way by the processor
CONVERSATIONS = [
    [{"from": "human", "value": "What shape is in the image?\n<image>"}],
    [{"from": "human", "value": "<image>\nWhat color is the shape?"}, {"from": "gpt", "value": "Red."},
     {"from": "human", "value": " Is it large?"}],
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf_llava")
    lora = {"lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}}
    data = tiny_run.recipe(root, [
        tiny_run.stage("align", max_steps=2),
        tiny_run.stage("instruct", tiny_run.easy_vqa("qa"), template="vicuna_v1", max_steps=2,
                       image_aspect_ratio=ASPECT, trainable={"encoder": "frozen", "connector": "full", "llm": lora}),
    ], eval=False)
    return tiny_run.run_in_process(data).run_dir


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    """The folder `ablate export` writes, and the run loaded back in ablate."""
    from ablate.run.trained import load_trained

    out = tmp_path_factory.mktemp("exports") / "llava"
    proc = tiny_run.run_cli("export", str(run_dir), str(out), "--format", "hf-llava")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "exported" in proc.stdout
    return out, load_trained(run_dir)


@pytest.fixture(scope="module")
def loaded(exported):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    out, trained = exported
    return LlavaForConditionalGeneration.from_pretrained(out).eval(), AutoProcessor.from_pretrained(out), trained


def images():
    from PIL import Image

    return [Image.new("RGB", (80, 48), (200, 30, 40)), Image.new("RGB", (40, 72), (20, 160, 90))]


def template_of(trained):
    from ablate.run.hf_llava.support import llava_layout

    return llava_layout(trained.recipe, trained.vlm).template


def test_the_folder_is_a_complete_llava_checkpoint(exported, loaded):
    out, trained = exported
    model, processor, _ = loaded
    assert {"config.json", "model.safetensors", "generation_config.json", "processor_config.json",
            "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"} <= {p.name for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    vocab = trained.vlm.llm.config.vocab_size
    assert (image_id, config["text_config"]["vocab_size"]) == (vocab, vocab + 1)  # one new token, one new row
    assert config["image_token_index"] == image_id
    assert (config["vision_feature_layer"], config["vision_feature_select_strategy"]) == (-2, "default")
    assert (config["projector_hidden_act"], config["image_seq_length"]) == ("gelu", 64)  # 8x8 patches, CLS dropped
    assert (processor.patch_size, processor.num_additional_image_tokens) == (8, 1)
    assert processor.image_processor.do_pad is True
    assert processor.tokenizer.padding_side == "left"
    assert processor.tokenizer.pad_token == trained.vlm.tokenizer.pad_token
    assert processor.tokenizer.chat_template == processor.chat_template  # lmms-eval's llava_hf reads the tokenizer's
    assert model.generation_config.suppress_tokens == [image_id]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("style", ["string", "parts"])
def test_input_ids_pixels_and_logits_equal_ablates(loaded, index, style):
    model, processor, trained = loaded
    assert_same_forward(trained.vlm, template_of(trained), model, processor, CONVERSATIONS[index],
                        images()[index], ASPECT, style=style)


def test_text_parts_around_the_image_read_as_ablates_lmms_eval_model_reads_them(loaded):
    """Several parts in one message (as lmms-eval's llava_hf hands them to the chat template): the
    ids of the prompt the `ablate` lmms-eval model builds from the same messages."""
    from ablate.run.lmms_prompts import prompt_from_messages

    model, processor, trained = loaded
    image = images()[0]
    messages = [{"role": "user", "content": [{"type": "text", "text": "Look closely."}, {"type": "image", "url": image},
                                              {"type": "text", "text": "What color is the shape?"}]}]
    turns = prompt_from_messages(messages, "document 0").turns
    assert turns == [{"from": "human", "value": "Look closely.\n<image>\nWhat color is the shape?"}]
    ours = template_of(trained).prompt_ids(turns, trained.vlm.tokenizer)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "Look closely.\n\nWhat color is the shape? ASSISTANT:" in text
    theirs = list(processor(text=text, images=[image])["input_ids"][0])
    assert theirs == expanded(ours, model.config.image_token_index, model.config.image_seq_length)


def test_the_merged_lora_weights_are_the_ones_exported(loaded):
    model, _, trained = loaded
    ours = trained.vlm.llm.model.layers[0].self_attn.q_proj.weight
    assert torch.equal(model.model.language_model.layers[0].self_attn.q_proj.weight, ours)


def test_greedy_generations_are_identical(loaded):
    model, processor, trained = loaded
    ours = ablate_batch(trained.vlm, template_of(trained), CONVERSATIONS, images(), ASPECT)
    theirs = hf_batch(processor, CONVERSATIONS, images())
    with torch.no_grad():
        ablate_tokens = trained.vlm.generate(ours["input_ids"], ours["attention_mask"],
                                             pixel_values=ours["pixel_values"], max_new_tokens=8)
        hf_tokens = model.generate(**theirs, max_new_tokens=8, do_sample=False)
    assert hf_tokens[:, theirs["input_ids"].shape[1]:].tolist() == ablate_tokens.tolist()


def test_a_dtype_other_than_the_runs_is_said_to_cast_its_parts(run_dir, tmp_path, capsys):
    """Llava holds one dtype; the run kept its encoder and LLM in float32 and its connector in float32."""
    assert main(["export", str(run_dir), str(tmp_path / "llava"), "--format", "hf-llava", "--dtype", "bfloat16"]) == 0
    out = _flat(capsys.readouterr().out)
    assert ("note: written in bfloat16, so encoder (float32), connector (float32), llm (float32) are cast; "
            "logits agree with the run's to that precision, not exactly") in out


def test_a_bfloat16_llm_run_names_its_float32_parts(run_dir):
    from ablate.run.hf_llava.export import cast_parts
    from ablate.run.trained import read_run

    recipe = read_run(run_dir)[0]
    assert cast_parts(recipe, "float32") == []
    bf16 = recipe.model_copy(update={"model": recipe.model.model_copy(
        update={"llm": recipe.model.llm.model_copy(update={"dtype": "bfloat16"})})})
    assert cast_parts(bf16, "bfloat16") == ["encoder (float32)", "connector (float32)"]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_an_unsupported_connector_exits_2_naming_it_before_loading(run_dir, tmp_path, capsys):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)  # no stages/ beside it: the refusal comes before any weight is read
    recipe = yaml.safe_load((copy / "recipe.yaml").read_text())
    recipe["model"]["connector"] = {"type": "resampler", "num_queries": 8, "num_heads": 4}
    (copy / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    out = tmp_path / "llava"
    assert main(["export", str(copy), str(out), "--format", "hf-llava"]) == 2
    err = _flat(capsys.readouterr().err)
    assert "cannot export to hf-llava: connector 'resampler' has no exact counterpart in a transformers Llava" in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("repo_id, message", [
    ("someone/tiny-llava", "--repo-id someone/tiny-llava: cannot push to the Hugging Face Hub in offline mode"),
    ("not a repo", "--repo-id 'not a repo' is not a Hub repo id: Repo id must use alphanumeric chars"),
])
def test_repo_id_offline_or_malformed_exits_2_with_a_clear_message(run_dir, tmp_path, capsys, monkeypatch,
                                                                  repo_id, message):
    """Under HF_HUB_OFFLINE=1 (read once, when huggingface_hub is imported): refused before anything is exported."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    out = tmp_path / "llava"
    assert main(["export", str(run_dir), str(out), "--format", "hf-llava", "--repo-id", repo_id]) == 2
    err = _flat(capsys.readouterr().err)
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_a_tokenizer_the_chat_template_cannot_match_is_refused_and_nothing_is_left(run_dir, tmp_path, monkeypatch):
    import ablate.run.hf_llava.processor as processor

    monkeypatch.setattr(processor, "image_separator", lambda tokenizer: "")  # drops the needed space
    with pytest.raises(AblateError, match="does not tokenize template 'vicuna_v1' as ablate does"):
        export_run(run_dir, tmp_path / "llava")
    assert list(tmp_path.iterdir()) == []


def test_an_occupied_out_folder_is_refused(run_dir, tmp_path):
    (tmp_path / "llava").mkdir()
    (tmp_path / "llava" / "notes.txt").write_text("mine")
    with pytest.raises(AblateError, match="already exists and is not an empty folder"):
        export_run(run_dir, tmp_path / "llava")
