import pytest

from ablate.errors import AblateError
from ablate.eval.evaluators import ExactMatchConfig, ExactMatchEvaluator, normalize_answer
from ablate.registry import registries


@pytest.mark.parametrize("text, normal", [
    ("The Red.", "red"), ("  Yes!! ", "yes"), ("an apple", "apple"), ("A circle", "circle"),
    ("Two", "2"), ("ten dogs", "10 dogs"), ("3.5", "3.5"), ("1,000", "1000"), ("red, blue", "red blue"),
    ("don't", "dont"), ("t-shirt", "t shirt"), ("rectangle.\n", "rectangle"), ("the  the", ""),
    ("Theater", "theater"), ("snake_case", "snake case"),
])
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


def test_judge_compares_normal_forms_and_accepts_any_listed_answer():
    judge = ExactMatchEvaluator().judge
    out = judge({"id": "1", "prediction": "The Circle.", "answer": "circle", "meta": {}})
    assert (out["normalized"], out["correct"]) == ("circle", True)
    assert judge({"prediction": "two", "answer": ["2", "both"], "meta": {}})["correct"] is True
    assert judge({"prediction": "circles", "answer": "circle", "meta": {}})["correct"] is False
    assert judge({"prediction": "", "answer": "circle", "meta": {}})["correct"] is False
    strict = ExactMatchEvaluator(ExactMatchConfig(type="exact_match", normalize=False)).judge
    assert strict({"prediction": " red ", "answer": "red"})["correct"] is True
    assert strict({"prediction": "Red", "answer": "red"})["correct"] is False


def test_score_gives_fractions_overall_and_per_category():
    evaluator = registries().evaluator.get("exact_match").build()
    records = [
        {"prediction": "red", "answer": "red", "meta": {"category": "color"}},
        {"prediction": "blue", "answer": "red", "meta": {"category": "color"}},
        {"prediction": "yes", "answer": "yes", "meta": {"category": "yes_no"}},
        {"prediction": "circle", "answer": "circle", "meta": {"data_type": "shape"}},
        {"prediction": "no", "answer": "yes", "meta": {}},
    ]
    assert evaluator.score(records) == pytest.approx({
        "accuracy": 3 / 5, "accuracy/color": 1 / 2, "accuracy/shape": 1.0, "accuracy/yes_no": 1.0})
    assert evaluator.score([{"prediction": "x", "answer": "x", "meta": {}}]) == {"accuracy": 1.0}
    with pytest.raises(AblateError):
        evaluator.score([])


def test_answer_pattern_takes_the_last_stated_answer():
    from ablate.eval.evaluators import ExactMatchConfig, ExactMatchEvaluator

    ev = ExactMatchEvaluator(ExactMatchConfig(type="exact_match", answer_pattern=r"answer is (.+?)\.?$"))
    said = "The image shows a blue circle. A circle has no corners. So the answer is no."
    assert ev.judge({"prediction": said, "answer": "no"})["correct"] is True
    assert ev.judge({"prediction": said, "answer": "yes"})["correct"] is False
    assert ev.judge({"prediction": "no", "answer": "no"})["correct"] is True  # no match: whole text


def test_answer_pattern_must_have_a_group():
    import pytest
    from pydantic import ValidationError

    from ablate.eval.evaluators import ExactMatchConfig

    with pytest.raises(ValidationError, match="capturing group"):
        ExactMatchConfig(type="exact_match", answer_pattern="answer is .+")


def test_sentence_credit_scores_the_share_of_reference_sentences_stated():
    reference = "The image shows a red triangle. It is small. A triangle has three sides. Nothing else is there."
    judge = ExactMatchEvaluator(ExactMatchConfig(type="exact_match", sentence_credit=True)).judge
    one_wrong = "The image shows a red triangle. It is small. A triangle has four sides. Nothing else is there."
    assert judge({"prediction": one_wrong, "answer": reference})["correct"] == 0.75
    assert judge({"prediction": reference.upper(), "answer": reference})["correct"] == 1.0  # normalised
    assert judge({"prediction": "triangle", "answer": reference})["correct"] == 0.0
    # one-sentence references are still all or nothing, after the answer pattern
    short = ExactMatchEvaluator(ExactMatchConfig(type="exact_match", sentence_credit=True,
                                                 answer_pattern=r"answer is (.+?)\.?$")).judge
    assert short({"prediction": "It is red. So the answer is no.", "answer": "no"})["correct"] is True
    # without the option a description with one wrong detail scores nothing
    plain = ExactMatchEvaluator(ExactMatchConfig(type="exact_match")).judge
    assert plain({"prediction": one_wrong, "answer": reference})["correct"] is False


def test_partial_credit_averages_into_accuracy_and_categories():
    evaluator = ExactMatchEvaluator(ExactMatchConfig(type="exact_match", sentence_credit=True))
    records = [
        {"prediction": "A b. C x.", "answer": "A b. C d.", "meta": {"category": "detail"}},
        {"prediction": "yes", "answer": "yes", "meta": {"category": "qa"}},
        {"prediction": "no", "answer": "yes", "meta": {"category": "qa"}},
    ]
    assert evaluator.score(records) == {"accuracy": 0.5, "accuracy/detail": 0.5, "accuracy/qa": 0.5}
