from pathlib import Path

import pytest

from ablate.errors import AblateError, DataError
from ablate.registry import registries
from ablate.scienceqa.evaluator import (
    FAILED, PAPER_COLUMN_ORDER, ScienceQAEvaluator, ScienceQAEvaluatorConfig, extract_answer, llava_answer_records,
)

SCORED = Path(__file__).parent / "data" / "scored"


def record(prediction, gold="B", n=3, **meta):
    return {"id": "1", "prompt": "", "prediction": prediction, "answer": gold,
            "meta": {"answer_letter": gold, "num_choices": n, "choices": ["hard", "soft", "wet"][:n], **meta}}


@pytest.mark.parametrize("prediction, letter", [
    # rule 1: exactly a letter
    ("B", "B"), ("E", "E"), (" C\n", "C"),
    # rule 2: "X. " at the start (and at least three characters)
    ("B. soft", "B"), ("A. The answer is B.", "A"),
    # rule 3: exactly one "The answer is X." ("." is any character)
    ("Both are soft. The answer is B.", "B"), ("The answer is C, clearly", "C"),
    ("LECTURE: x\n###\nThe answer is A.", "A"),
    # rule 4: FAILED
    ("B.", FAILED), ("b", FAILED), ("AB", FAILED), ("", FAILED), ("soft", FAILED), ("(B) soft", FAILED),
    ("The answer is B", FAILED), ("The answer is A. The answer is A.", FAILED), ("the answer is B.", FAILED),
    ("F. nope", FAILED), ("ANSWER: B.", FAILED),
])
def test_extraction_rules(prediction, letter):
    assert extract_answer(prediction) == letter


def test_judge_marks_letters_and_failures():
    judge = ScienceQAEvaluator().judge
    assert judge(record("B"))["correct"] is True
    assert judge(record("The answer is A."))["correct"] is False
    out = judge(record("soft"))
    assert (out["extracted"], out["correct"]) == (FAILED, False)
    # a letter past the last choice is parsed but wrong, even when it would be "right" by index
    out = judge(record("E", gold="B", n=2))
    assert (out["extracted"], out["correct"]) == ("E", False)
    assert judge(record("B"))["prediction"] == "B"  # the record is kept


def test_choice_text_rule_is_opt_in():
    lenient = ScienceQAEvaluator(ScienceQAEvaluatorConfig(type="scienceqa", match_choice_text=True))
    assert ScienceQAEvaluator().judge(record("Soft."))["extracted"] == FAILED
    out = lenient.judge(record("Soft."))
    assert (out["extracted"], out["correct"]) == ("B", True)
    assert lenient.judge(record("The answer is C."))["extracted"] == "C"  # LLaVA's rules come first


def test_judge_needs_scienceqa_meta():
    with pytest.raises(DataError, match="answer_letter"):
        ScienceQAEvaluator().judge({"id": "7", "prediction": "A", "answer": "red", "meta": {}})


def test_scores_of_a_hand_made_predictions_file():
    records = llava_answer_records(SCORED, "test", SCORED / "answers.jsonl")
    assert [r["id"] for r in records] == [str(i) for i in range(1, 9)]  # val's pid 9 is left out
    assert records[4]["prediction"] == FAILED  # pid 5 has no answer line
    evaluator = registries().evaluator.get("scienceqa").build()
    judged = [evaluator.judge(r) for r in records]
    assert [r["extracted"] for r in judged] == ["A", "C", "C", "E", FAILED, "D", FAILED, "B"]
    assert [r["correct"] for r in judged] == [True, False, True, False, False, True, False, True]
    # by hand: correct = pids 1, 3, 6, 8
    #   NAT 1,2,3 -> 2/3   SOC 4,5 -> 0/2   LAN 6,7,8 -> 2/3
    #   TXT (hint) 1,4,6,8 -> 3/4   IMG 1,2,6 -> 2/3   NO 3,5,7 -> 1/3
    #   G1-6 (grades 1,3,5,2) 1,3,5,8 -> 3/4   G7-12 (8,10,7,12) 2,4,6,7 -> 1/4
    expected = {"NAT": 200 / 3, "SOC": 0.0, "LAN": 200 / 3, "TXT": 75.0, "IMG": 200 / 3, "NO": 100 / 3,
                "G1-6": 75.0, "G7-12": 25.0, "accuracy": 50.0}
    scores = evaluator.score(judged)
    assert list(scores) == list(PAPER_COLUMN_ORDER)
    assert scores == pytest.approx(expected)
    assert evaluator.score(records) == scores  # unjudged records are judged first


def test_empty_columns_are_left_out():
    scores = ScienceQAEvaluator().score([record("B", subject="social science", grade="grade3", has_hint=False,
                                                has_image=True)])
    assert scores == {"SOC": 100.0, "IMG": 100.0, "G1-6": 100.0, "accuracy": 100.0}
    with pytest.raises(AblateError):
        ScienceQAEvaluator().score([])


def test_answers_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "answers.jsonl"
    bad.write_text('{"question_id": "1", "text": "A"}\nnot json\n')
    with pytest.raises(DataError, match=r"answers.jsonl:2"):
        llava_answer_records(SCORED, "test", bad)


@pytest.mark.parametrize("prediction, choices, letter", [
    # reasoning first and answer first, as QCM-LEA-text and QCM-ALE-text write them
    ("Soft things bend. The answer is soft.", ["hard", "soft"], "B"),
    ("The answer is hard. BECAUSE: hard things do not bend.", ["hard", "soft"], "A"),
    ("The answer is Soft", ["hard", "soft"], "B"),  # case aside, at the end
    # LLaVA's rule 3 would read "Bears" as the letter B; the option text comes first
    ("The answer is Bears.", ["Bears", "Hawks"], "A"),
    # the longest option that fits; an option's own full stop
    ("The answer is 1.5. BECAUSE: x", ["1", "1.5"], "B"),
    ("The answer is The circle is blue. BECAUSE: x", ["The circle is red.", "The circle is blue."], "B"),
    # two answers naming the same option are one answer; naming two is none
    ("The answer is soft. So the answer is soft.", ["hard", "soft"], "B"),
    ("The answer is soft. The answer is hard.", ["hard", "soft"], FAILED),
    # an option must end where the sentence does
    ("The answer is softer.", ["hard", "soft"], FAILED),
    # letters still read by LLaVA's rules
    ("The answer is B.", ["hard", "soft"], "B"),
])
def test_option_text_rules(prediction, choices, letter):
    assert extract_answer(prediction, choices) == letter


def test_text_formats_need_the_choice_text_rules():
    text_format = registries().answer_format.get("QCM-LEA-text").build()
    assert "match_choice_text" in ScienceQAEvaluator().check_answer_format(text_format)
    lenient = ScienceQAEvaluator(ScienceQAEvaluatorConfig(type="scienceqa", match_choice_text=True))
    assert lenient.check_answer_format(text_format) is None
