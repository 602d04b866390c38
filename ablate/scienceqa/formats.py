"""Answer formats: how a ScienceQA problem becomes a human turn and a gpt turn.

Two families are registered in the `answer_format` registry.

LLaVA's ScienceQA prompt codes, keyed `INPUT-OUTPUT` (e.g. `QCM-LEA`, LLaVA's fine-tuning
default). The text equals what LLaVA's `scripts/convert_sqa_to_llava.py` writes into
`llava_<split>_<code>.json` for the same problem, character for character:

  input letters   Q  "Question: <question>"
                  C  "Context: <hint>"  ("N/A" when the hint is empty)
                  M  "Options: (A) <choice> (B) <choice> ..."
                  L  lecture, E  explanation (the problem's `solution`); adjacent L/E letters
                     share one "BECAUSE: <lecture> <solution>" line
                  one line per part, in the code's order
  output codes    A                 "The answer is X."
                  LA EA LEA ELA     reasoning first: "<parts> The answer is X."
                  AL AE ALE AEL     answer first: "The answer is X. BECAUSE: <parts>"
                  LEPA              "LECTURE: ...\\nSOLUTION: ...\\n###\\nANSWER: X."
                                    (empty lecture/solution lines are left out)

  LLaVA's clean-up is reproduced exactly, quirks included: a literal backslash-n in the
  lecture or solution becomes a newline; every double space becomes one (a single left-to-
  right pass, so three spaces become two); text is stripped; a text ending in "BECAUSE:"
  loses every "BECAUSE:" it contains; an input starting with "Question: " loses every
  "Question: " and an output starting with "Answer: " loses every "Answer: " (so `LEA` with
  an empty lecture and solution gives " The answer is X." with its leading space, exactly
  as LLaVA writes it). CQM inputs keep their "Question: " label, as in LLaVA.

  Known difference: LLaVA's script swaps `AL` and `AE` (its `AL` appends the solution and
  its `AE` the lecture). Here the letters mean what they say: `AL` appends the lecture and
  `AE` the explanation. Every other code matches LLaVA.

  Option-text answers (not LLaVA's): `<code>-text`, registered for the QCM input with every
  output code (`QCM-LEA-text`, `QCM-ALE-text`, ...), is LLaVA's `<code>` with the chosen
  option's text where LLaVA writes its letter: "<lecture> <solution> The answer is purple."
  (reasoning first, `QCM-LEA-text`) or "The answer is purple. BECAUSE: <lecture> <solution>"
  (answer first, `QCM-ALE-text`). An option text ending in "." gets no second one. The order
  of reasoning and answer is LLaVA's, character for character; only the answer's form
  differs, so a model too small to look a letter up can still be compared on the order
  (`studies/scienceqa_format.yaml`, tiny scale). The `scienceqa` evaluator reads these
  answers with `match_choice_text: true`.

LLaVA-1.5 response-format prompts, which append one instruction line to the question:
  llava15_mc     "Answer with the option's letter from the given choices directly."
                 ScienceQA: the CQM input, then the instruction; the target is the bare
                 letter (LLaVA-1.5's `model_vqa_science --single-pred-prompt` on CQM-A).
  llava15_short  "Answer the question using a single word or phrase."
                 ScienceQA: the CQM input, then the instruction; the target is the chosen
                 option's text. `apply_to_sample` adds the instruction to any VQA sample.

Where the image goes. LLaVA writes training files with the image after the text
("<input>\\n<image>", `convert_sqa_to_llava.py`), but its evaluation script moves it to the
front ("<image>\\n<input>", `model_vqa_science.py`, which also strips the text). So
`conversations(problem, image_position=...)` takes "end" (training layout) or "start"
(evaluation layout); the `scienceqa` data source picks per split (see `ablate.scienceqa.source`).
LLaVA-1.5 formats always put the image first, like LLaVA-1.5's data and evaluation.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from ablate.errors import AblateError

IMAGE_TOKEN = "<image>"  # same string as ablate.components.contracts.IMAGE_TOKEN (kept light)
OPTION_LETTERS = "ABCDE"  # LLaVA's and ScienceQA's option letters; ScienceQA has 2-5 choices

INPUT_CODES = ("QCM", "CQM", "QCML", "QCME", "QCMLE", "QCLM", "QCEM", "QCLEM")
OUTPUT_CODES = ("A", "LA", "EA", "LEA", "ELA", "AL", "AE", "ALE", "AEL", "LEPA")
DEFAULT_FORMAT = "QCM-LEA"  # LLaVA's ScienceQA fine-tuning format (docs/ScienceQA.md)
TEXT_SUFFIX = "-text"  # `<code>-text`: LLaVA's code with the option's text in place of its letter
TEXT_INPUT_CODES = ("QCM",)  # the inputs whose option-text variants are registered

MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
SHORT_INSTRUCTION = "Answer the question using a single word or phrase."

ImagePosition = Literal["start", "end"]


# --- the pieces of a problem, as LLaVA's prompt builder sees them -----------------------------


def option_letter(index: int) -> str:
    if not 0 <= index < len(OPTION_LETTERS):
        raise AblateError(f"ScienceQA answer index {index} is outside the options {OPTION_LETTERS}")
    return OPTION_LETTERS[index]


def context_text(problem: dict[str, Any]) -> str:
    """The hint, or "N/A" when it is empty (LLaVA joins it with an empty caption first)."""
    return problem["hint"].strip() or "N/A"


def options_text(problem: dict[str, Any]) -> str:
    return " ".join(f"({option_letter(i)}) {choice}" for i, choice in enumerate(problem["choices"]))


def answer_letter(problem: dict[str, Any]) -> str:
    return option_letter(problem["answer"])


def option_text(problem: dict[str, Any]) -> str:
    """The chosen option's text, as the problem writes it."""
    return str(problem["choices"][problem["answer"]])


