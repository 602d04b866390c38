"""ScienceQA scored by LLaVA's rules inside an lmms-eval task (lmms-eval's own scorer differs).

    process_results: !function ablate.scienceqa.lmms.llava_process_results
    metric_list: [{metric: accuracy, aggregation: mean, higher_is_better: true}]

For documents as lmms-eval's ScienceQA data sets hold them (`choices`: the options' texts,
`answer`: the right one's index), each answer scores 100 or 0 by `ablate.scienceqa.evaluator`'s
extraction (LLaVA's eval_science_qa.py), so the mean is the accuracy in %, as LLaVA and ablate's
`scienceqa` evaluator report it.

lmms-eval 0.7.3's `scienceqa_img` scorer (`sqa_process_results`) differs from LLaVA's:
- it compares case-blind: "b" scores for B, where LLaVA's first rule takes an upper-case letter only;
- it reads the letter of any answer whose second character is "." ("A.", "A.B"), where LLaVA needs
  three characters or more, an option letter and ". " ("A. text");
- it has no "The answer is X." rule, which LLaVA applies to answers that give reasons first;
- it reports `exact_match` as a fraction (0-1), LLaVA a percentage.
"""

from __future__ import annotations

from typing import Any

from ablate.scienceqa.evaluator import extract_answer, is_correct
from ablate.scienceqa.formats import OPTION_LETTERS


def llava_process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """{"accuracy": 100.0 or 0.0} for the model's answer to one ScienceQA document."""
    letter = extract_answer(str(results[0] if results else ""))
    gold = OPTION_LETTERS[int(doc["answer"])]
    return {"accuracy": 100.0 * is_correct(letter, gold, len(doc["choices"]))}
