"""ScienceQA in an lmms-eval task scored by LLaVA's rules (ablate.scienceqa.lmms), and where
lmms-eval 0.7.3's own scienceqa_img scorer differs from them."""

import importlib.util

import pytest

from ablate.eval.lmms_tasks import lmms_tasks_dir
from ablate.scienceqa.evaluator import ScienceQAEvaluator
from ablate.scienceqa.lmms import llava_process_results

DOC = {"question": "Which is a mammal?", "choices": ["frog", "cat", "trout"], "answer": 1, "hint": ""}
# (answer, LLaVA's verdict, lmms-eval's verdict); the gold letter is B
ANSWERS = [
    ("B", True, True), ("B. cat", True, True), ("A", False, False), ("The answer is B.", True, False),
    ("b", False, True), ("B.", False, True), ("B.cat", False, True), ("cat", False, False), ("D", False, False),
]


def _lmms_sqa():
    spec = importlib.util.spec_from_file_location("sqa_utils", lmms_tasks_dir() / "scienceqa" / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("answer, llava, lmms", ANSWERS)
def test_the_adapter_scores_as_ablates_evaluator_and_lmms_eval_differs_where_documented(answer, llava, lmms):
    record = {"id": "1", "prediction": answer, "meta": {"answer_letter": "B", "num_choices": 3}}
    ours = ScienceQAEvaluator().score([ScienceQAEvaluator().judge(record)])["accuracy"]
    assert llava_process_results(DOC, [answer]) == {"accuracy": ours} == {"accuracy": 100.0 * llava}
    assert _lmms_sqa().sqa_process_results(DOC, [answer]) == {"exact_match": float(lmms)}