def _reasoning(problem: dict[str, Any], key: str) -> str:
    # LLaVA escapes newlines as "\\n" and unescapes "\\n" again; the net effect is that a
    # literal backslash-n in the text becomes a real newline.
    return problem[key].replace("\\n", "\n")


def lecture_text(problem: dict[str, Any]) -> str:
    return _reasoning(problem, "lecture")


def solution_text(problem: dict[str, Any]) -> str:
    return _reasoning(problem, "solution")


def _tidy(text: str) -> str:
    """LLaVA's clean-up of a rendered input or output (see the module docstring)."""
    text = text.replace("  ", " ").strip()
    if text.endswith("BECAUSE:"):
        text = text.replace("BECAUSE:", "").strip()
    return text


def _drop_label(text: str, label: str) -> str:
    """convert_sqa_to_llava: a text starting with the label loses every copy of it."""
    return text.replace(label, "") if text.startswith(label) else text


def _place_image(text: str, has_image: bool, position: ImagePosition) -> str:
    if position == "start":  # evaluation layout: the text is stripped, the image leads
        return f"{IMAGE_TOKEN}\n{text.strip()}" if has_image else text.strip()
    if position == "end":  # training-file layout
        return f"{text}\n{IMAGE_TOKEN}" if has_image else text
    raise AblateError(f"image_position must be 'start' or 'end', got {position!r}")


def has_image(problem: dict[str, Any]) -> bool:
    return bool(problem.get("image"))


# --- the formats ----------------------------------------------------------------------------


class AnswerFormat:
    """Base: subclasses define `render`; the rest follows from it.

    `key`, `target` and `bare_answer` are the facts evaluators check a format against
    (`ablate.eval.contracts.AnswerFormat`)."""

    key: str  # the registry name, e.g. "QCM-LEA"
    target: Literal["letter", "text"] = "letter"  # the answer is the option's letter, or its text
    bare_answer: bool = False  # the gpt turn is the answer alone (no reasoning, no "The answer is")
    preferred_image_position: ImagePosition | None = None  # None: the data source decides

    def render(self, problem: dict[str, Any]) -> tuple[str, str]:
        """(human text without the image token, gpt text) for a ScienceQA problem record."""
        raise NotImplementedError

    def answer(self, problem: dict[str, Any]) -> str:
        """The final answer in the form this format trains the model to give."""
        return answer_letter(problem)

    def conversations(self, problem: dict[str, Any], image_position: ImagePosition = "end") -> list[dict[str, str]]:
        human, gpt = self.render(problem)
        position = self.preferred_image_position or image_position
        return [
            {"from": "human", "value": _place_image(human, has_image(problem), position)},
            {"from": "gpt", "value": gpt},
        ]

    def apply_to_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        raise AblateError(
            f"answer format {self.key!r} renders ScienceQA problems (question, hint, choices, lecture, "
            f"solution) and cannot be applied to other samples; use llava15_short or llava15_mc"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.key!r})"


