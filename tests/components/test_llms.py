import time

import pytest
import torch

from ablate import zoo
from ablate.components.contracts import LoadedLLM
from ablate.errors import AblateError, MissingCheckpointError
from ablate.registry import registries


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return str(zoo.build("tiny-llama", dest=tmp_path_factory.mktemp("llm") / "tiny-llama"))


def build(**config):
    return registries().llm.get("hf_causal_lm").build(config)


def test_loads_model_and_tokenizer(llama_dir):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    loaded = build(name_or_path=llama_dir)
    assert isinstance(loaded, LoadedLLM)
    model, tokenizer = loaded.model, loaded.tokenizer
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert (tokenizer.pad_token, tokenizer.pad_token_id, tokenizer.padding_side) == ("<unk>", 0, "right")
    assert model.config.vocab_size == len(tokenizer)
    ids = tokenizer(["what is the blue shape?"], return_tensors="pt").input_ids
    reference = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, reference(ids).logits, rtol=0, atol=0)


def test_options(llama_dir):
    loaded = build(name_or_path=llama_dir, dtype="bfloat16", attn_implementation="eager", model_max_length=333)
    assert loaded.model.dtype == torch.bfloat16
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.tokenizer.model_max_length == 333


def test_zoo_name_resolves():
    loaded = build(name_or_path="zoo:tiny-llama")
    assert loaded.model.config.hidden_size == zoo.TINY_LLAMA["hidden_size"]


def _word_tokenizer(folder, specials):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*specials.values(), "red", "blue"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=specials.get("unk_token")))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=backend, **specials).save_pretrained(folder)
    return str(folder)


def test_pad_defaults_to_unk_then_eos(llama_dir, tmp_path):
    with_unk = _word_tokenizer(tmp_path / "unk", {"unk_token": "<unk>", "eos_token": "</s>"})
    tokenizer = build(name_or_path=llama_dir, tokenizer=with_unk).tokenizer
    assert tokenizer.pad_token == "<unk>" and tokenizer.padding_side == "right"
    eos_only = _word_tokenizer(tmp_path / "eos", {"eos_token": "</s>"})
    tokenizer = build(name_or_path=llama_dir, tokenizer=eos_only).tokenizer
    assert tokenizer.pad_token == "</s>"
    assert tokenizer(["red blue", "red"], padding=True).input_ids == [[1, 2], [1, 0]]


def test_bad_attention_backend_is_a_setting_error(llama_dir):
    with pytest.raises(AblateError, match=r"attn_implementation 'bogus' cannot be used") as caught:
        build(name_or_path=llama_dir, attn_implementation="bogus")
    assert not isinstance(caught.value, MissingCheckpointError)


def test_tokenizer_larger_than_embedding(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "small")
    zoo_tokenizer_dir = zoo.build("tiny-llama")
    with pytest.raises(AblateError, match=r"tokenizer has 1\d\d\d tokens but the model's embedding has only 100 rows"):
        build(name_or_path=str(tmp_path / "small"), tokenizer=str(zoo_tokenizer_dir))


def test_not_a_causal_lm(tmp_path):
    clip = zoo.build("tiny-clip", dest=tmp_path / "clip")
    with pytest.raises(MissingCheckpointError, match=r"^llm: cannot load checkpoint"):
        build(name_or_path=str(clip))


def test_missing_tokenizer_is_named(llama_dir):
    with pytest.raises(MissingCheckpointError, match=r"\(tokenizer: there is no folder /no/such/tok\)"):
        build(name_or_path=llama_dir, tokenizer="/no/such/tok")


@pytest.mark.parametrize("offline", [True, False])
def test_missing_checkpoint_fails_fast(monkeypatch, tmp_path, offline):
    from huggingface_hub import constants

    name = "lmsys/vicuna-7b-v1.5" if offline else "ablate-test/no-such-llm"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(MissingCheckpointError) as caught:
        build(name_or_path=name)
    assert time.monotonic() - start < 10
    message = str(caught.value)
    assert message.startswith(f"llm: cannot load checkpoint '{name}'")
    assert "model.llm.name_or_path=/path/to/" in message
