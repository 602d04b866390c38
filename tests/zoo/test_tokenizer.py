import pytest

from ablate.zoo.tokenizer import BYTE_TOKENS, build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_llama_layout_and_special_tokens(tokenizer):
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.pad_token == "<unk>" and tokenizer.pad_token_id == 0
    assert tokenizer.padding_side == "right"
    assert tokenizer.convert_ids_to_tokens([3, 3 + 0x0A, 258]) == ["<0x00>", "<0x0A>", "<0xFF>"]
    assert 1000 <= len(tokenizer) <= 2000
    assert sorted(tokenizer.get_vocab().values()) == list(range(len(tokenizer)))


def test_deterministic(tokenizer):
    again = build_tokenizer()
    assert again.get_vocab() == tokenizer.get_vocab()
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()


@pytest.mark.parametrize(
    "text",
    [
        "what is the blue shape?",
        "USER: <image>\nwhat color is the shape? ASSISTANT: red",
        "Answer with the option's letter from the given choices directly.",
        "héllo 日本語 ✓\ttabs\n\n  two spaces",
        "",
    ],
)
def test_round_trip(tokenizer, text):
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and tokenizer.eos_token_id not in ids
    assert tokenizer.unk_token_id not in ids  # byte fallback, never <unk>
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_behaves_like_llama(tokenizer):
    # BOS only; Metaspace prepends "▁" to the first word, so a leading space makes no difference.
    ids = tokenizer("ASSISTANT:").input_ids
    assert ids == tokenizer(" ASSISTANT:").input_ids
    assert tokenizer.convert_ids_to_tokens(ids) == ["<s>", "▁ASSISTANT", ":"]
    assert tokenizer("ASSISTANT:", add_special_tokens=False).input_ids == ids[1:]
    # Words seen in training are single pieces; a newline is the byte piece, as in Llama.
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("<image>\nwhat shape", add_special_tokens=False).input_ids)
    assert tokens[-3:] == ["<0x0A>", "what", "▁shape"]
    assert "</s>" in tokenizer.convert_ids_to_tokens(tokenizer("red</s>").input_ids)
    assert len(BYTE_TOKENS) == 256


def test_save_and_reload_identical(tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(reloaded).__name__ == type(tokenizer).__name__
    assert reloaded.get_vocab() == tokenizer.get_vocab()
    assert reloaded.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert (reloaded.pad_token, reloaded.padding_side) == ("<unk>", "right")
    batch = ["USER: <image>\nwhat color? ASSISTANT: red</s>", "héllo", ""]
    assert reloaded(batch, padding=True).input_ids == tokenizer(batch, padding=True).input_ids


def test_the_scienceqa_vocabulary_spells_its_words_whole_and_keeps_digits_apart(tokenizer):
    wider = build_tokenizer(vocabulary="easyvqa+scienceqa")
    words = ["rabbit", "jacket", "apple", "names"]
    assert [tokenizer.tokenize(w) for w in words] == [["▁", "ra", "b", "b", "it"], ["▁", "j", "ack", "et"],
                                                      ["▁a", "p", "ple"], ["▁n", "am", "es"]]
    assert [wider.tokenize(w) for w in words] == [["▁rabbit"], ["▁jacket"], ["▁apple"], ["▁names"]]
    assert wider.tokenize("$13") == ["▁", "$", "1", "3"]  # Llama's split_digits, in both
    assert len(tokenizer) == 1169 and len(wider) == 1536  # the wider text reaches the target size
    assert wider.convert_ids_to_tokens([0, 1, 2, 3]) == ["<unk>", "<s>", "</s>", "<0x00>"]  # same layout


def test_an_unknown_vocabulary_is_refused():
    with pytest.raises(ValueError, match="easyvqa\\+scienceqa"):
        build_tokenizer(vocabulary="scienceqa")