@dataclass(frozen=True, repr=False)
class ScienceQAPrompt(AnswerFormat):
    """One of LLaVA's `INPUT-OUTPUT` ScienceQA prompt codes; with `target="text"` its
    `-text` variant, which states the option's text where LLaVA states the letter."""

    input_code: str
    output_code: str
    target: Literal["letter", "text"] = "letter"

    def __post_init__(self) -> None:
        check_input_code(self.input_code)
        check_output_code(self.output_code)

    @property
    def key(self) -> str:  # type: ignore[override]
        return f"{self.input_code}-{self.output_code}" + (TEXT_SUFFIX if self.target == "text" else "")

    @classmethod
    def from_code(cls, code: str) -> "ScienceQAPrompt":
        """Any well-formed code, registered or not: "QCM-LEA", "MQC-A", "QCM-ALE-text", ..."""
        target = "text" if code.endswith(TEXT_SUFFIX) else "letter"
        parts = code.removesuffix(TEXT_SUFFIX).split("-")
        if len(parts) != 2:
            raise AblateError(f"ScienceQA format codes look like 'QCM-LEA' or 'QCM-LEA-text', got {code!r}")
        return cls(parts[0], parts[1], target)

    def answer(self, problem: dict[str, Any]) -> str:
        return option_text(problem) if self.target == "text" else answer_letter(problem)

    def base_prompt(self, problem: dict[str, Any]) -> tuple[str, str]:
        """LLaVA's (input, output) before the conversion strips "Question: "/"Answer: "."""
        return _tidy(self._raw_input(problem)), _tidy(self._raw_output(problem))

    def render(self, problem: dict[str, Any]) -> tuple[str, str]:
        text_in, text_out = self.base_prompt(problem)
        return _drop_label(text_in, "Question: "), _drop_label(text_out, "Answer: ")

    def _raw_input(self, problem: dict[str, Any]) -> str:
        lines = []
        for run in re.findall(r"[LE]+|[QCM]", self.input_code):
            if run == "Q":
                lines.append(f"Question: {problem['question']}\n")
            elif run == "C":
                lines.append(f"Context: {context_text(problem)}\n")
            elif run == "M":
                lines.append(f"Options: {options_text(problem)}\n")
            else:
                lines.append(f"BECAUSE: {self._parts(problem, run)}\n")
        return "".join(lines)

    def _raw_output(self, problem: dict[str, Any]) -> str:
        code, answer = self.output_code, self.answer(problem)
        # "The answer is X." with X a letter, or an option text that may end in its own "."
        stop = "" if answer.endswith(".") else "."
        if code == "LEPA":
            lecture, solution = lecture_text(problem), solution_text(problem)
            text = f"LECTURE: {lecture}\n" if lecture.strip() else ""
            text += f"SOLUTION: {solution}\n" if solution.strip() else ""
            return f"{text}###\nANSWER: {answer}{stop}"
        if code == "A":
            return f"Answer: The answer is {answer}{stop}"
        if code.startswith("A"):
            return f"Answer: The answer is {answer}{stop} BECAUSE: {self._parts(problem, code[1:])}"
        return f"Answer: {self._parts(problem, code[:-1])} The answer is {answer}{stop}"

    @staticmethod
    def _parts(problem: dict[str, Any], letters: str) -> str:
        texts = {"L": lecture_text(problem), "E": solution_text(problem)}
        return " ".join(texts[letter] for letter in letters)


def check_input_code(code: str) -> None:
    ok = bool(code) and set(code) <= set("QCMLE") and len(set(code)) == len(code) and "Q" in code and "M" in code
    if not ok:
        raise AblateError(
            f"bad ScienceQA input code {code!r}: use each of Q (question), C (context), M (options), "
            f"L (lecture), E (explanation) at most once, with Q and M, e.g. QCM or CQM"
        )


def check_output_code(code: str) -> None:
    reasons = code[1:] if code.startswith("A") else code[:-1] if code.endswith("A") else None
    ok = code in ("A", "LEPA") or (
        reasons is not None and reasons != "" and set(reasons) <= {"L", "E"} and len(set(reasons)) == len(reasons)
    )
    if not ok:
        raise AblateError(
            f"bad ScienceQA output code {code!r}: one of A, LA, EA, LEA, ELA, AL, AE, ALE, AEL, LEPA"
        )


