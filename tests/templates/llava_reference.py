"""LLaVA's preprocessing, re-stated step by step for the tests, on the tokenizer LLaVA uses.

- `SlowLlamaTokenizer`: transformers 4's slow sentencepiece `LlamaTokenizer`, what LLaVA loads with
  `use_fast=False` (transformers 5 no longer has it), written on `sentencepiece` directly.
- `llava_*`: llava/train/train.py (preprocess_multimodal, preprocess_v1, preprocess_plain, the
  collator's cut to model_max_length) and llava/mm_utils.py (tokenizer_image_token).

Independent of ablate's code: LLaVA measures the lengths of separately tokenized pieces of text
and masks by position; the templates tokenize once and map character spans to tokens.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

IGNORE, IMAGE = -100, -200
WORD_START = "\u2581"
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


# ---- the slow tokenizer ---------------------------------------------------------------------


@dataclass
class Encoded:
    input_ids: list[int]


class SlowLlamaTokenizer:
    """The text is cut at the special tokens (<unk>, <s>, </s>), which become their ids.

    legacy: every other stretch goes through SentencePiece as it is, whose dummy prefix gives
    each stretch a word-start "▁". Non-legacy: the dummy prefix is off; one "▁" goes in front
    of the whole text instead (any "▁" in the text counts as a space), a stretch that starts
    with a space is encoded after "<unk>", whose pieces are then dropped, and a lone leading
    "▁" before a special token is dropped. BOS first, no EOS.
    """

    def __init__(self, model_file, legacy: bool, model_max_length: int = 2048):
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2

        proto = sentencepiece_model_pb2.ModelProto()
        with open(model_file, "rb") as f:
            proto.ParseFromString(f.read())
        if not legacy:
            proto.normalizer_spec.add_dummy_prefix = False
        self.sp = sentencepiece.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.legacy = legacy
        self.model_max_length = model_max_length
        self.special = {piece: self.sp.piece_to_id(piece) for piece in ("<unk>", "<s>", "</s>")}
        self.bos_token_id, self.eos_token_id = self.special["<s>"], self.special["</s>"]
        self.pad_token_id = self.special["<unk>"]  # LLaVA pads Llama with <unk>
        self._cut = re.compile("(" + "|".join(map(re.escape, self.special)) + ")")
        self._unk_pieces = len(self.sp.encode("<unk>", out_type=str))

    def tokenize(self, text: str) -> list[str]:
        if not self.legacy and text:
            text = WORD_START + text.replace(WORD_START, " ")
        pieces: list[str] = []
        for stretch in self._cut.split(text):
            if stretch in self.special:
                pieces.append(stretch)
            elif stretch:
                pieces += self._encode(stretch)
        if not self.legacy and len(pieces) > 1 and pieces[0] == WORD_START and pieces[1] in self.special:
            pieces = pieces[1:]
        return pieces

    def _encode(self, stretch: str) -> list[str]:
        if self.legacy or not stretch.startswith((WORD_START, " ")):
            return self.sp.encode(stretch, out_type=str)
        return self.sp.encode("<unk>" + stretch, out_type=str)[self._unk_pieces:]

    def __call__(self, text: str, truncation: bool = False) -> Encoded:
        ids = [self.bos_token_id] + [self.sp.piece_to_id(piece) for piece in self.tokenize(text)]
        return Encoded(ids[: self.model_max_length] if truncation else ids)


# ---- LLaVA's preprocessing --------------------------------------------------------------------


def llava_image_tokens(prompt: str, tok) -> list[int]:
    """tokenizer_image_token: tokenize the text between placeholders separately; keep BOS once."""
    chunks = [tok(chunk).input_ids for chunk in prompt.split("<image>")]
    starts_with_bos = len(chunks[0]) > 0 and chunks[0][0] == tok.bos_token_id
    out, cut = ([chunks[0][0]], 1) if starts_with_bos else ([], 0)
    for n, chunk in enumerate(chunks):
        if n > 0:
            out.append(IMAGE)
        out.extend(chunk[cut:])
    return out


def llava_multimodal(conversation):
    """preprocess_multimodal (no im_start/im_end): the placeholder goes first, then a newline."""
    conversation = copy.deepcopy(conversation)
    for turn in conversation:
        if "<image>" in turn["value"]:
            rest = turn["value"].replace("<image>", "").strip()
            turn["value"] = ("<image>" + "\n" + rest).strip()
    return conversation


def llava_v1_prompt(conversation, system=SYSTEM, generation=False) -> str:
    """conv_vicuna_v1.get_prompt() (SeparatorStyle.TWO); `generation` appends an empty reply."""
    role = {"human": "USER", "gpt": "ASSISTANT"}
    if conversation[0]["from"] != "human":
        conversation = conversation[1:]
    messages = [(role[t["from"]], t["value"]) for t in conversation]
    if generation:
        messages.append(("ASSISTANT", None))
    text = system + " "
    for i, (who, message) in enumerate(messages):
        text += f"{who}: {message}" + (" ", "</s>")[i % 2] if message else f"{who}:"
    return text


def llava_preprocess_v1(conversation, tok, legacy=None, max_length=None):
    """preprocess_v1 for one sample, then the collator's cut: (input_ids, labels, mismatch).

    Per round (text between "</s>"): the round's token count, and the instruction's count
    ("... ASSISTANT: ") minus 2 (its BOS, and the "▁" of its trailing space, which in the full
    text starts the answer). Rounds after the first lose one more of each when the tokenizer
    is non-legacy. Text-only samples are tokenized with truncation to max_length, image samples
    are not. A total that disagrees with the non-pad token count, checked only while the rounds
    end before max_length, is LLaVA's "tokenization mismatch": the whole sample is masked.
    """
    legacy = tok.legacy if legacy is None else legacy
    max_length = max_length or 10**9
    has_image = any("<image>" in t["value"] for t in conversation)
    if has_image:
        conversation = llava_multimodal(conversation)
    text = llava_v1_prompt(conversation)
    if has_image:
        ids = llava_image_tokens(text, tok)
        count = lambda s: len(llava_image_tokens(s, tok))  # noqa: E731
    else:
        ids = tok(text).input_ids[:max_length]  # tokenizer(..., max_length, truncation=True)
        count = lambda s: len(tok(s).input_ids)  # noqa: E731
    labels = list(ids)
    total = sum(1 for i in ids if i != tok.pad_token_id)

    def mask(lo, hi):
        for k in range(lo, min(hi, len(labels))):
            labels[k] = IGNORE

    position = 1
    mask(0, 1)
    reply_marker = " ASSISTANT: "
    for i, round_text in enumerate(text.split("</s>")):
        if round_text == "":
            break
        halves = round_text.split(reply_marker)
        if len(halves) != 2:
            break
        round_len = count(round_text)
        instruction_len = count(halves[0] + reply_marker) - 2
        if i != 0 and not legacy:
            round_len -= 1
            instruction_len -= 1
        mask(position, position + instruction_len)
        position += round_len
    mask(position, len(labels))
    mismatch = position < max_length and position != total
    if mismatch:
        labels = [IGNORE] * len(labels)
    return ids[:max_length], labels[:max_length], mismatch


def llava_preprocess_plain(conversation, tok, max_length=None):
    """preprocess_plain: "<image>" + caption + "\\n"; mask what "<image>" alone tokenizes to."""
    assert len(conversation) == 2 and "<image>" in conversation[0]["value"]
    ids = llava_image_tokens("<image>" + conversation[1]["value"] + "\n", tok)
    masked = len(llava_image_tokens("<image>", tok))
    labels = [IGNORE] * masked + ids[masked:]
    return ids[:max_length], labels[:max_length]
