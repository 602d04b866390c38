"""What every conversation template shares.

- turn checks: LLaVA's "human"/"gpt" turns, named errors for bad ones;
- `tokenize_with_image`: LLaVA's image-aware tokenization (the text is cut at "<image>", each
  piece is tokenized on its own with the tokenizer's special tokens, the BOS of every piece
  after the first is dropped and IMAGE_TOKEN_INDEX goes in between), keeping each token's
  character span in the full text;
- labels from character spans: a token is supervised when its span lies inside a target span
  of the rendered text. Tokenizing once and reading offsets needs no assumption about how a
  tokenizer splits pieces of text, which is where LLaVA's length arithmetic breaks;
- truncation that refuses to leave a sample with nothing to learn.

Nothing here imports torch or transformers: templates only call the tokenizer they are given.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN, IMAGE_TOKEN_INDEX
from ablate.errors import AblateError, DataError

HUMAN, GPT = "human", "gpt"
WORD_START = "\u2581"  # SentencePiece's "▁"
ROLES = (HUMAN, GPT)
Turn = tuple[str, str]  # (role, text)


def where(template: str, sample_id: str | None) -> str:
    """The start of every error message: which template, which sample."""
    return f"template {template!r}, sample {sample_id!r}" if sample_id is not None else f"template {template!r}"


def read_turns(conversations: Any, at: str) -> list[Turn]:
    """LLaVA turns (`[{"from": "human"|"gpt", "value": str}, ...]`) as (role, text) pairs."""
    if not isinstance(conversations, Sequence) or isinstance(conversations, (str, bytes)) or not conversations:
        raise DataError(f"{at}: conversations must be a non-empty list of turns, got {conversations!r:.80}")
    turns = []
    for n, turn in enumerate(conversations):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            raise DataError(f"{at}: turn {n} must be a dict with 'from' and 'value', got {turn!r:.80}")
        role, text = turn["from"], turn["value"]
        if role not in ROLES:
            raise DataError(f"{at}: turn {n} is from {role!r}; turns must be from 'human' or 'gpt'")
        if not isinstance(text, str):
            raise DataError(f"{at}: turn {n} has a non-text value {text!r:.80}")
        turns.append((role, text))
    images = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if images > 1:
        raise DataError(f"{at}: {images} {IMAGE_TOKEN} placeholders; a sample holds at most one image")
    return turns


def check_alternating(turns: list[Turn], at: str) -> None:
    """human, gpt, human, gpt, ... (LLaVA asserts the same)."""
    for n, (role, _) in enumerate(turns):
        if role != ROLES[n % 2]:
            order = ", ".join(r for r, _ in turns)
            raise DataError(f"{at}: turns must alternate human, gpt, ...; got {order}")


@dataclass(frozen=True)
class TokenizedText:
    ids: list[int]
    spans: list[tuple[int, int]]  # each token's characters in the text; the image token's is "<image>"
    added: list[bool]  # True for tokens the tokenizer added (BOS/EOS), not read from the text


def tokenize_with_image(text: str, tokenizer: Any, at: str = "template") -> TokenizedText:
    """Tokenize like LLaVA's tokenizer_image_token, with character spans.

    The ids equal LLaVA's: with one "<image>" they are `tokenizer(before)` (BOS included),
    IMAGE_TOKEN_INDEX, then `tokenizer(after)` without its first token when the first piece
    began with BOS. Text without "<image>" gives `tokenizer(text).input_ids`. "tokenizer" means
    the slow SentencePiece one LLaVA uses: a piece that starts with a space keeps its extra
    word-start "▁" (" What" -> "▁", "▁What") where a Metaspace tokenizer would drop it.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise AblateError(
            f"{at}: needs a fast (tokenizers-backed) tokenizer for character offsets, "
            f"got {type(tokenizer).__name__}; load it with use_fast=True"
        )
    pieces = text.split(IMAGE_TOKEN)
    # One extra leading space where the tokenizer would skip SentencePiece's word-start "▁"
    # (see `_skips_dummy_prefix`); its offsets are shifted back below.
    pad = _skips_dummy_prefix(tokenizer)
    extra = [int(pad and piece.startswith((" ", WORD_START))) for piece in pieces]
    inputs = [" " * e + piece for e, piece in zip(extra, pieces)]
    encoded = tokenizer(inputs, add_special_tokens=True, return_offsets_mapping=True)
    bos = tokenizer.bos_token_id
    first = encoded["input_ids"][0]
    drop_bos = bos is not None and len(first) > 0 and first[0] == bos
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    added: list[bool] = []
    start = 0  # where the current piece begins in `text`
    for n, piece in enumerate(pieces):
        piece_ids = encoded["input_ids"][n]
        offsets = encoded["offset_mapping"][n]
        from_text = encoded.sequence_ids(n)  # None marks tokens the post-processor added
        skip = 0
        if n > 0:
            ids.append(IMAGE_TOKEN_INDEX)
            spans.append((start - len(IMAGE_TOKEN), start))
            added.append(False)
            if drop_bos:
                # LLaVA drops the first token of every later piece, assuming it is BOS.
                if not piece_ids or piece_ids[0] != bos:
                    raise DataError(f"{at}: the text after {IMAGE_TOKEN} does not start with BOS when tokenized")
                skip = 1
        shift = extra[n]
        for token, (lo, hi), seq in zip(piece_ids[skip:], offsets[skip:], from_text[skip:]):
            ids.append(token)
            spans.append((start + max(lo - shift, 0), start + max(hi - shift, 0)))
            added.append(seq is None)
        start += len(piece) + len(IMAGE_TOKEN)
    return TokenizedText(ids, spans, added)


