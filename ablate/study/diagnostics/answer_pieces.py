"""`answer_pieces`: each arm's accuracy by how many tokens its LLM spells the right answer in.

A tokenizer trained on little text (the zoo's, on easy-VQA text) spells a word it rarely saw in
several pieces ("rabbit": 5), where a real LLM's spells it in one or two. A model that answers
with an option's text then has to copy the option piece by piece, and a small one copies a
one-token word far more reliably than a five-piece one. If that is what an arm lacks, its
accuracy falls with the answer's length in tokens while one-token answers stay right; if it
does not fall, the answers' spelling is not the reason. Reads each cell's predictions (the
right answer's text) and the tokenizer of the cell's own LLM: nothing is trained.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ablate.study.diagnostics.base import (Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult,
                                          percent, share)

MARGIN = 0.10  # one-token answers this much more often right than longer ones: "falls with length"


class AnswerPiecesConfig(DiagnosticConfig):
    longest: int = Field(4, ge=2, description="answers this many tokens long or longer share one row")
    one_word: bool = Field(True, description="count only answers that are one word: the ones copied from an "
                           "option (a phrase or sentence answer is picked among a few the model has memorised)")


class AnswerPieces(Diagnostic):
    title = "Accuracy by the right answer's length in the LLM's tokens"

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        tokenizers = Tokenizers()
        lengths = {arm: _lengths(ctx, runs, self.config, tokenizers) for arm, runs in ctx.by_arm.items()}
        rows = [[arm, _label(n, self.config.longest), str(len(right)), percent(_right(right))]
                for arm, by_length in lengths.items() for n, right in sorted(by_length.items())]
        data = {arm: {str(n): {"answers": len(right), "right": _right(right)} for n, right in sorted(by_length.items())}
                for arm, by_length in lengths.items()}
        columns = ["arm", "right answer's length (tokens" + (", one-word answers)" if self.config.one_word else ")"),
                   "answers", "right"]
        finding = _finding(lengths) + (f" Left out: {'; '.join(tokenizers.skipped)}." if tokenizers.skipped else "")
        return self._result(columns, rows, finding, {"arms": data, "longest": self.config.longest})


class Tokenizers:
    """Each distinct LLM's tokenizer, loaded once (the cells of an arm, often of every arm, share
    one); LLMs whose tokenizer this cannot load are noted and their cells left out."""

    def __init__(self):
        self.loaded: dict[str, Any] = {}
        self.skipped: list[str] = []

    def get(self, llm):
        key = llm.model_dump_json()
        if key not in self.loaded:
            self.loaded[key] = self._load(llm)
        return self.loaded[key]

    def _load(self, llm):
        from ablate.components.llms.hf_causal_lm import load_tokenizer
        from ablate.errors import AblateError

        if llm.type != "hf_causal_lm":
            self.skipped.append(f"cells with a {llm.type} LLM (only hf_causal_lm tokenizers are read)")
            return None
        try:
            return load_tokenizer(llm)
        except AblateError as error:
            self.skipped.append(f"cells with {llm.name_or_path} ({error})")
            return None


def _lengths(ctx: DiagnosticContext, runs, config: AnswerPiecesConfig, tokenizers: Tokenizers) -> dict[int, list[bool]]:
    """length in tokens (capped at `config.longest`) -> whether each judged answer of that length was right."""
    by_length: dict[int, list[bool]] = {}
    for run in runs:
        recipe = ctx.recipes.get(run.cell)
        if recipe is None:
            tokenizers.skipped.append(f"cell {run.cell} (the study file no longer plans it)")
            continue
        tokenizer = tokenizers.get(recipe.model.llm)
        if tokenizer is None:
            continue
        for item in run.items or []:
            text = _answer_text(item)
            if text is None or "correct" not in item or (config.one_word and len(text.split()) != 1):
                continue
            n = min(len(tokenizer(text, add_special_tokens=False).input_ids), config.longest)
            by_length.setdefault(n, []).append(bool(item["correct"]))
    return by_length


def _answer_text(item: dict[str, Any]) -> str | None:
    """The right answer as the model writes it: the option's text where the item records it (a
    letter format's `answer` is the letter), else the item's `answer`."""
    text = (item.get("meta") or {}).get("answer_text", item.get("answer"))
    return text if isinstance(text, str) and text.strip() else None


def _right(answers: list[bool]) -> float | None:
    return share(sum(answers), len(answers))


def _label(n: int, longest: int) -> str:
    return f"{n}+" if n == longest else str(n)


def _finding(lengths: dict[str, dict[int, list[bool]]]) -> str:
    parts = []
    for arm, by_length in lengths.items():
        one = by_length.get(1, [])
        more = [right for n, rights in by_length.items() if n > 1 for right in rights]
        if not one or not more:
            parts.append(f"{arm}: no judged answers of {'one token' if not one else 'several tokens'} to compare")
            continue
        gap = _right(one) - _right(more)
        verdict = ("falls with the answer's length: spelling an option in pieces is part of what it misses"
                   if gap >= MARGIN else "does not fall with the answer's length: spelling is not the reason")
        parts.append(f"{arm}: one-token answers {percent(_right(one))} right (n={len(one)}), longer ones "
                     f"{percent(_right(more))} (n={len(more)}), {100 * gap:+.1f} points; accuracy {verdict}")
    return "; ".join(parts) + "."


def register(registry) -> None:
    registry.register("answer_pieces", AnswerPiecesConfig, AnswerPieces,
                      description="each arm's accuracy by the right answer's length in its LLM's tokens "
                                  "(reads the cells' predictions and tokenizers)")
