"""A small Llama-style tokenizer trained offline, for the zoo's tiny LLMs.

Same pipeline as Llama/Vicuna: SentencePiece-style BPE ("▁" marks word starts, a "▁" is
prepended to the first word only), byte fallback so any text round-trips, `<unk>`=0, `<s>`=1,
`</s>`=2, the 256 `<0xXX>` byte pieces next, BOS added and EOS not, pad = `<unk>` as LLaVA sets.
Trained with the `tokenizers` BPE trainer on `corpus.tokenizer_corpus(vocabulary)`: "easyvqa"
(every zoo model but one: 1,169 pieces) or "easyvqa+scienceqa", which also reads the embedded
ScienceQA's words and spells them whole, as a real LLM's tokenizer would (1,536 pieces).
"""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

VOCAB_SIZE = 1536  # target; the trainer stops earlier if the corpus runs out of merges
MODEL_MAX_LENGTH = 1024
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
BYTE_TOKENS = tuple(f"<0x{i:02X}>" for i in range(256))
# Characters that get their own piece even when rare; anything else goes through bytes.
# Newline is left out on purpose: Llama spells it as the byte piece <0x0A>.
ALPHABET = tuple(sorted(set(string.ascii_letters + string.digits + string.punctuation) | {"▁"}))


VOCABULARIES = ("easyvqa", "easyvqa+scienceqa")  # what the training text covers (ablate.zoo.corpus)


def build_tokenizer(vocab_size: int = VOCAB_SIZE, vocabulary: str = "easyvqa") -> "PreTrainedTokenizerFast":
    """Train the zoo tokenizer on `vocabulary`'s text. Deterministic: every call gives the same
    vocab and merges."""
    from transformers import LlamaTokenizerFast

    if vocabulary not in VOCABULARIES:
        raise ValueError(f"zoo tokenizer vocabularies are {VOCABULARIES}, got {vocabulary!r}")
    vocab, merges = _train(vocab_size, vocabulary)
    return LlamaTokenizerFast(
        vocab=vocab,
        merges=merges,
        legacy=False,  # Metaspace prepend_scheme "first", as in current Llama tokenizers
        add_bos_token=True,
        add_eos_token=False,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<unk>",
        padding_side="right",
        model_max_length=MODEL_MAX_LENGTH,
    )


def _train(vocab_size: int, vocabulary: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from ablate.zoo.corpus import tokenizer_corpus

    backend = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    # Training-only splits keep merges inside words and away from punctuation and newlines,
    # as SentencePiece's defaults do; encoding later uses Llama's unsplit Metaspace.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),  # Llama's split_digits: no "13" piece
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=max(vocab_size - len(BYTE_TOKENS), len(SPECIAL_TOKENS) + len(ALPHABET)),
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list(ALPHABET),
        limit_alphabet=len(ALPHABET),
        show_progress=False,
    )
    corpus = tokenizer_corpus(vocabulary)
    backend.train_from_iterator(corpus, trainer=trainer, length=len(corpus))

    model = json.loads(backend.to_str())["model"]
    trained = sorted(model["vocab"].items(), key=lambda item: item[1])
    # Llama's id layout: specials, then the byte pieces, then the learned pieces.
    pieces = list(SPECIAL_TOKENS) + list(BYTE_TOKENS)
    # A bare "\n" piece is dropped (no merge uses it: it was split off) so it encodes as <0x0A>.
    pieces += [piece for piece, _ in trained if piece not in SPECIAL_TOKENS and piece != "\n"]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return vocab, merges


# Llama's SentencePiece trainer settings (as read from its tokenizer.model's trainer_spec):
# BPE, byte fallback, digits split, a "▁" dummy prefix, no whitespace clean-up, <unk> <s> </s> = 0 1 2.
LLAMA_SENTENCEPIECE = dict(
    model_type="bpe",
    byte_fallback=True,
    split_digits=True,
    add_dummy_prefix=True,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    normalization_rule_name="identity",
    character_coverage=1.0,
    unk_id=0,
    bos_id=1,
    eos_id=2,
    pad_id=-1,
)


def train_sentencepiece(lines: list[str], dest: str | Path, vocab_size: int = 700) -> Path:
    """Train a Llama-style SentencePiece model on `lines` and write it to `dest` (a
    `tokenizer.model` file). Deterministic for the same lines; under a second for a few
    thousand short lines. `vocab_size` is an upper bound on a small corpus."""
    import sentencepiece

    dest = Path(dest)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        num_threads=1,  # thread scheduling would otherwise change the merges' order
        minloglevel=2,
        **LLAMA_SENTENCEPIECE,
    )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(model.getvalue())
    return dest