def _skips_dummy_prefix(tokenizer: Any) -> bool:
    """True for a Metaspace tokenizer that prepends "▁" only when the text does not already
    start with one (transformers 5's Llama). SentencePiece, and so the slow LlamaTokenizer LLaVA
    uses, prepends it anyway: " What" is "▁", "▁What" there and "▁What" here. A space in front
    makes the two agree. Tokenizers that prepend with a normalizer (ablate's load of a legacy
    `tokenizer.model`, see ablate.components.llms.slow_llama) need nothing."""
    pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    return type(pre).__name__ == "Metaspace" and getattr(pre, "prepend_scheme", "never") != "never"


def labels_from_spans(tokens: TokenizedText, targets: Sequence[tuple[int, int]], at: str) -> list[int]:
    """Supervise the tokens whose characters lie inside one of `targets` (sorted, disjoint).

    Raises DataError when a token crosses a target's edge (prompt and reply share a token, so
    no exact mask exists) or when a target gets no token at all.
    """
    labels = [IGNORE_INDEX] * len(tokens.ids)
    hits = [0] * len(targets)
    t = 0  # spans only grow along the tokens, so one pass over the targets suffices
    for k, (token, (lo, hi), added) in enumerate(zip(tokens.ids, tokens.spans, tokens.added)):
        if added or token == IMAGE_TOKEN_INDEX:
            continue
        while t < len(targets) and targets[t][1] <= lo:
            t += 1
        if t == len(targets):
            break
        a, b = targets[t]
        inside = a <= lo and hi <= b  # a zero-width token at lo counts when a <= lo < b
        overlaps = a < hi  # lo < b holds after the loop above
        if inside:
            labels[k] = token
            hits[t] += 1
        elif overlaps:
            raise DataError(
                f"{at}: token {k} (id {token}, characters {lo}-{hi}) crosses the edge of the reply at "
                f"characters {a}-{b}; this tokenizer merges prompt and reply text, so no exact mask exists"
            )
    for (a, b), n in zip(targets, hits):
        if n == 0:
            raise DataError(f"{at}: the reply at characters {a}-{b} got no tokens to supervise")
    return labels


def truncate(ids: list[int], labels: list[int], max_length: int | None, at: str) -> tuple[list[int], list[int]]:
    """Cut to `max_length` tokens; refuse to return a sample with no supervised token or with
    its image placeholder cut off."""
    if max_length is not None:
        if max_length <= 0:
            raise AblateError(f"{at}: max_length must be positive, got {max_length}")
        if len(ids) > max_length:
            had_image = IMAGE_TOKEN_INDEX in ids
            ids, labels = ids[:max_length], labels[:max_length]
            if had_image and IMAGE_TOKEN_INDEX not in ids:
                raise DataError(f"{at}: truncation to {max_length} tokens cuts off the image placeholder")
    if all(label == IGNORE_INDEX for label in labels):
        cut = f" after truncation to {max_length} tokens" if max_length is not None else ""
        raise DataError(f"{at}: no supervised token left{cut}")
    return ids, labels


class ConversationTemplate(ABC):
    """Renders LLaVA conversations to text and tokens (see ablate.data.contracts)."""

    name: str = "template"
    stop: str = "</s>"  # generation ends here; clean_prediction cuts at it

    @abstractmethod
    def render(self, conversations: Any, *, sample_id: str | None = None) -> str:
        """The training text, exactly as LLaVA builds it."""

    @abstractmethod
    def render_prompt(self, conversations: Any, *, sample_id: str | None = None) -> str:
        """The generation prompt text (see `prompt_ids`)."""

    @abstractmethod
    def encode(
        self, conversations: Any, tokenizer: Any, *, sample_id: str | None = None, max_length: int | None = None
    ) -> tuple[list[int], list[int]]:
        """(input_ids, labels): "<image>" -> IMAGE_TOKEN_INDEX, unsupervised labels IGNORE_INDEX."""

    def prompt_ids(self, conversations: Any, tokenizer: Any, *, sample_id: str | None = None) -> list[int]:
        text = self.render_prompt(conversations, sample_id=sample_id)
        return tokenize_with_image(text, tokenizer, where(self.name, sample_id)).ids

    def clean_prediction(self, text: str) -> str:
        """Generated text up to the first stop string, without surrounding whitespace."""
        return text.split(self.stop, 1)[0].strip()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
