"""`option_naming`: how often each arm's answers name an option at all, and how often the option
they name is the right one, against what picking among the item's options at random gives.

For a multiple-choice study below chance (scienceqa_format at tiny scale), "below chance" has two
readings that need different fixes: the model names options but the wrong ones (it has not
learnt the task), or it often names none (it answers with a word no option has, which the
evaluator scores FAILED) and picks well when it does. The cells' predictions already hold
what tells them apart (each record's `extracted` answer, `correct` and `meta.num_choices`), so
this reads them: nothing runs. `by` breaks the figures down by a meta field (e.g. `skill`).

An answer naming no option is split by where its stated word comes from: the prompt (a word of
the question or context that is not an option: the model read the prompt but copied the wrong
word) or nowhere in it (a word recalled from training, e.g. another problem's option).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

import re

from ablate.scienceqa.evaluator import ANSWER_IS_PREFIX, FAILED  # FAILED: an answer naming no option (LLaVA's marker)
from ablate.study.diagnostics.base import (Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult,
                                          percent, share)

MARGIN = 0.05  # a named option's accuracy this far above chance counts as "picks above chance"


class OptionNamingConfig(DiagnosticConfig):
    by: str | None = Field(None, description="also break the figures down by this meta field of the items "
                           "(e.g. skill, subject)")


class OptionNaming(Diagnostic):
    title = "Answers that name an option, and how often the named option is right"

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        per_arm = {arm: _arm_records(runs) for arm, runs in ctx.by_arm.items()}
        data = {arm: tally(records) for arm, records in per_arm.items()}
        rows = [[arm, "all", *_cells(figures)] for arm, figures in data.items()]
        groups: dict[str, dict[str, dict[str, Any]]] = {}
        if self.config.by:
            for arm, records in per_arm.items():
                groups[arm] = {value: tally(group) for value, group in _grouped(records, self.config.by).items()}
                rows += [[arm, value, *_cells(figures)] for value, figures in sorted(groups[arm].items())]
        columns = ["arm", self.config.by or "items", "answers", "name no option", "of which in / not in the prompt",
                   "right among named", "chance among named", "right overall"]
        finding = _finding(data) + _against_baseline(ctx.baseline, data)
        return self._result(columns, rows, finding, {"arms": data, "by": self.config.by, "groups": groups})


def _arm_records(runs) -> list[dict[str, Any]]:
    """Every judged prediction of the arm's cells (all seeds), skipping cells without predictions."""
    return [item for run in runs for item in (run.items or []) if "extracted" in item]


def _grouped(records: list[dict[str, Any]], field: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str((record.get("meta") or {}).get(field, "-")), []).append(record)
    return groups


def tally(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and shares: answers, those naming no option, right among the named, its chance level."""
    named = [r for r in records if r.get("extracted") != FAILED]
    named_right = sum(bool(r.get("correct")) for r in named)  # a FAILED answer is never correct
    chance = [1.0 / n for r in named if isinstance(n := (r.get("meta") or {}).get("num_choices"), int) and n > 0]
    sources = [answer_source(r) for r in records if r.get("extracted") == FAILED]
    return {
        "answers": len(records),
        "no_option": len(records) - len(named),
        "no_option_in_prompt": sources.count("in the prompt"),
        "no_option_not_in_prompt": sources.count("not in the prompt"),
        "no_option_share": share(len(records) - len(named), len(records)),
        "right_among_named": share(named_right, len(named)),
        "chance_among_named": sum(chance) / len(chance) if chance else None,
        "right_overall": share(named_right, len(records)),
    }


def answer_source(record: dict[str, Any]) -> str | None:
    """Where the word a prediction states ("The answer is <word>.", the last such) comes from:
    "in the prompt", "not in the prompt", or None when it states none (or the record has no prompt)."""
    stated = re.findall(re.escape(ANSWER_IS_PREFIX) + r"(.+?)\.(?:\s|$)", record.get("prediction") or "")
    prompt = record.get("prompt")
    if not stated or not prompt:
        return None
    word, text = _words(stated[-1]), _words(prompt)
    return "in the prompt" if word and f" {word} " in f" {text} " else "not in the prompt"


def _words(text: str) -> str:
    return " ".join(re.findall(r"[\w$.'-]+", text.lower())).strip(" .")


def _cells(figures: dict[str, Any]) -> list[str]:
    return [str(figures["answers"]), f"{figures['no_option']} ({percent(figures['no_option_share'])})",
            f"{figures['no_option_in_prompt']} / {figures['no_option_not_in_prompt']}",
            percent(figures["right_among_named"]), percent(figures["chance_among_named"]),
            percent(figures["right_overall"])]


def _finding(data: dict[str, dict[str, Any]]) -> str:
    parts = []
    for arm, figures in data.items():
        if not figures["answers"]:
            parts.append(f"{arm}: no judged predictions (the cells need an evaluator that extracts an option, "
                         "e.g. scienceqa)")
            continue
        named, chance = figures["right_among_named"], figures["chance_among_named"]
        text = f"{arm}: {percent(figures['no_option_share'])} of {figures['answers']} answers name no option"
        if figures["no_option"]:
            text += (f" ({figures['no_option_not_in_prompt']} with a word found nowhere in the prompt, "
                     f"{figures['no_option_in_prompt']} with a word of the prompt that is no option)")
        if named is None or chance is None:
            parts.append(text)
            continue
        text += f"; the options named are right {percent(named)} of the time against {percent(chance)} by chance"
        if named >= chance + MARGIN:
            text += " (it picks above chance when it names one: the answers naming none are what it lacks)"
        else:
            text += " (even the options it names are near chance: it has not learnt to pick)"
        parts.append(text)
    return "; ".join(parts) + "."


def _against_baseline(baseline: str, data: dict[str, dict[str, Any]]) -> str:
    """Which of the two readings separates each arm from the baseline, in points."""
    base = data.get(baseline) or {}
    parts = []
    for arm, figures in data.items():
        if arm == baseline or None in (figures.get("no_option_share"), base.get("no_option_share"),
                                       figures.get("right_among_named"), base.get("right_among_named")):
            continue
        parts.append(f"{arm} against {baseline}: {_points(figures['no_option_share'] - base['no_option_share'])} "
                     f"of answers naming no option, {_points(figures['right_among_named'] - base['right_among_named'])}"
                     " right among the named")
    return (" " + "; ".join(parts) + ".") if parts else ""


def _points(delta: float) -> str:
    return f"{100 * delta:+.1f} points"


def register(registry) -> None:
    registry.register("option_naming", OptionNamingConfig, OptionNaming,
                      description="how often answers name an option, and the named option's accuracy vs chance "
                                  "(reads the cells' predictions)")