@dataclass(frozen=True, repr=False)
class InstructionFormat(AnswerFormat):
    """A LLaVA-1.5 response-format prompt: the question, then one instruction line."""

    key: str  # type: ignore[misc]
    instruction: str
    target: Literal["letter", "text"]
    bare_answer: bool = True
    preferred_image_position: ImagePosition | None = "start"

    def render(self, problem: dict[str, Any]) -> tuple[str, str]:
        question, _ = ScienceQAPrompt("CQM", "A").render(problem)
        return f"{question}\n{self.instruction}", self.answer(problem)

    def answer(self, problem: dict[str, Any]) -> str:
        return answer_letter(problem) if self.target == "letter" else option_text(problem)

    def apply_to_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """A copy of `sample` whose human turns each end with the instruction.

        The instruction goes after the question text and before a trailing image token; turns
        that already end with it are left alone, so applying twice changes nothing.
        """
        out = copy.deepcopy(sample)
        for turn in out["conversations"]:
            if turn["from"] == "human":
                turn["value"] = self._instruct(turn["value"])
        out.setdefault("meta", {})["answer_format"] = self.key
        return out

    def _instruct(self, text: str) -> str:
        tail = ""
        if text.endswith(f"\n{IMAGE_TOKEN}"):
            text, tail = text[: -len(IMAGE_TOKEN) - 1], f"\n{IMAGE_TOKEN}"
        if not text.rstrip().endswith(self.instruction):
            text = f"{text.rstrip()}\n{self.instruction}"
        return text + tail


LLAVA15_FORMATS = {
    "llava15_mc": InstructionFormat("llava15_mc", MC_INSTRUCTION, "letter"),
    "llava15_short": InstructionFormat("llava15_short", SHORT_INSTRUCTION, "text"),
}


def get_format(key: str) -> AnswerFormat:
    """The answer format named `key` (a prompt code or a LLaVA-1.5 format), without the registry."""
    if key in LLAVA15_FORMATS:
        return LLAVA15_FORMATS[key]
    return ScienceQAPrompt.from_code(key)


def resolve_answer_format(value: Any) -> AnswerFormat:
    """An AnswerFormat from a built one, a registry config, a `{type: ...}` dict, a key, or None
    (QCM-LEA). Data sources call this on the `answer_format=` their builder receives."""
    if value is None:
        return get_format(DEFAULT_FORMAT)
    if isinstance(value, AnswerFormat):
        return value
    from ablate.registry import ComponentConfig, registries

    registry = registries().answer_format
    if isinstance(value, str):
        return registry.get(value).build()
    if isinstance(value, dict):
        return registry.get(value.get("type", "")).build(value)
    if isinstance(value, ComponentConfig):
        return registry.get(value.type).build(value)
    raise AblateError(f"answer_format must be a registered answer format, got {value!r}")


def registered_codes() -> list[str]:
    return [f"{i}-{o}" for i in INPUT_CODES for o in OUTPUT_CODES]


def registered_text_codes() -> list[str]:
    """The option-text variants in the registry: `QCM-<output>-text` for every output code."""
    return [f"{i}-{o}{TEXT_SUFFIX}" for i in TEXT_INPUT_CODES for o in OUTPUT_CODES]


def register(registries) -> None:
    from ablate.registry import ComponentConfig

    def build(config: ComponentConfig) -> AnswerFormat:
        return get_format(config.type)

    for code in registered_codes():
        i, o = code.split("-")
        registries.answer_format.register(
            code, ComponentConfig, build, description=f"ScienceQA prompt: input {i}, output {o} (LLaVA code)"
        )
    for code in registered_text_codes():
        llava_code = code.removesuffix(TEXT_SUFFIX)
        registries.answer_format.register(
            code, ComponentConfig, build,
            description=f"ScienceQA prompt {llava_code} with the option's text where LLaVA gives its letter",
        )
    registries.answer_format.register(
        "llava15_mc", ComponentConfig, build, description=f"LLaVA-1.5 multiple choice: '{MC_INSTRUCTION}'"
    )
    registries.answer_format.register(
        "llava15_short", ComponentConfig, build, description=f"LLaVA-1.5 short answer: '{SHORT_INSTRUCTION}'"
    )
